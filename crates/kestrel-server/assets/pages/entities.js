// Entities: everything Kestrel knows about one user, service account, pod, namespace, node or
// IP address, from every table that has rows, on one timeline with the alerts that name it.

import { alerts as fetchAlerts, catalog, query } from "../api.js";
import { alignBuckets, timeChart } from "../charts.js";
import { errorBox, h, loading, panel, replace, when } from "../dom.js";
import { go, href } from "../nav.js";
import { bucket, ident, lit, timeFilter } from "../sql.js";
import { currentRange } from "../time.js";

/** Columns that hold an IP address, in any table. */
export const IP_COLUMNS = ["source_ip", "client_ip", "src_ip", "dst_ip", "remote_ip", "remote_addr", "pod_ip", "host_ip", "answer_ip"];

export const KINDS = [
  { id: "user", label: "User", placeholder: "alice@example.com" },
  { id: "serviceaccount", label: "Service account", placeholder: "ci/gitlab-runner or system:serviceaccount:ci:gitlab-runner" },
  { id: "pod", label: "Pod", placeholder: "namespace/pod-name or pod-name" },
  { id: "namespace", label: "Namespace", placeholder: "kube-system" },
  { id: "node", label: "Node", placeholder: "node-a" },
  { id: "ip", label: "IP address", placeholder: "203.0.113.45" },
];

/** Tables that hold rows. */
export function tablesWithRows(cat) {
  return cat.tables.filter((t) => Number(t.rows) > 0);
}

/** "ns/name" → {ns, name}; "name" → {ns: null, name}. */
function split(value) {
  const i = value.indexOf("/");
  return i > 0 ? { ns: value.slice(0, i), name: value.slice(i + 1) } : { ns: null, name: value };
}

/** The SQL condition selecting the entity's rows of table `t`, or null when `t` cannot name it. */
export function entityCondition(t, kind, value) {
  const has = (c) => t.columnNames.has(c);
  const or = [];
  const eq = (c, v) => has(c) && or.push(`${ident(c)} = ${lit(v)}`);
  const contains = (c, v) => has(c) && or.push(`${ident(c)} LIKE ${lit(`%${v.replaceAll("%", "")}%`)}`);
  switch (kind) {
    case "user":
      eq("user_name", value);
      eq("impersonated_user_name", value);
      break;
    case "serviceaccount": {
      let full = value;
      let ns;
      let name;
      if (value.startsWith("system:serviceaccount:")) {
        [ns, name] = value.slice("system:serviceaccount:".length).split(":");
      } else {
        ({ ns, name } = split(value));
        full = ns ? `system:serviceaccount:${ns}:${name}` : value;
      }
      eq("user_name", full);
      eq("impersonated_user_name", full);
      if (has("resource") && has("name") && name) {
        or.push(`(resource = 'serviceaccounts' AND name = ${lit(name)}${ns && has("namespace") ? ` AND namespace = ${lit(ns)}` : ""})`);
      }
      if (has("service_account") && name) or.push(`(service_account = ${lit(name)}${ns && has("namespace") ? ` AND namespace = ${lit(ns)}` : ""})`);
      break;
    }
    case "pod": {
      const { ns, name } = split(value);
      const inNs = ns && has("namespace") ? ` AND namespace = ${lit(ns)}` : "";
      if (has("pod")) or.push(`(pod = ${lit(name)}${inNs})`);
      if (has("resource") && has("name")) or.push(`(resource = 'pods' AND name = ${lit(name)}${inNs})`);
      // Service-account tokens bound to a pod name it in user.extra.
      contains("user_extra", `"${name}"`);
      break;
    }
    case "namespace":
      eq("namespace", value);
      if (has("resource") && has("name")) or.push(`(resource = 'namespaces' AND name = ${lit(value)})`);
      break;
    case "node":
      eq("node", value);
      if (has("user_name")) or.push(`user_name = ${lit(`system:node:${value}`)}`);
      if (has("resource") && has("name")) or.push(`(resource = 'nodes' AND name = ${lit(value)})`);
      contains("user_extra", `"${value}"`);
      break;
    case "ip":
      for (const c of IP_COLUMNS) eq(c, value);
      if (has("source_ips")) or.push(`array_has(source_ips, ${lit(value)})`);
      break;
    default:
      return null;
  }
  return or.length ? `(${or.join(" OR ")})` : null;
}

/** Columns worth reading per table: few for audit, all for others. */
const AUDIT_COLUMNS = ["time", "stage", "user_name", "impersonated_user_name", "source_ip", "user_agent", "verb", "resource", "subresource", "namespace", "name", "response_code", "authorization_decision", "authorization_reason", "request_uri", "audit_id"];
const QUIET = new Set(["time", "cluster", "request_object", "response_object", "annotations", "user_extra", "user_groups", "source_ips", "payload"]);

/** One line about a row. */
export function summarize(table, row) {
  if (table === "audit") {
    const obj = [row.resource, row.subresource].filter(Boolean).join("/") || row.request_uri;
    const target = [row.namespace, row.name].filter(Boolean).join("/");
    const who = [row.user_name, row.source_ip && `from ${row.source_ip}`].filter(Boolean).join(" ");
    const code = row.response_code ? ` → ${row.response_code}` : "";
    return `${row.verb} ${obj}${target ? ` ${target}` : ""}${code} · ${who}`;
  }
  return Object.entries(row)
    .filter(([k, v]) => !QUIET.has(k) && v !== null && v !== "" && !(Array.isArray(v) && !v.length))
    .slice(0, 8)
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`)
    .join("  ");
}

/** Whether an alert names the entity. */
function alertNames(alert, kind, value) {
  const l = alert.labels || {};
  if (kind === "user") return l.user_name === value;
  if (kind === "namespace") return l.namespace === value;
  const v = kind === "serviceaccount" && !value.startsWith("system:") ? value.replace("/", ":") : value;
  return alert.output.includes(v) || Object.values(l).includes(value) || Object.values(alert.annotations || {}).includes(value);
}

export async function render(root, route, ctx) {
  const kind = route.params.get("kind") || "user";
  const value = (route.params.get("value") || "").trim();
  const range = currentRange();
  const kindSelect = h("select", { id: "entity-kind", name: "kind" }, KINDS.map((k) => h("option", { value: k.id, selected: k.id === kind }, k.label)));
  const input = h("input", { id: "entity-value", name: "value", value, size: 40, list: "entity-suggestions", required: true, "data-slash": true, placeholder: KINDS.find((k) => k.id === kind)?.placeholder });
  kindSelect.addEventListener("change", () => (input.placeholder = KINDS.find((k) => k.id === kindSelect.value)?.placeholder || ""));
  const suggestions = h("datalist", { id: "entity-suggestions" });
  const form = h(
    "form",
    { class: "filters", role: "search" },
    h("label", { for: "entity-kind" }, "Kind", kindSelect),
    h("label", { for: "entity-value" }, "Value", input),
    h("button", { type: "submit", class: "primary" }, "Show timeline"),
    suggestions,
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    go("entities", [], { kind: kindSelect.value, value: input.value.trim() });
  });
  root.append(h("div", { class: "page-head" }, h("h1", {}, value ? `${KINDS.find((k) => k.id === kind)?.label || kind}: ${value}` : "Entities"), h("span", { class: "sub" }, range.label)), form);

  const cat = await catalog();
  if (!ctx.current()) return;
  const tables = tablesWithRows(cat).filter((t) => t.name !== "dead_letter" && t.columnNames.has("time"));
  fillSuggestions(suggestions, tables, kind, range).catch(() => {});
  if (!value) {
    root.appendChild(panel("Pick an entity", h("p", { class: "muted" }, "Choose a kind and a value, or follow a link from the Overview, an alert or a search result.")));
    input.focus();
    return;
  }

  const chart = h("div", { id: "entity-chart" }, loading());
  const list = h("div", { id: "entity-timeline" }, loading());
  root.append(panel("Activity over time", chart, "wide"), h("div", { style: "margin-top:14px" }, panel("Timeline", list, "wide")));

  const LIMIT = 2000;
  const items = [];
  const buckets = [];
  const notes = [];
  try {
    await Promise.all(
      tables.map(async (t) => {
        const cond = entityCondition(t, kind, value);
        if (!cond) return;
        // An audit event is logged at several stages; RequestReceived repeats what follows it.
        const stages = t.columnNames.has("stage") ? " AND (stage IS NULL OR stage <> 'RequestReceived')" : "";
        const where = `${timeFilter(range)} AND ${cond}${stages}`;
        const cols = t.name === "audit" ? AUDIT_COLUMNS.filter((c) => t.columnNames.has(c)).map(ident).join(", ") : "*";
        const [rows, hist] = await Promise.all([
          query(`SELECT ${cols} FROM ${ident(t.name)} WHERE ${where} ORDER BY time DESC LIMIT ${LIMIT}`),
          query(`SELECT ${bucket(range.step)} AS b, count(*) AS n FROM ${ident(t.name)} WHERE ${where} GROUP BY 1`),
        ]);
        for (const [b, n] of hist.rows) buckets.push([b, t.name, n]);
        const total = hist.rows.reduce((s, r) => s + r[1], 0);
        if (total > rows.rows.length) notes.push(`${t.name}: showing the latest ${rows.rows.length} of ${total} rows`);
        for (const r of rows.rows) {
          const row = Object.fromEntries(rows.columns.map((c, i) => [c, r[i]]));
          items.push({ time: row.time, source: t.name, row });
        }
      }),
    );
    const alertList = (await fetchAlerts({ since: range.from.toISOString(), limit: 10000 })).filter((a) => alertNames(a, kind, value));
    for (const a of alertList) {
      items.push({ time: a.last_seen, source: "alert", alert: a });
      buckets.push([a.last_seen, "alert", 1]);
    }
  } catch (e) {
    if (ctx.current()) replace(list, errorBox(e));
    replace(chart);
    return;
  }
  if (!ctx.current()) return;
  items.sort((a, b) => (a.time < b.time ? 1 : a.time > b.time ? -1 : 0));
  const sources = [...new Set(buckets.map((b) => b[1]))].sort();
  if (!items.length) {
    replace(chart, h("p", { class: "empty" }, "Nothing about this entity in the time range."));
    replace(list);
  } else {
    timeChart(chart, alignBuckets(buckets, range, sources), { kind: "bars", colors: { alert: "#ff4d8d" }, yLabel: "events" });
    renderList(list, items, notes);
  }
}

function renderList(el, items, notes) {
  const PAGE = 200;
  let shown = 0;
  const ul = h("ol", { class: "timeline-list", "aria-label": "Events, newest first" });
  const more = h("button", { type: "button" }, "Show more");
  const counter = h("span", { class: "muted" });
  const show = () => {
    for (const it of items.slice(shown, shown + PAGE)) ul.appendChild(item(it));
    shown = Math.min(items.length, shown + PAGE);
    counter.textContent = `${shown} of ${items.length} items`;
    more.hidden = shown >= items.length;
  };
  more.addEventListener("click", show);
  replace(el, notes.map((n) => h("p", { class: "muted" }, n)), ul, h("div", { class: "pager" }, counter, more));
  show();
}

function item(it) {
  if (it.alert) {
    const a = it.alert;
    return h(
      "li",
      { class: "alert-item" },
      h("time", { datetime: a.last_seen }, when(a.last_seen)),
      h("span", {}, h("span", { class: `badge prio-${a.priority.toLowerCase()}` }, "alert")),
      h("div", {}, h("a", { href: href("alerts", [a.id]) }, a.rule), " ", h("span", { class: "muted" }, `×${a.count} · ${a.status}`), h("div", {}, a.output)),
    );
  }
  const details = h("details", {}, h("summary", {}, summarize(it.source, it.row)), h("pre", {}, JSON.stringify(it.row, null, 2)));
  return h("li", {}, h("time", { datetime: it.time }, when(it.time)), h("span", {}, h("span", { class: "badge source" }, it.source)), details);
}

async function fillSuggestions(datalist, tables, kind, range) {
  const column = { user: "user_name", namespace: "namespace", node: "node", ip: "source_ip", pod: "pod" }[kind];
  if (kind === "serviceaccount") {
    const audit = tables.find((t) => t.name === "audit");
    if (!audit) return;
    const r = await query(`SELECT DISTINCT user_name FROM audit WHERE ${timeFilter(range)} AND user_name LIKE 'system:serviceaccount:%' ORDER BY 1 LIMIT 200`);
    replace(datalist, r.rows.map(([v]) => h("option", { value: v })));
    return;
  }
  const parts = tables.filter((t) => column && t.columnNames.has(column)).map((t) => `SELECT ${ident(column)} AS v FROM ${ident(t.name)} WHERE ${timeFilter(range)}`);
  if (!parts.length) return;
  const r = await query(`SELECT v, count(*) AS n FROM (${parts.join(" UNION ALL ")}) AS u WHERE v IS NOT NULL AND v <> '' GROUP BY v ORDER BY n DESC LIMIT 200`);
  replace(datalist, r.rows.map(([v]) => h("option", { value: v })));
}
