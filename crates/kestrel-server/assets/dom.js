// Small DOM helpers: build elements from data without ever parsing strings as HTML.

/** Creates an element: h("a", {href: "#/x", class: "y"}, "text", child, [more]). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v);
    } else if (k === "class") {
      el.className = v;
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else if (k === "value") {
      el.value = v;
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A panel with a heading. */
export function panel(title, body, cls = "") {
  return h("section", { class: `panel ${cls}`, "aria-label": title }, h("h2", {}, title), body);
}

/** A loading placeholder. */
export function loading(what = "Loading") {
  return h("div", { class: "loading", role: "status" }, what);
}

/** An error box for a failed request. */
export function errorBox(err) {
  return h("div", { class: "error", role: "alert" }, err && err.message ? err.message : String(err));
}

const numberFormat = new Intl.NumberFormat("en-US");
/** 12345 → "12,345". */
export function num(n) {
  return n === null || n === undefined ? "" : numberFormat.format(n);
}

/** An RFC 3339 time as local "YYYY-MM-DD HH:MM:SS". */
export function when(t) {
  if (!t) return "";
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const p = (x) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A priority badge. */
export function priorityBadge(p) {
  const name = String(p || "?");
  return h("span", { class: `badge prio-${name.toLowerCase()}` }, name[0].toUpperCase() + name.slice(1));
}

/** A status badge. */
export function statusBadge(s) {
  return h("span", { class: `badge status-${s}` }, s);
}

/** A table from column names and rows; `cell(col, value, row)` may return a node. */
export function dataTable(columns, rows, cell = (_c, v) => v, opts = {}) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: opts.numeric?.includes(c) ? "num" : "" }, c)));
  const body = rows.map((r, i) =>
    h("tr", { dataset: { index: i } }, columns.map((c, j) => h("td", { class: opts.numeric?.includes(c) ? "num" : "" }, cell(c, Array.isArray(r) ? r[j] : r[c], r)))),
  );
  return h("table", { class: "data" }, h("thead", {}, head), h("tbody", {}, body));
}

/** A "top N" table with proportional bars; `link(key)` gives an href for the key, if any. */
export function topTable(label, rows, link) {
  if (!rows.length) return h("p", { class: "empty" }, "Nothing in this time range.");
  const max = Math.max(...rows.map((r) => r[1]), 1);
  return h(
    "table",
    { class: "data" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, label), h("th", { scope: "col", class: "num" }, "count"))),
    h(
      "tbody",
      {},
      rows.map(([key, n]) => {
        const text = key === null || key === "" ? "(none)" : String(key);
        const href = link && key !== null && key !== "" ? link(key) : null;
        return h(
          "tr",
          {},
          h("td", { class: "bar-cell" }, h("div", { class: "bar", style: `width:${(100 * n) / max}%` }), h("span", {}, href ? h("a", { href }, text) : text)),
          h("td", { class: "num" }, num(n)),
        );
      }),
    ),
  );
}

/** Shows a short message at the bottom right. */
export function toast(message, bad = false) {
  const box = document.getElementById("toast");
  const m = h("div", { class: `msg${bad ? " bad" : ""}` }, message);
  box.appendChild(m);
  setTimeout(() => m.remove(), 5000);
}

/** Downloads text as a file. */
export function download(name, text, type = "text/csv") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** j/k move a selection through the rows of a table body; Enter opens the row's first link. */
export function rowKeys(tbody) {
  let index = -1;
  const rows = () => [...tbody.querySelectorAll("tr")];
  const select = (i) => {
    const rs = rows();
    if (!rs.length) return;
    index = Math.max(0, Math.min(rs.length - 1, i));
    rs.forEach((r, j) => r.classList.toggle("selected", j === index));
    const link = rs[index].querySelector("a, button");
    if (link) link.focus();
  };
  return (e) => {
    if (e.key === "j") select(index + 1);
    else if (e.key === "k") select(index - 1);
    else return false;
    return true;
  };
}
