// Routes live in the URL's hash: #/page/part?param=value. Tokens never do.

export const PAGE_NAMES = ["overview", "alerts", "search", "entities", "rules"];

/** The current route: #/alerts/abc?status=firing → {page: "alerts", rest: ["abc"], params}. */
export function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, qs = ""] = hash.split("?");
  const [page = "overview", ...rest] = path.split("/").map(decodeURIComponent);
  return { page: PAGE_NAMES.includes(page) ? page : "overview", rest, params: new URLSearchParams(qs) };
}

/** The href of a route. */
export function href(page, rest = [], params = {}) {
  const qs = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined)).toString();
  return `#/${[page, ...rest].map(encodeURIComponent).join("/")}${qs ? `?${qs}` : ""}`;
}

/** Navigates to a route. */
export function go(page, rest = [], params = {}) {
  location.hash = href(page, rest, params);
}

/** The href of an entity's timeline. */
export function entityHref(kind, value) {
  return href("entities", [], { kind, value });
}
