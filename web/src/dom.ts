/** A tiny element builder: text always goes in as text (never HTML), so API strings cannot inject markup. */
type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === "number" ? String(c) : c);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
export function s(tag: string, attrs: Record<string, string | number> = {}, ...children: (Node | string)[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

export const pct = (x: number | null | undefined, digits = 1): string =>
  x === null || x === undefined ? "–" : `${(x * 100).toFixed(digits)} %`;
export const num = (x: number | null | undefined, digits = 2): string =>
  x === null || x === undefined ? "–" : x.toFixed(digits);
export const signed = (x: number | null | undefined, digits = 2, unit = ""): string =>
  x === null || x === undefined ? "–" : `${x > 0 ? "+" : ""}${x.toFixed(digits)}${unit}`;
export const when = (iso: string | null | undefined): string =>
  iso ? new Date(iso).toISOString().slice(0, 16).replace("T", " ") : "–";

export function errorBox(message: string): HTMLElement {
  return h("p", { class: "error", role: "alert" }, message);
}

/** Decimals that show a price's moves: 2 from 10 up, 4 from 1, 6 below (crypto pairs under a dollar). */
export const priceDigits = (x: number): number => (Math.abs(x) >= 10 ? 2 : Math.abs(x) >= 1 ? 4 : 6);
export const price = (x: number | null | undefined): string =>
  x === null || x === undefined ? "–" : x.toFixed(priceDigits(x));
