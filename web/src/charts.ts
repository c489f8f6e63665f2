/** Two small SVG charts drawn by hand (no chart library to ship): reliability and equity. */
import { s } from "./dom";

export interface Bucket {
  lo: number;
  hi: number;
  n: number;
  mean_confidence: number;
  hit_rate: number;
}

/** Confidence bucket -> realised hit rate, with the diagonal a calibrated model sits on. */
export function reliabilityChart(buckets: Bucket[]): SVGElement {
  const W = 320, H = 320, P = 40;
  const lo = Math.max(0, Math.floor(Math.min(0.5, ...buckets.map((b) => Math.min(b.lo, b.hit_rate))) * 10) / 10);
  const hi = Math.min(1, Math.ceil(Math.max(0.5, ...buckets.map((b) => Math.max(b.hi, b.hit_rate))) * 10) / 10);
  const x = (v: number): number => P + ((v - lo) / (hi - lo || 1)) * (W - 2 * P);
  const y = (v: number): number => H - P - ((v - lo) / (hi - lo || 1)) * (H - 2 * P);
  const maxN = Math.max(1, ...buckets.map((b) => b.n));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-labelledby": "rel-title" },
    s("title", { id: "rel-title" }, "Reliability: realised hit rate by confidence bucket; the diagonal is perfect calibration"),
    s("rect", { x: P, y: P, width: W - 2 * P, height: H - 2 * P, class: "frame" }),
    s("line", { x1: x(lo), y1: y(lo), x2: x(hi), y2: y(hi), class: "diagonal" }),
  );
  for (let t = lo; t <= hi + 1e-9; t += 0.1) {
    const v = Math.round(t * 10) / 10;
    svg.append(
      s("text", { x: x(v), y: H - P + 16, class: "tick", "text-anchor": "middle" }, `${Math.round(v * 100)}`),
      s("text", { x: P - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, `${Math.round(v * 100)}`),
    );
  }
  svg.append(
    s("text", { x: W / 2, y: H - 6, class: "label", "text-anchor": "middle" }, "confidence (%)"),
    s("text", { x: 12, y: H / 2, class: "label", "text-anchor": "middle", transform: `rotate(-90 12 ${H / 2})` }, "realised (%)"),
  );
  for (const b of buckets) {
    const r = 3 + 7 * Math.sqrt(b.n / maxN);
    svg.append(s("circle", { cx: x(b.mean_confidence), cy: y(b.hit_rate), r, class: "point" },
      s("title", {}, `${Math.round(b.lo * 100)}–${Math.round(b.hi * 100)} %: ${b.n} closes, realised ${(b.hit_rate * 100).toFixed(1)} %`)));
  }
  return svg;
}

/** A line of (time, equity) points. */
export function equityChart(points: { t: number; v: number }[], label: string): SVGElement {
  const W = 640, H = 240, P = 36;
  const ts = points.map((p) => p.t), vs = points.map((p) => p.v);
  const t0 = Math.min(...ts), t1 = Math.max(...ts), v0 = Math.min(...vs), v1 = Math.max(...vs);
  const x = (t: number): number => P + ((t - t0) / (t1 - t0 || 1)) * (W - 2 * P);
  const y = (v: number): number => H - P - ((v - v0) / (v1 - v0 || 1)) * (H - 2 * P);
  const d = points.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
  return s("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart wide", role: "img", "aria-label": label },
    s("rect", { x: P, y: P, width: W - 2 * P, height: H - 2 * P, class: "frame" }),
    s("path", { d, class: "equity" }),
    s("text", { x: P - 4, y: y(v1) + 4, class: "tick", "text-anchor": "end" }, v1.toPrecision(4)),
    s("text", { x: P - 4, y: y(v0) + 4, class: "tick", "text-anchor": "end" }, v0.toPrecision(4)),
    s("text", { x: P, y: H - P + 16, class: "tick" }, new Date(t0).toISOString().slice(0, 10)),
    s("text", { x: W - P, y: H - P + 16, class: "tick", "text-anchor": "end" }, new Date(t1).toISOString().slice(0, 10)),
  );
}
