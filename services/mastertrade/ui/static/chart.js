// The equity chart, drawn as SVG by hand (no chart library): a line of equity over time, the
// area between it and the starting balance (P&L zero, dashed), three labelled grid lines.
// The SVG's viewBox follows its CSS size, so text is never stretched on a phone.

const NS = "http://www.w3.org/2000/svg";
const PAD = { top: 12, right: 12, bottom: 24, left: 72 };
const axis = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

function node(name, attributes, text) {
  const element = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

// [min, max] of the values and the baseline, padded so that a flat line sits mid-chart.
function range(values) {
  let low = Math.min(...values);
  let high = Math.max(...values);
  const pad = high > low ? (high - low) * 0.08 : Math.max(Math.abs(high) * 0.01, 1);
  return [low - pad, high + pad];
}

function scales(points, baseline, width, height) {
  const times = points.map((p) => p.t);
  const [t0, t1] = [Math.min(...times), Math.max(...times)];
  const values = points.map((p) => p.v).concat(baseline === null ? [] : [baseline]);
  const [v0, v1] = range(values);
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  return {
    x: (p, i) => PAD.left + (t1 > t0 ? ((p.t - t0) / (t1 - t0)) * plotW : (i / Math.max(points.length - 1, 1)) * plotW),
    y: (v) => PAD.top + (1 - (v - v0) / (v1 - v0)) * plotH,
    v0, v1, t0, t1,
  };
}

function clear(svg) {
  for (const child of [...svg.childNodes]) {
    if (child.nodeName !== "title" && child.nodeName !== "desc") child.remove();
  }
}

export function drawEquity(svg, series) {
  const width = Math.max(svg.clientWidth || 600, 200);
  const height = Math.max(svg.clientHeight || 220, 120);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  clear(svg);
  const points = (series?.points ?? [])
    .map((p) => ({ t: Date.parse(p.time), v: Number(p.equity) }))
    .filter((p) => Number.isFinite(p.t) && Number.isFinite(p.v));
  const baseline = series?.baseline == null ? null : Number(series.baseline);
  svg.dataset.points = String(points.length);
  const desc = svg.querySelector("desc");
  if (points.length === 0) {
    svg.append(node("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" }, "No valuation yet"));
    desc.textContent = "No valuation yet.";
    return;
  }
  const s = scales(points, baseline, width, height);
  for (let i = 0; i <= 2; i += 1) {
    const value = s.v0 + ((s.v1 - s.v0) * i) / 2;
    const y = s.y(value);
    svg.append(node("line", { x1: PAD.left, x2: width - PAD.right, y1: y, y2: y, class: "grid" }));
    svg.append(node("text", { x: PAD.left - 6, y: y + 4, "text-anchor": "end", class: "tick" }, axis.format(value)));
  }
  const xy = points.map((p, i) => [s.x(p, i), s.y(p.v)]);
  if (baseline !== null) {
    const y = s.y(baseline);
    svg.append(node("line", { x1: PAD.left, x2: width - PAD.right, y1: y, y2: y, class: "baseline" }));
    const area = `M${xy[0][0]},${y} ` + xy.map(([x, yy]) => `L${x},${yy}`).join(" ") + ` L${xy.at(-1)[0]},${y} Z`;
    const last = points.at(-1).v;
    svg.append(node("path", { d: area, class: last >= baseline ? "area gain" : "area loss" }));
  }
  svg.append(node("polyline", { points: xy.map(([x, y]) => `${x},${y}`).join(" "), class: "line" }));
  const [lx, ly] = xy.at(-1);
  svg.append(node("circle", { cx: lx, cy: ly, r: 3.5, class: "dot" }));
  const first = new Date(s.t0).toLocaleTimeString([], { hour12: false });
  const last = new Date(s.t1).toLocaleTimeString([], { hour12: false });
  svg.append(node("text", { x: PAD.left, y: height - 6, class: "tick" }, first));
  svg.append(node("text", { x: width - PAD.right, y: height - 6, "text-anchor": "end", class: "tick" }, last));
  desc.textContent = `${points.length} valuations from ${first} to ${last}; ` +
    `equity from ${axis.format(points[0].v)} to ${axis.format(points.at(-1).v)}.`;
}
