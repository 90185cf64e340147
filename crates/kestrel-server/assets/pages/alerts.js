// Alerts: the list with filters and status changes, and one alert's page with its output,
// labels, the event behind it and the activity around it.

import { alerts as fetchAlerts, api, catalog, query } from "../api.js";
import { alignBuckets, timeChart } from "../charts.js";
import { dataTable, errorBox, h, loading, num, panel, priorityBadge, replace, rowKeys, statusBadge, toast, when } from "../dom.js";
import { entityHref, go, href } from "../nav.js";
import { bucket, lit, timeFilter } from "../sql.js";
import { currentRange, rangeAround } from "../time.js";
import { PRIORITIES } from "./overview.js";
import { summarize } from "./entities.js";

const STATUSES = ["firing", "acknowledged", "resolved"];

export async function render(root, route, ctx) {
  if (route.rest[0]) return renderOne(root, route.rest[0], ctx);
  return renderList(root, route, ctx);
}

/** Acknowledge / resolve buttons; `after(alert)` runs when the change is done. */
function statusActions(alert, after) {
  const change = async (action, button) => {
    button.disabled = true;
    try {
      const r = await api(`/v1/alerts/${encodeURIComponent(alert.id)}/${action}`, { method: "POST" });
      toast(`${r.alert.rule}: ${r.alert.status}`);
      after(r.alert);
    } catch (e) {
      toast(e.status === 403 ? `Not allowed: ${e.message}` : e.message, true);
      button.disabled = false;
    }
  };
  const ack = h("button", { type: "button", class: "ack", "aria-label": `Acknowledge ${alert.rule}` }, "Acknowledge");
  const resolve = h("button", { type: "button", class: "resolve", "aria-label": `Resolve ${alert.rule}` }, "Resolve");
  ack.disabled = alert.status !== "firing";
  resolve.disabled = alert.status === "resolved";
  ack.addEventListener("click", () => change("ack", ack));
  resolve.addEventListener("click", () => change("resolve", resolve));
  // A silence for this alert's exact labels (its identity), for two hours.
  const silence = h("button", { type: "button", class: "silence", "aria-label": `Silence ${alert.rule} for 2 hours` }, "Silence 2h");
  silence.disabled = alert.status === "resolved";
  silence.addEventListener("click", async () => {
    silence.disabled = true;
    const labels = alert.labels || { rule: alert.rule };
    const matchers = Object.entries(labels).map(([name, value]) => ({ name, value: String(value) }));
    try {
      const r = await api("/v1/silences", { method: "POST", body: { matchers, duration: "2h", comment: `silenced from the console: ${alert.rule}` } });
      toast(`silenced until ${(r.silence && (r.silence.ends_at || r.silence.endsAt)) || "2 hours from now"}`);
    } catch (e) {
      toast(e.status === 403 ? `Not allowed: ${e.message}` : e.message, true);
      silence.disabled = false;
    }
  });
  return h("div", { class: "actions" }, ack, resolve, silence);
}

async function renderList(root, route, ctx) {
  const range = currentRange();
  const p = route.params;
  const filters = { status: p.get("status") || "", priority: p.get("priority") || "", rule: p.get("rule") || "", namespace: p.get("namespace") || "" };
  const rulesPromise = api("/v1/rules").catch(() => ({ rules: [] }));
  const select = (name, label, options, value) =>
    h("label", { for: `filter-${name}` }, label, h("select", { id: `filter-${name}`, name }, h("option", { value: "" }, "any"), options.map((o) => h("option", { value: o, selected: o === value }, o))));
  const nsInput = h("input", { id: "filter-namespace", name: "namespace", value: filters.namespace, list: "namespaces", size: 16, "data-slash": true });
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter alerts" },
    select("status", "Status", STATUSES, filters.status),
    select("priority", "Priority", PRIORITIES, filters.priority),
    h("label", { for: "filter-rule" }, "Rule", h("select", { id: "filter-rule", name: "rule" }, h("option", { value: "" }, "any"))),
    h("label", { for: "filter-namespace" }, "Namespace", nsInput),
    h("datalist", { id: "namespaces" }),
    h("button", { type: "submit", class: "primary" }, "Apply"),
    h("button", { type: "button", id: "filter-clear", onclick: () => go("alerts") }, "Clear"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const data = Object.fromEntries(new FormData(form));
    go("alerts", [], data);
  });
  for (const sel of form.querySelectorAll("select")) sel.addEventListener("change", () => form.requestSubmit());
  const list = h("div", { id: "alert-list" }, loading());
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Alerts"), h("span", { class: "sub" }, `seen in the ${range.label.toLowerCase()}`)), form, panel("Alerts", list, "wide"));

  rulesPromise.then((r) => {
    if (!ctx.current()) return;
    const names = [...new Set(r.rules.map((x) => x.name))].sort();
    if (filters.rule && !names.includes(filters.rule)) names.unshift(filters.rule);
    form.querySelector("#filter-rule").append(...names.map((n) => h("option", { value: n, selected: n === filters.rule }, n)));
  });

  let alerts;
  try {
    alerts = await fetchAlerts({ ...filters, since: range.from.toISOString(), limit: 2000 });
  } catch (e) {
    if (ctx.current()) replace(list, errorBox(e));
    return;
  }
  if (!ctx.current()) return;
  const namespaces = [...new Set(alerts.map((a) => a.labels?.namespace).filter(Boolean))].sort();
  replace(form.querySelector("#namespaces"), namespaces.map((n) => h("option", { value: n })));
  if (!alerts.length) {
    replace(list, h("p", { class: "empty" }, "No alerts match these filters in this time range."));
    return;
  }
  const columns = ["priority", "rule", "namespace", "user", "count", "last seen", "status", "actions"];
  const table = dataTable(
    columns,
    alerts,
    (c, _v, a) => {
      switch (c) {
        case "priority":
          return priorityBadge(a.priority);
        case "rule":
          return h("div", {}, h("a", { href: href("alerts", [a.id]), class: "alert-link" }, a.rule), h("div", { class: "muted clamp", title: a.output }, a.output));
        case "namespace":
          return a.labels?.namespace ? h("a", { href: entityHref("namespace", a.labels.namespace) }, a.labels.namespace) : "";
        case "user":
          return a.labels?.user_name ? h("a", { href: entityHref("user", a.labels.user_name) }, a.labels.user_name) : "";
        case "count":
          return num(a.count);
        case "last seen":
          return h("time", { datetime: a.last_seen }, when(a.last_seen));
        case "status":
          return statusBadge(a.status);
        case "actions":
          return statusActions(a, () => {
            if (!ctx.current()) return;
            root.replaceChildren();
            renderList(root, route, ctx);
          });
        default:
          return "";
      }
    },
    { numeric: ["count"] },
  );
  table.id = "alerts-table";
  replace(list, h("p", { class: "muted" }, `${alerts.length} alert${alerts.length === 1 ? "" : "s"}, most recent first. j/k move, Enter opens.`), table);
  const keys = rowKeys(table.tBodies[0]);
  document.getElementById("main").keyHandler = keys;
}

async function renderOne(root, id, ctx) {
  root.append(h("p", {}, h("a", { href: href("alerts") }, "← All alerts")));
  let data;
  try {
    data = await api(`/v1/alerts/${encodeURIComponent(id)}`);
  } catch (e) {
    root.appendChild(errorBox(e));
    return;
  }
  if (!ctx.current()) return;
  const a = data.alert;
  const actions = statusActions(a, () => ctx.current() && (root.replaceChildren(), renderOne(root, id, ctx)));
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, a.rule), priorityBadge(a.priority), statusBadge(a.status), a.status_by ? h("span", { class: "sub" }, `by ${a.status_by} at ${when(a.status_at)}`) : null),
    actions,
  );

  const labelLinks = { user_name: "user", namespace: "namespace" };
  const facts = h(
    "dl",
    { class: "kv" },
    h("dt", {}, "First seen"),
    h("dd", {}, when(a.first_seen)),
    h("dt", {}, "Last seen"),
    h("dd", {}, when(a.last_seen)),
    h("dt", {}, "Occurrences"),
    h("dd", {}, num(a.count)),
    h("dt", {}, "Source"),
    h("dd", {}, a.source),
    h("dt", {}, "Tags"),
    h("dd", {}, a.tags.join(", ") || "—"),
    h("dt", {}, "Id"),
    h("dd", {}, h("code", {}, a.id)),
  );
  const labels = h(
    "dl",
    { class: "kv" },
    Object.entries(a.labels).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, labelLinks[k] ? h("a", { href: entityHref(labelLinks[k], v) }, v) : v)]),
  );
  const annotations = h("dl", { class: "kv" }, Object.entries(a.annotations).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, h("code", {}, v))]));
  const eventBox = h("div", { id: "alert-event" }, a.event ? loading() : h("p", { class: "empty" }, "No event reference."));
  const chart = h("div", { id: "alert-chart" }, loading());
  const related = h("div", { id: "alert-related" }, loading());
  const deliveries = data.deliveries.length
    ? dataTable(["receiver", "status", "attempts", "last_error", "updated_at"], data.deliveries)
    : h("p", { class: "empty" }, "Not sent to any receiver.");
  root.append(
    h(
      "div",
      { class: "grid cols-2", style: "margin-top:12px" },
      panel("Output", h("pre", { id: "alert-output" }, a.output), "wide"),
      panel("Alert", facts),
      panel("Labels", labels),
      panel("Output fields", annotations),
      panel("Deliveries", deliveries),
      panel("The event behind it (latest occurrence)", eventBox, "wide"),
      panel("Timeline: the actor's activity around the alert", h("div", {}, chart, related), "wide"),
    ),
  );

  if (a.event) {
    query(a.event.query, 50)
      .then((r) => {
        if (!ctx.current()) return;
        if (!r.rows.length) return replace(eventBox, h("p", { class: "empty" }, "The event is no longer stored (retention)."));
        const rows = r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, row[i]])));
        replace(
          eventBox,
          rows.map((row) =>
            h(
              "dl",
              { class: "kv", style: "margin-bottom:10px" },
              Object.entries(row)
                .filter(([, v]) => v !== null && v !== "" && !(Array.isArray(v) && !v.length))
                .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, /_object$|annotations|user_extra/.test(k) ? h("pre", {}, pretty(v)) : typeof v === "object" ? JSON.stringify(v) : String(v))]),
            ),
          ),
          h("p", {}, h("a", { href: href("search", [], { sql: a.event.query }) }, "Open this query in Search")),
        );
      })
      .catch((e) => ctx.current() && replace(eventBox, errorBox(e)));
  } else replace(chart);

  // What the same actor did from ten minutes before the first occurrence to ten after the last.
  const range = rangeAround(a.first_seen, a.last_seen);
  const cat = await catalog();
  if (!ctx.current()) return;
  const user = a.labels.user_name;
  if (!cat.byName.audit || !user) {
    replace(chart);
    replace(related, h("p", { class: "empty" }, "The alert names no user to follow."));
    return;
  }
  const where = `${timeFilter(range)} AND user_name = ${lit(user)}`;
  try {
    const [hist, rows] = await Promise.all([
      query(`SELECT ${bucket(range.step)} AS b, CASE WHEN response_code >= 400 THEN 'refused' ELSE 'allowed' END AS k, count(*) FROM audit WHERE ${where} GROUP BY 1, 2`),
      query(`SELECT time, verb, resource, subresource, namespace, name, response_code, source_ip, user_name, request_uri, audit_id FROM audit WHERE ${where} AND stage = 'ResponseComplete' ORDER BY time LIMIT 500`),
    ]);
    if (!ctx.current()) return;
    const markers = [{ time: new Date(a.first_seen).getTime() / 1000 }, { time: new Date(a.last_seen).getTime() / 1000 }];
    timeChart(chart, alignBuckets(hist.rows, range, ["allowed", "refused"]), { kind: "bars", colors: { allowed: "#7cc4ff", refused: "#ff6b6b" }, markers, yLabel: "requests" });
    const objs = rows.rows.map((row) => Object.fromEntries(rows.columns.map((c, i) => [c, row[i]])));
    const table = dataTable(["time", "request", "code"], objs, (c, _v, r) =>
      c === "time" ? when(r.time) : c === "code" ? String(r.response_code ?? "") : summarize("audit", r).split(" · ")[0],
    );
    objs.forEach((r, i) => r.audit_id === a.event?.id && table.tBodies[0].rows[i].classList.add("highlight"));
    replace(
      related,
      h("p", { class: "muted" }, `Requests of `, h("a", { href: entityHref("user", user) }, user), ` from ${when(range.from)} to ${when(range.to)}; the dashed lines mark the first and last occurrence, the highlighted row is the event behind the alert.`),
      h("div", { class: "scroll" }, table),
    );
  } catch (e) {
    if (ctx.current()) replace(related, errorBox(e));
  }
}

function pretty(v) {
  if (typeof v !== "string") return JSON.stringify(v, null, 2);
  try {
    return JSON.stringify(JSON.parse(v), null, 2);
  } catch {
    return v;
  }
}
