// Rules: the loaded rules with their file, state and how often they matched.

import { api } from "../api.js";
import { dataTable, errorBox, h, loading, num, panel, priorityBadge, replace, when } from "../dom.js";
import { href } from "../nav.js";

export async function render(root, route, ctx) {
  const filterInput = h("input", { id: "rule-filter", type: "search", placeholder: "name, tag, file…", value: route.params.get("q") || "", "data-slash": true, size: 30 });
  const onlyActive = h("input", { id: "rule-active", type: "checkbox" });
  const list = h("div", { id: "rules-list" }, loading());
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Rules"), h("span", { class: "sub" }, "matches are counted over every alert stored")),
    h("div", { class: "filters", role: "search" }, h("label", { for: "rule-filter" }, "Filter", filterInput), h("label", { for: "rule-active", style: "flex-direction:row;align-items:center;gap:6px" }, onlyActive, "active only")),
    panel("Loaded rules", list, "wide"),
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
