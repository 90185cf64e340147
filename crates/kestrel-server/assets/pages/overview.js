// Overview: event rates by source, alerts by priority, and the top rules, users, namespaces and
// source addresses of the selected time range.

import { alerts as fetchAlerts, catalog, query } from "../api.js";
import { PRIORITY_COLORS, alignBuckets, timeChart } from "../charts.js";
import { errorBox, h, loading, num, panel, replace, topTable } from "../dom.js";
import { entityHref, href } from "../nav.js";
import { bucket, ident, timeFilter } from "../sql.js";
import { currentRange } from "../time.js";
import { IP_COLUMNS, tablesWithRows } from "./entities.js";

/** Falco priorities, most severe first. */
export const PRIORITIES = ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"];

/** Per source beyond audit: the column whose top values tell most about it. */
const SALIENT = ["reason", "query_name", "qname", "status", "host", "unit", "dst_ip", "image", "container", "pod", "level"];

export async function render(root, _route, ctx) {
  const started = performance.now();
  const range = currentRange();
  root.appendChild(h("div", { class: "page-head" }, h("h1", {}, "Overview"), h("span", { class: "sub" }, `${range.label} · ${range.from.toLocaleString()} – ${range.to.toLocaleString()}`)));
  const cat = await catalog();
  if (!ctx.current()) return;

  const sources = tablesWithRows(cat).filter((t) => t.name !== "dead_letter" && t.columnNames.has("time"));
  const stats = h("div", { class: "grid cols-4", id: "stats" });
  const rates = h("div", { id: "chart-rates" }, loading());
  const prio = h("div", { id: "chart-priorities" }, loading());
  const topRules = h("div", { id: "top-rules" }, loading());
  const topUsers = h("div", { id: "top-users" }, loading());
  const topNs = h("div", { id: "top-namespaces" }, loading());
  const topIps = h("div", { id: "top-ips" }, loading());
  const extra = h("div", { class: "grid cols-3", id: "source-panels" });
  root.append(
    stats,
    h(
      "div",
      { class: "grid cols-2", style: "margin-top:14px" },
      panel("Events per second by source", rates),
      panel("New alerts by priority", prio),
      panel("Top rules (matches)", topRules),
      panel("Top users", topUsers),
      panel("Top namespaces", topNs),
      panel("Top source IPs", topIps),
    ),
    extra,
  );

  const tasks = [];
  const run = (el, f) => tasks.push(f().catch((e) => ctx.current() && replace(el, errorBox(e))));

  // Events per second per source table.
  let eventTotal = 0;
  run(rates, async () => {
    if (!sources.length) return replace(rates, h("p", { class: "empty" }, "No events stored yet."));
    const rows = [];
    await Promise.all(
      sources.map(async (t) => {
        const r = await query(`SELECT ${bucket(range.step)} AS b, count(*) AS n FROM ${ident(t.name)} WHERE ${timeFilter(range)} GROUP BY 1`);
        for (const [b, n] of r.rows) {
          rows.push([b, t.name, n / range.step]);
          eventTotal += n;
        }
      }),
    );
    if (!ctx.current()) return;
    timeChart(rates, alignBuckets(rows, range, sources.map((t) => t.name)), { kind: "lines", yLabel: "events/s" });
  });

  // Alerts seen in the range: by priority over time (first seen), top rules by matches.
  let alertList = [];
  const alertsLoaded = fetchAlerts({ since: range.from.toISOString(), limit: 10000 }).then((a) => (alertList = a));
  run(prio, async () => {
    await alertsLoaded;
    if (!ctx.current()) return;
    const rows = alertList.filter((a) => new Date(a.first_seen) >= range.from).map((a) => [a.first_seen, a.priority, 1]);
    if (!alertList.length) return replace(prio, h("p", { class: "empty" }, "No alerts in this time range."));
    const present = PRIORITIES.filter((p) => alertList.some((a) => a.priority === p));
    timeChart(prio, alignBuckets(rows, range, present), { kind: "bars", colors: PRIORITY_COLORS, yLabel: "alerts" });
  });
  run(topRules, async () => {
    await alertsLoaded;
    if (!ctx.current()) return;
    const byRule = new Map();
    for (const a of alertList) byRule.set(a.rule, (byRule.get(a.rule) || 0) + a.count);
    const rows = [...byRule].sort((a, b) => b[1] - a[1]).slice(0, 10);
    replace(topRules, topTable("rule", rows, (rule) => href("alerts", [], { rule })));
  });

  // Top values across every table that has the column.
  const top = async (el, label, columns, kind) => {
    const parts = [];
    for (const t of sources) for (const c of columns) if (t.columnNames.has(c)) parts.push(`SELECT ${ident(c)} AS v FROM ${ident(t.name)} WHERE ${timeFilter(range)} AND ${ident(c)} IS NOT NULL AND ${ident(c)} <> ''`);
    if (!parts.length) return replace(el, h("p", { class: "empty" }, "No source records this."));
    const r = await query(`SELECT v, count(*) AS n FROM (${parts.join(" UNION ALL ")}) AS u GROUP BY v ORDER BY n DESC, v LIMIT 10`);
    if (ctx.current()) replace(el, topTable(label, r.rows, (v) => entityHref(kind, v)));
  };
  run(topUsers, () => top(topUsers, "user", ["user_name"], "user"));
  run(topNs, () => top(topNs, "namespace", ["namespace"], "namespace"));
  run(topIps, () => top(topIps, "address", IP_COLUMNS, "ip"));

  // One panel per other source that has rows.
  for (const t of sources.filter((s) => s.name !== "audit")) {
    const col = SALIENT.find((c) => t.columnNames.has(c));
    if (!col) continue;
    const el = h("div", {}, loading());
    extra.appendChild(panel(`${t.name}: top ${col}`, el));
    run(el, async () => {
      const r = await query(`SELECT ${ident(col)} AS v, count(*) AS n FROM ${ident(t.name)} WHERE ${timeFilter(range)} GROUP BY 1 ORDER BY n DESC LIMIT 10`);
      if (ctx.current()) replace(el, topTable(col, r.rows));
    });
  }
  if (extra.childElementCount) extra.style.marginTop = "14px";

  await Promise.all(tasks);
  if (!ctx.current()) return;
  const firing = alertList.filter((a) => a.status === "firing");
  const severe = firing.filter((a) => ["Emergency", "Alert", "Critical"].includes(a.priority));
  const deadLetters = cat.byName.dead_letter ? await query(`SELECT count(*) FROM dead_letter WHERE ${timeFilter(range)}`).then((r) => r.rows[0][0]).catch(() => null) : null;
  if (!ctx.current()) return;
  const stat = (label, value, linkTo, bad) =>
    h("a", { class: `panel stat${bad ? " bad" : ""}`, href: linkTo }, h("div", { class: "value" }, num(value)), h("div", { class: "label" }, label));
  replace(
    stats,
    stat("events in range", eventTotal, href("search")),
    stat("alerts firing", firing.length, href("alerts", [], { status: "firing" }), firing.length > 0),
    stat("critical or worse, firing", severe.length, href("alerts", [], { status: "firing" }), severe.length > 0),
    stat("dead letters in range", deadLetters, href("search", [], { sql: "SELECT time, source, kind, reason, location FROM dead_letter WHERE $range ORDER BY time DESC" }), deadLetters > 0),
  );
  // Read by the browser tests to report how long the overview took to be complete.
  root.dataset.ready = "true";
  root.dataset.renderMs = String(Math.round(performance.now() - started));
}
