// Search: an SQL editor over every table, a schema browser, example queries, a paged results
// table with CSV export, and a histogram of the matching rows over time.

import { catalog, query } from "../api.js";
import { alignBuckets, clearChart, timeChart } from "../charts.js";
import { download, h, loading, num, panel, replace } from "../dom.js";
import { entityHref } from "../nav.js";
import { errorPosition, ident, timeFilter, toCsv } from "../sql.js";
import { currentRange, stepFor } from "../time.js";

const SQL_KEY = "kestrel.sql";
const PAGE_SIZE = 50;
const MAX_ROWS = 10000;

const EXAMPLES = [
  { title: "Latest audit events", sql: "SELECT time, user_name, verb, resource, namespace, name, response_code\nFROM audit\nWHERE $range\nORDER BY time DESC" },
  { title: "Who does what (top actors and verbs)", sql: "SELECT user_name, verb, resource, count(*) AS n\nFROM audit\nWHERE $range\nGROUP BY 1, 2, 3\nORDER BY n DESC\nLIMIT 50" },
  { title: "Refused requests (401/403)", sql: "SELECT time, user_name, source_ip, verb, request_uri, response_code, authorization_reason\nFROM audit\nWHERE $range AND response_code IN (401, 403)\nORDER BY time DESC" },
  { title: "Anonymous requests", sql: "SELECT time, source_ip, user_agent, verb, request_uri, response_code, authorization_decision\nFROM audit\nWHERE $range AND user_name = 'system:anonymous' AND user_agent NOT LIKE 'kube-probe/%'\nORDER BY time" },
  { title: "Secrets read from outside the cluster", sql: "SELECT time, user_name, source_ip, verb, namespace, name, response_code\nFROM audit\nWHERE $range AND resource = 'secrets' AND verb IN ('get', 'list', 'watch')\n  AND source_ip NOT LIKE '10.%' AND source_ip NOT LIKE '192.168.%'\nORDER BY time" },
  { title: "curl and other unusual clients", sql: "SELECT time, user_name, source_ip, user_agent, verb, request_uri, response_code\nFROM audit\nWHERE $range AND (user_agent LIKE 'curl/%' OR user_agent LIKE 'python-requests/%')\nORDER BY time" },
  { title: "Exec and attach into pods", sql: "SELECT time, stage, user_name, source_ip, namespace, name, response_code, request_uri\nFROM audit\nWHERE $range AND subresource IN ('exec', 'attach')\nORDER BY time" },
  { title: "RBAC changes", sql: "SELECT time, user_name, source_ip, verb, resource, namespace, name, response_code\nFROM audit\nWHERE $range AND api_group = 'rbac.authorization.k8s.io' AND verb IN ('create', 'update', 'patch', 'delete')\nORDER BY time" },
  { title: "Requests per minute by response code", sql: "SELECT date_bin(INTERVAL '1 minute', time, TIMESTAMP '1970-01-01T00:00:00Z') AS minute, response_code, count(*) AS n\nFROM audit\nWHERE $range\nGROUP BY 1, 2\nORDER BY 1, 2" },
  { title: "Dead letters (input that could not be read)", sql: "SELECT time, source, kind, reason, location, size_bytes\nFROM dead_letter\nWHERE $range\nORDER BY time DESC" },
  { title: "Tables and columns", sql: "SELECT table_name, column_name, data_type\nFROM information_schema.columns\nWHERE table_schema = 'public'\nORDER BY table_name, ordinal_position" },
];

/** Columns whose values open an entity timeline. */
const ENTITY_COLUMNS = { user_name: "user", impersonated_user_name: "user", namespace: "namespace", source_ip: "ip", client_ip: "ip", src_ip: "ip", dst_ip: "ip", node: "node" };

/** The SQL to send: `$range` becomes the selected time range. */
export function expand(sql, range) {
  return sql.replaceAll("$range", `(${timeFilter(range)})`).trim().replace(/;+\s*$/, "");
}

export async function render(root, route, ctx) {
  const range = currentRange();
  const initial = route.params.get("sql") || sessionStorage.getItem(SQL_KEY) || EXAMPLES[0].sql;
  const editor = h("textarea", {
    id: "sql",
    class: "sql",
    spellcheck: "false",
    autocomplete: "off",
    "aria-label": "SQL query",
    "aria-describedby": "sql-help sql-error",
    "data-slash": true,
    rows: 6,
  });
  editor.value = initial;
  const runButton = h("button", { type: "button", class: "primary", id: "run" }, "Run");
  const examples = h(
    "select",
    { id: "examples", "aria-label": "Example queries" },
    h("option", { value: "" }, "Example queries…"),
    EXAMPLES.map((e, i) => h("option", { value: String(i) }, e.title)),
  );
  const errorEl = h("div", { id: "sql-error", "aria-live": "assertive" });
  const histogram = h("div", { id: "search-histogram" });
  const results = h("div", { id: "results" });
  const schema = h("nav", { class: "panel schema", "aria-label": "Tables and columns" }, h("h2", {}, "Tables"), loading());

  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Search"), h("span", { class: "sub" }, `$range = ${range.label.toLowerCase()}`)),
    h(
      "div",
      { class: "search-layout" },
      schema,
      h(
        "div",
        {},
        h(
          "div",
          { class: "panel" },
          h("label", { for: "sql", class: "muted" }, "SQL (read-only; DataFusion dialect)"),
          editor,
          errorEl,
          h(
            "div",
            { class: "editor-bar" },
            runButton,
            examples,
            h("span", { id: "sql-help", class: "muted" }, h("kbd", {}, "Ctrl"), "+", h("kbd", {}, "Enter"), " runs. ", h("code", {}, "$range"), " stands for the selected time range."),
          ),
        ),
        h("div", { style: "margin-top:14px" }, panel("Results", h("div", {}, h("h3", { class: "muted" }, "Matching rows over time"), histogram, results))),
      ),
    ),
  );

  examples.addEventListener("change", () => {
    const e = EXAMPLES[Number(examples.value)];
    if (!e) return;
    editor.value = e.sql;
    examples.value = "";
    editor.focus();
    run();
  });
  editor.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      run();
    }
  });
  editor.addEventListener("input", () => {
    editor.removeAttribute("aria-invalid");
  });
  runButton.addEventListener("click", () => run());

  catalog().then((cat) => {
    if (!ctx.current()) return;
    replace(
      schema,
      h("h2", {}, "Tables"),
      cat.tables.map((t) =>
        h(
          "details",
          { open: t.name === "audit" },
          h("summary", {}, t.name, " ", h("span", { class: "muted" }, Number(t.rows) ? `${num(t.rows)} rows` : "empty")),
          h(
            "ul",
            {},
            h("li", {}, h("button", { type: "button", title: `Query ${t.name}`, onclick: () => insertQuery(t) }, `SELECT … FROM ${t.name}`)),
            t.columns.map((c) => h("li", {}, h("button", { type: "button", title: `Insert ${c.name}`, onclick: () => insertText(c.name) }, c.name), h("span", { class: "type" }, c.type))),
          ),
        ),
      ),
    );
  });

  function insertText(text) {
    const { selectionStart: s, selectionEnd: e, value } = editor;
    editor.value = value.slice(0, s) + text + value.slice(e);
    editor.focus();
    editor.setSelectionRange(s + text.length, s + text.length);
  }

  function insertQuery(t) {
    const cols = t.columns.slice(0, 8).map((c) => ident(c.name)).join(", ");
    editor.value = `SELECT ${cols}\nFROM ${ident(t.name)}\nWHERE $range\nORDER BY time DESC`;
    editor.focus();
  }

  let runId = 0;
  async function run() {
    const mine = ++runId;
    const text = editor.value;
    sessionStorage.setItem(SQL_KEY, text);
    const sql = expand(text, range);
    replace(errorEl);
    editor.removeAttribute("aria-invalid");
    replace(results, loading("Running"));
    clearChart(histogram);
    let r;
    try {
      r = await query(sql, MAX_ROWS);
    } catch (e) {
      if (mine !== runId || !ctx.current()) return;
      showError(e, text);
      clearChart(histogram, h("p", { class: "empty" }, "—"));
      replace(results, h("p", { class: "empty" }, "The query failed; see the message under the editor."));
      return;
    }
    if (mine !== runId || !ctx.current()) return;
    showResults(r);
    if (r.columns.includes("time")) drawHistogram(sql, mine);
    else clearChart(histogram, h("p", { class: "empty" }, "Select a time column to see the matching rows over time."));
  }

  function showError(e, text) {
    editor.setAttribute("aria-invalid", "true");
    const message = e.message || String(e);
    // Positions refer to the SQL sent; they match the editor's text unless $range moved them.
    const pos = text.includes("$range") ? null : errorPosition(text, message);
    const parts = [h("strong", {}, e.status === 403 ? "Refused: " : "Error: "), message];
    if (pos) {
      const line = text.split("\n")[pos.line - 1];
      parts.push("\n\n", `${pos.line} | ${line}`, "\n", h("span", { class: "caret" }, `${" ".repeat(String(pos.line).length + 3 + pos.column - 1)}^`));
      editor.focus();
      editor.setSelectionRange(pos.offset, Math.min(text.length, pos.offset + 1));
    } else {
      editor.focus();
    }
    replace(errorEl, h("div", { class: "error", role: "alert" }, parts));
  }

  function showResults(r) {
    let page = 0;
    const pages = Math.max(1, Math.ceil(r.rows.length / PAGE_SIZE));
    const info = h("span", { id: "page-info", "aria-live": "polite" });
    const prev = h("button", { type: "button", id: "page-prev", "aria-label": "Previous page" }, "← Previous");
    const next = h("button", { type: "button", id: "page-next", "aria-label": "Next page" }, "Next →");
    const csv = h("button", { type: "button", id: "csv" }, "Export CSV");
    const tableBox = h("div", { class: "scroll" });
    const draw = () => {
      const start = page * PAGE_SIZE;
      const slice = r.rows.slice(start, start + PAGE_SIZE);
      info.textContent = r.rows.length
        ? `Rows ${num(start + 1)}–${num(start + slice.length)} of ${num(r.rows.length)}${r.truncated ? " (cut at the row limit)" : ""} · page ${page + 1} of ${pages}`
        : "No rows.";
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
      replace(tableBox, resultTable(r.columns, slice));
    };
    prev.addEventListener("click", () => {
      page = Math.max(0, page - 1);
      draw();
    });
    next.addEventListener("click", () => {
      page = Math.min(pages - 1, page + 1);
      draw();
    });
    csv.addEventListener("click", () => {
      const name = `kestrel-${new Date().toISOString().replace(/[:.]/g, "-")}.csv`;
      download(name, toCsv(r.columns, r.rows));
    });
    replace(results, h("div", { class: "pager" }, prev, next, info, h("span", { style: "flex:1" }), csv), tableBox);
    draw();
  }

  async function drawHistogram(sql, mine) {
    clearChart(histogram, loading());
    try {
      const span = await query(`SELECT min(time), max(time) FROM (${sql}) AS q`);
      if (mine !== runId || !ctx.current()) return;
      const [min, max] = span.rows[0] || [];
      if (!min) return clearChart(histogram, h("p", { class: "empty" }, "No rows."));
      const from = new Date(min);
      const to = new Date(Math.max(new Date(max).getTime() + 1000, from.getTime() + 60000));
      const seconds = (to - from) / 1000;
      const step = stepFor(seconds, 100);
      const hrange = { from, to, seconds, step };
      const r = await query(`SELECT date_bin(INTERVAL '${step} seconds', time, TIMESTAMP '1970-01-01T00:00:00Z') AS b, 'rows' AS k, count(*) AS n FROM (${sql}) AS q GROUP BY 1`);
      if (mine !== runId || !ctx.current()) return;
      timeChart(histogram, alignBuckets(r.rows, hrange, ["rows"]), { kind: "bars", height: 120, yLabel: "rows" });
    } catch (e) {
      if (mine === runId && ctx.current()) clearChart(histogram, h("p", { class: "empty" }, `No histogram: ${e.message}`));
    }
  }

  run();
}

function resultTable(columns, rows) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)));
  const body = rows.map((row) =>
    h(
      "tr",
      {},
      row.map((v, i) => {
        const c = columns[i];
        const text = v === null ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
        const kind = ENTITY_COLUMNS[c];
        if (kind && v) return h("td", { class: "cell" }, h("a", { href: entityHref(kind, text) }, text));
        const td = h("td", { class: "cell", title: text.length > 60 ? "Click to expand" : null }, text);
        if (text.length > 60) {
          td.tabIndex = 0;
          const toggle = () => td.classList.toggle("open");
          td.addEventListener("click", toggle);
          td.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), toggle()));
        }
        return td;
      }),
    ),
  );
  return h("table", { class: "data", id: "results-table" }, h("thead", {}, head), h("tbody", {}, body));
}
