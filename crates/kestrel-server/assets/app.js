// The console's shell: login, the page router (#/page/...), the shared time range and
// keyboard shortcuts.

import { api, catalog, setToken, setUnauthorizedHandler, token } from "./api.js";
import { h, replace, toast } from "./dom.js";
import { RANGES, onRangeChange, rangeId, setRangeId } from "./time.js";
import { PAGE_NAMES, go, route } from "./nav.js";
import * as overview from "./pages/overview.js";
import * as alerts from "./pages/alerts.js";
import * as search from "./pages/search.js";
import * as entities from "./pages/entities.js";
import * as rules from "./pages/rules.js";

const PAGES = { overview, alerts, search, entities, rules };
console.assert(PAGE_NAMES.every((p) => PAGES[p]));
const main = document.getElementById("main");
const topbar = document.getElementById("topbar");

let generation = 0;
let cleanup = null;

async function render() {
  if (!token()) return showLogin();
  topbar.hidden = false;
  const r = route();
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.dataset.page === r.page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const mine = ++generation;
  if (cleanup) cleanup();
  cleanup = null;
  main.keyHandler = null;
  const root = h("div", { class: "page", "data-page": r.page });
  replace(main, root);
  document.title = `${r.page[0].toUpperCase()}${r.page.slice(1)} · Kestrel`;
  try {
    cleanup = (await PAGES[r.page].render(root, r, { current: () => mine === generation })) || null;
  } catch (e) {
    if (mine === generation) root.appendChild(h("div", { class: "error", role: "alert" }, e.message || String(e)));
  }
}

function focusMain() {
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

function showLogin(message) {
  topbar.hidden = true;
  if (cleanup) cleanup();
  cleanup = null;
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "token-help",
  });
  const error = h("div", { id: "login-error", role: "alert" }, message ? h("div", { class: "error" }, message) : null);
  const form = h(
    "form",
    { class: "login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, h("img", { src: "/console/favicon.svg", alt: "", width: 28, height: 28 }), "Kestrel"),
    h("label", { for: "token" }, "API token"),
    input,
    h("p", { id: "token-help" }, "Paste a token with role viewer or admin. ", h("code", {}, "kestrel up"), " wrote one to ", h("code", {}, "kestrel-data/admin.token"), ". It is kept for this browser tab only."),
    error,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "login-submit" }, "Sign in")),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) return;
    try {
      await api("/v1/tables", { tokenOverride: t });
      setToken(t);
      input.value = "";
      await catalog(true);
      if (!location.hash || location.hash === "#" || location.hash.startsWith("#/login")) location.hash = "#/overview";
      else render();
    } catch (err) {
      replace(error, h("div", { class: "error" }, err.status === 401 ? `Sign-in refused: ${err.message}` : err.message));
      input.select();
    }
  });
  replace(main, form);
  document.title = "Sign in · Kestrel";
  input.focus();
}

function setupRange() {
  const select = document.getElementById("range");
  replace(select, RANGES.map((r) => h("option", { value: r.id }, r.label)));
  select.value = rangeId();
  select.addEventListener("change", () => setRangeId(select.value));
  onRangeChange(() => {
    select.value = rangeId();
    render();
  });
}

function setupKeys() {
  const help = document.getElementById("help");
  document.getElementById("help-button").addEventListener("click", () => help.showModal());
  document.getElementById("help-close").addEventListener("click", () => help.close());
  let pendingG = false;
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    const typing = t instanceof HTMLElement && (t.matches("input, textarea, select") || t.isContentEditable);
    if (typing || e.ctrlKey || e.metaKey || e.altKey || !token()) return;
    if (pendingG) {
      pendingG = false;
      const page = { o: "overview", a: "alerts", s: "search", e: "entities", r: "rules" }[e.key];
      if (page) {
        e.preventDefault();
        go(page);
      }
      return;
    }
    if (e.key === "g") {
      pendingG = true;
      setTimeout(() => (pendingG = false), 1500);
    } else if (e.key === "?") {
      help.showModal();
    } else if (e.key === "t") {
      e.preventDefault();
      document.getElementById("range").focus();
    } else if (e.key === "/") {
      const field = main.querySelector("[data-slash]");
      if (field) {
        e.preventDefault();
        field.focus();
      }
    } else if (main.keyHandler && main.keyHandler(e)) {
      e.preventDefault();
    }
  });
}

setUnauthorizedHandler((message) => {
  setToken(null);
  showLogin(`Signed out: ${message}`);
});

document.getElementById("logout").addEventListener("click", () => {
  setToken(null);
  showLogin();
  toast("Signed out.");
});
document.getElementById("refresh").addEventListener("click", () => {
  catalog(true);
  render();
});
window.addEventListener("hashchange", async () => {
  await render();
  focusMain();
});
setupRange();
setupKeys();
render();
