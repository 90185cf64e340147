// Time-series charts with uPlot (vendored, MIT): histograms and rate lines.

import uPlot from "./vendor/uplot/uPlot.esm.js";

const PALETTE = ["#7cc4ff", "#f2a541", "#4cc38a", "#c792ea", "#ff6b6b", "#f2c94c", "#5ad1c9", "#ff9ecd", "#a3b8cc"];

/** Colors of Falco priorities, most severe first. */
export const PRIORITY_COLORS = {
  Emergency: "#ff2d6f",
  Alert: "#ff3d7f",
  Critical: "#ff4d8d",
  Error: "#ff6b6b",
  Warning: "#f2c94c",
  Notice: "#7cc4ff",
  Informational: "#5a9fd6",
  Info: "#5a9fd6",
  Debug: "#a3b8cc",
};

export function color(i) {
  return PALETTE[i % PALETTE.length];
}

/**
 * Buckets rows of [bucketTime, key, count] into aligned series for uPlot.
 * Returns {xs (seconds), series: [{label, values}]} with a zero for every empty bucket.
 */
export function alignBuckets(rows, range, keys) {
  const step = range.step;
  const start = Math.floor(range.from.getTime() / 1000 / step) * step;
  const end = range.to.getTime() / 1000;
  const xs = [];
  for (let t = start; t < end; t += step) xs.push(t);
  const index = new Map(xs.map((t, i) => [t, i]));
  const labels = keys || [...new Set(rows.map((r) => r[1]))].sort();
  const values = new Map(labels.map((k) => [k, new Array(xs.length).fill(0)]));
  for (const [b, key, n] of rows) {
    const t = Math.floor(new Date(b).getTime() / 1000 / step) * step;
    const i = index.get(t);
    if (i === undefined || !values.has(key)) continue;
    values.get(key)[i] += Number(n) || 0;
  }
  return { xs, series: labels.map((k) => ({ label: k, values: values.get(k) })) };
}

function stack(series) {
  // uPlot draws series as given; stacking adds each series to the ones below it.
  const out = [];
  let acc = null;
  for (const s of series) {
    acc = acc ? acc.map((v, i) => v + s.values[i]) : s.values.slice();
    out.push({ ...s, stacked: acc });
  }
  return out;
}

/**
 * Draws a chart into `el`: {xs, series} with `kind` "bars" (stacked) or "lines".
 * Returns the uPlot instance; it follows the element's width.
 */
export function timeChart(el, data, { kind = "bars", height = 200, colors = {}, yLabel = "", markers = [] } = {}) {
  el.replaceChildren();
  el.classList.add("chart");
  const series = kind === "bars" ? stack(data.series) : data.series;
  // Stacked bars: draw the tallest (last) first so the lower ones stay visible on top.
  const order = kind === "bars" ? series.map((_, i) => i).reverse() : series.map((_, i) => i);
  // A bar of height zero would still be stroked: empty buckets are null, not drawn.
  const uData = [data.xs, ...order.map((i) => (kind === "bars" ? series[i].stacked.map((v, j) => (series[i].values[j] ? v : null)) : series[i].values))];
  const bars = uPlot.paths.bars({ size: [0.85, 40], gap: 1 });
  const opts = {
    width: Math.max(300, el.clientWidth || 600),
    height,
    cursor: { drag: { x: false, y: false } },
    legend: { live: true },
    scales: { x: { time: true } },
    axes: [
      { stroke: "#9fb0c0", grid: { stroke: "#22313f" }, ticks: { stroke: "#2b3d50" } },
      { stroke: "#9fb0c0", grid: { stroke: "#22313f" }, ticks: { stroke: "#2b3d50" }, label: yLabel, size: 56 },
    ],
    series: [
      {},
      ...order.map((i) => {
        const s = series[i];
        const c = colors[s.label] || color(i);
        return kind === "bars"
          ? { label: String(s.label), stroke: c, fill: c, paths: bars, points: { show: false }, value: (_u, _v, _si, idx) => (idx === null ? "" : fmt(s.values[idx])) }
          : { label: String(s.label), stroke: c, width: 1.5, points: { show: false }, value: (_u, v) => (v === null ? "" : fmt(v)) };
      }),
    ],
    hooks: {
      draw: [
        (u) => {
          // Vertical markers, e.g. an alert's first and last occurrence.
          const ctx = u.ctx;
          for (const m of markers) {
            const x = u.valToPos(m.time, "x", true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.save();
            ctx.strokeStyle = m.color || "#ff4d8d";
            ctx.setLineDash([4, 3]);
            ctx.lineWidth = 2;
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.restore();
          }
        },
      ],
    },
  };
  const plot = new uPlot(opts, uData, el);
  const observer = new ResizeObserver(() => {
    const w = el.clientWidth;
    if (w && Math.abs(w - plot.width) > 4) plot.setSize({ width: w, height });
  });
  observer.observe(el);
  el.dataset.rendered = "true";
  return plot;
}

/** Empties a chart's element (so a new chart can be awaited) and shows `children` instead. */
export function clearChart(el, ...children) {
  delete el.dataset.rendered;
  el.classList.remove("chart");
  el.replaceChildren(...children);
}

function fmt(v) {
  if (v === null || v === undefined) return "";
  if (Math.abs(v) >= 100 || Number.isInteger(v)) return Math.round(v).toLocaleString("en-US");
  return v.toFixed(2);
}
