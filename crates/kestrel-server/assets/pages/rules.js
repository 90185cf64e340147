// Rules: the loaded rules with their file, state and how often they matched.

import { api } from "../api.js";
import { dataTable, errorBox, h, loading, num, panel, priorityBadge, replace, when } from "../dom.js";
import { href } from "../nav.js";
import { lit } from "../sql.js";
import { currentRange } from "../time.js";

const EXAMPLE_RULE = `- rule: Secrets read with curl
  desc: Secrets read or listed by curl, not by kubectl or a controller.
  condition: >
    ka.stage = ResponseComplete and ka.target.resource = secrets
    and ka.verb in (get, list) and ka.useragent startswith "curl/"
  output: Secret read with curl (user=%ka.user.name ip=%ka.sourceips verb=%ka.verb ns=%ka.target.namespace name=%ka.target.name code=%ka.response.code)
  priority: WARNING
  source: k8s_audit
`;

/** The "test a rule against recent events" panel. */
function ruleTester() {
  const range = currentRange();
  const editor = h("textarea", { id: "rule-yaml", class: "sql", rows: 10, spellcheck: "false", "aria-label": "Rule YAML to test" });
  editor.value = sessionStorage.getItem("kestrel.rule-test") || EXAMPLE_RULE;
  const run = h("button", { type: "button", class: "primary", id: "rule-test-run" }, "Test against stored events");
  const out = h("div", { id: "rule-test-result", "aria-live": "polite" });
  run.addEventListener("click", async () => {
    sessionStorage.setItem("kestrel.rule-test", editor.value);
    run.disabled = true;
    replace(out, loading("Testing"));
    try {
      const r = await api("/v1/rules/test", { method: "POST", body: { rules: editor.value, since: range.from.toISOString(), until: range.to.toISOString(), limit: 100000 } });
      const total = Object.values(r.counts).reduce((a, b) => a + b, 0);
      replace(
        out,
        r.errors.length ? h("div", { class: "error", role: "alert" }, r.errors.join("\n")) : null,
        r.warnings.length ? h("p", { class: "muted" }, r.warnings.join("; ")) : null,
        h(
          "p",
          { id: "rule-test-summary" },
          `${num(total)} match${total === 1 ? "" : "es"} in ${num(r.events)} events (${range.label.toLowerCase()})${r.events_truncated ? ", newest events only" : ""}; rules tested: ${r.rules.join(", ") || "none"}.`,
        ),
        r.matches.length
          ? h(
              "div",
              { class: "scroll" },
              dataTable(["time", "rule", "priority", "output"], r.matches, (c, v, m) =>
                c === "time"
                  ? h("a", { href: href("search", [], { sql: `SELECT * FROM audit WHERE audit_id = ${lit(m.audit_id)} ORDER BY time` }) }, when(v))
                  : c === "priority"
                    ? priorityBadge(v)
                    : v,
              ),
            )
          : null,
      );
    } catch (e) {
      replace(out, errorBox(e));
    } finally {
      run.disabled = false;
    }
  });
  return panel(
    "Test a rule against stored events",
    h(
      "div",
      {},
      h("p", { class: "muted" }, "Falco-format YAML; it may use the loaded macros and lists. Nothing is recorded: no alert, no notification. Runs over the selected time range."),
      editor,
      h("div", { class: "editor-bar" }, run),
      out,
    ),
    "wide",
  );
}

export async function render(root, route, ctx) {
  const filterInput = h("input", { id: "rule-filter", type: "search", placeholder: "name, tag, file…", value: route.params.get("q") || "", "data-slash": true, size: 30 });
  const onlyActive = h("input", { id: "rule-active", type: "checkbox" });
  const list = h("div", { id: "rules-list" }, loading());
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Rules"), h("span", { class: "sub" }, "matches are counted over every alert stored")),
    h("div", { class: "filters", role: "search" }, h("label", { for: "rule-filter" }, "Filter", filterInput), h("label", { for: "rule-active", style: "flex-direction:row;align-items:center;gap:6px" }, onlyActive, "active only")),
    panel("Loaded rules", list, "wide"),
    h("div", { style: "margin-top:14px" }, ruleTester()),
  );
  let rules;
  try {
    rules = (await api("/v1/rules")).rules;
  } catch (e) {
    if (ctx.current()) replace(list, errorBox(e));
    return;
  }
  if (!ctx.current()) return;
  rules.sort((a, b) => b.matches - a.matches || a.name.localeCompare(b.name));
  const draw = () => {
    const q = filterInput.value.trim().toLowerCase();
    const shown = rules.filter(
      (r) => (!onlyActive.checked || r.active) && (!q || [r.name, r.desc, r.file, r.source, ...r.tags].some((s) => String(s).toLowerCase().includes(q))),
    );
    const table = dataTable(
      ["rule", "priority", "source", "file", "state", "matches", "alerts", "last match"],
      shown,
      (c, _v, r) => {
        switch (c) {
          case "rule":
            return h("details", {}, h("summary", {}, r.name), h("p", { class: "muted" }, r.desc), r.tags.length ? h("p", {}, "tags: ", r.tags.join(", ")) : null);
          case "priority":
            return priorityBadge(r.priority);
          case "source":
            return r.source;
          case "file":
            return h("code", {}, r.file);
          case "state":
            return r.active ? "active" : r.enabled ? "enabled, other source" : "disabled";
          case "matches":
            return r.matches ? h("a", { href: href("alerts", [], { rule: r.name }) }, num(r.matches)) : "0";
          case "alerts":
            return num(r.alerts);
          case "last match":
            return r.last_match ? when(r.last_match) : "—";
          default:
            return "";
        }
      },
      { numeric: ["matches", "alerts"] },
    );
    table.id = "rules-table";
    const active = rules.filter((r) => r.active).length;
    replace(list, h("p", { class: "muted" }, `${shown.length} of ${rules.length} rules shown; ${active} active.`), table);
  };
  filterInput.addEventListener("input", draw);
  onlyActive.addEventListener("change", draw);
  draw();
}
