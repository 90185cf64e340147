// Building SQL text safely from values the user picked.

/** A string literal: 'it''s'. */
export function lit(value) {
  return `'${String(value).replaceAll("'", "''")}'`;
}

/** A column or table name, quoted unless it is plain snake_case. */
export function ident(name) {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${String(name).replaceAll('"', '""')}"`;
}

/** A timestamp literal for a Date. */
export function ts(date) {
  return `TIMESTAMP ${lit(date.toISOString())}`;
}

/** `time >= from AND time < to` for a range. */
export function timeFilter(range, column = "time") {
  return `${ident(column)} >= ${ts(range.from)} AND ${ident(column)} < ${ts(range.to)}`;
}

/** The bucket expression of a histogram with `stepSeconds` wide buckets. */
export function bucket(stepSeconds, column = "time") {
  return `date_bin(INTERVAL '${stepSeconds} seconds', ${ident(column)}, TIMESTAMP '1970-01-01T00:00:00Z')`;
}

/** Rows as CSV text (RFC 4180). */
export function toCsv(columns, rows) {
  const cell = (v) => {
    if (v === null || v === undefined) return "";
    const s = typeof v === "object" ? JSON.stringify(v) : String(v);
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [columns.map(cell).join(","), ...rows.map((r) => r.map(cell).join(","))].join("\r\n") + "\r\n";
}

/** Where an SQL error points, from DataFusion's "Line: L, Column: C", as an offset into `sql`. */
export function errorPosition(sql, message) {
  const m = /Line: (\d+), Column: (\d+)/.exec(message);
  if (!m) return null;
  const line = Number(m[1]);
  const column = Number(m[2]);
  const lines = sql.split("\n");
  if (line < 1 || line > lines.length) return null;
  let offset = 0;
  for (let i = 0; i < line - 1; i++) offset += lines[i].length + 1;
  return { line, column, offset: offset + Math.max(0, Math.min(column - 1, lines[line - 1].length)) };
}
