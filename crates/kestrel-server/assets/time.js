// The time range shared by every page: a choice of "last N", kept for the session.

const KEY = "kestrel.range";

export const RANGES = [
  { id: "15m", label: "Last 15 minutes", seconds: 15 * 60 },
  { id: "1h", label: "Last hour", seconds: 3600 },
  { id: "3h", label: "Last 3 hours", seconds: 3 * 3600 },
  { id: "6h", label: "Last 6 hours", seconds: 6 * 3600 },
  { id: "24h", label: "Last 24 hours", seconds: 24 * 3600 },
  { id: "7d", label: "Last 7 days", seconds: 7 * 86400 },
  { id: "30d", label: "Last 30 days", seconds: 30 * 86400 },
];

const DEFAULT = "3h";
const STEPS = [1, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

const listeners = new Set();

export function rangeId() {
  const id = sessionStorage.getItem(KEY);
  return RANGES.some((r) => r.id === id) ? id : DEFAULT;
}

export function setRangeId(id) {
  sessionStorage.setItem(KEY, id);
  for (const f of listeners) f();
}

/** Calls `f` when the range changes; returns a function that stops it. */
export function onRangeChange(f) {
  listeners.add(f);
  return () => listeners.delete(f);
}

/** A bucket width giving about `buckets` buckets over `seconds`. */
export function stepFor(seconds, buckets = 120) {
  const want = seconds / buckets;
  return STEPS.find((s) => s >= want) || STEPS[STEPS.length - 1];
}

/** The current range: {from, to, seconds, step, label}, `to` being now (rounded up to the step). */
export function currentRange() {
  const r = RANGES.find((x) => x.id === rangeId());
  const step = stepFor(r.seconds);
  const toMs = Math.ceil(Date.now() / (step * 1000)) * step * 1000;
  return { id: r.id, label: r.label, seconds: r.seconds, step, from: new Date(toMs - r.seconds * 1000), to: new Date(toMs) };
}

/** A range around two times, with a margin, for pages about one alert. */
export function rangeAround(first, last, marginSeconds = 600) {
  const from = new Date(new Date(first).getTime() - marginSeconds * 1000);
  const to = new Date(new Date(last).getTime() + marginSeconds * 1000);
  const seconds = (to - from) / 1000;
  return { from, to, seconds, step: stepFor(seconds, 80), label: "around the alert" };
}
