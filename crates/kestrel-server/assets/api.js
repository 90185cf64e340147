// The public REST API (see /v1/openapi.json) with the session's bearer token.
//
// The token lives in sessionStorage only: it is sent in the Authorization header, never put in
// a URL, never logged.

const TOKEN_KEY = "kestrel.token";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

let onUnauthorized = () => {};

/** Called when the server refuses the token (401): the app goes back to the login form. */
export function setUnauthorizedHandler(f) {
  onUnauthorized = f;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Calls the API; answers the parsed JSON or throws an ApiError with the server's message. */
export async function api(path, { method = "GET", body, tokenOverride } = {}) {
  const headers = { Accept: "application/json" };
  const t = tokenOverride || token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (e) {
    throw new ApiError(0, `cannot reach the server: ${e.message}`);
  }
  const text = await resp.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const message = (data && data.error) || `${resp.status} ${resp.statusText}`;
    if (resp.status === 401 && !tokenOverride) onUnauthorized(message);
    throw new ApiError(resp.status, message);
  }
  return data;
}

/** Runs read-only SQL: {columns, rows, truncated}. */
export function query(sql, maxRows) {
  const body = { sql };
  if (maxRows) body.max_rows = maxRows;
  return api("/v1/query", { method: "POST", body });
}

/** Runs SQL and answers its rows as objects keyed by column name. */
export async function queryObjects(sql, maxRows) {
  const r = await query(sql, maxRows);
  return r.rows.map((row) => Object.fromEntries(r.columns.map((c, i) => [c, row[i]])));
}

let catalogPromise = null;
let catalogAt = 0;

/** The tables, their columns and row counts (GET /v1/tables), cached for 30 s. */
export function catalog(refresh = false) {
  if (refresh || !catalogPromise || Date.now() - catalogAt > 30000) {
    catalogAt = Date.now();
    catalogPromise = api("/v1/tables").then((r) => {
      const byName = {};
      for (const t of r.tables) {
        t.columnNames = new Set(t.columns.map((c) => c.name));
        byName[t.name] = t;
      }
      return { tables: r.tables, byName };
    });
    catalogPromise.catch(() => {
      catalogPromise = null;
    });
  }
  return catalogPromise;
}

/** Alerts (GET /v1/alerts) with the given filters. */
export async function alerts(filters = {}) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v !== undefined && v !== null && v !== "") params.set(k, v);
  const r = await api(`/v1/alerts?${params}`);
  return r.alerts;
}
