/** Backtests: the list, and one result rendered from its summary.json and equity points. */
import { fetchJson } from "../api";
import { equityChart } from "../charts";
import { errorBox, h, num, pct } from "../dom";

export interface BacktestItem {
  id: string; start: string | null; end: string | null; profile: string | null; data: string | null;
  model: string | null; in_sample: boolean; trades: number | null; total_return: number | null;
  sharpe: number | null; max_drawdown: number | null;
}
export interface EquityPoint { timestamp: string; equity: number; cash: number; exposure: number; benchmark: number | null }

export async function backtestsPage(root: HTMLElement): Promise<void> {
  root.append(h("h1", {}, "Backtests"), h("p", { class: "lede" }, "Simulations of the engine on past data, made with `tradesignals backtest`. Not the live track record."));
  let list: BacktestItem[];
  try {
    list = await fetchJson<BacktestItem[]>("/api/backtests");
  } catch (err) {
    root.append(errorBox((err as Error).message));
    return;
  }
  if (!list.length) {
    root.append(h("p", { class: "empty" }, "No backtest yet: run `tradesignals backtest`."));
    return;
  }
  root.append(h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Backtests" }, h("table", {},
    h("thead", {}, h("tr", {}, ...["id", "period", "profile", "trades", "return", "Sharpe", "max drawdown"].map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, ...list.map((b) => h("tr", {},
      h("td", {}, h("a", { href: `/backtests/${encodeURIComponent(b.id)}` }, b.id)),
      h("td", {}, `${(b.start ?? "?").slice(0, 10)} → ${(b.end ?? "?").slice(0, 10)}`),
      h("td", {}, b.profile ?? "–"),
      h("td", { class: "n" }, b.trades ?? "–"),
      h("td", { class: "n" }, pct(b.total_return)),
      h("td", { class: "n" }, num(b.sharpe)),
      h("td", { class: "n" }, pct(b.max_drawdown)),
      ))))));
}

export async function backtestPage(root: HTMLElement, id: string): Promise<void> {
  root.append(h("p", {}, h("a", { href: "/backtests" }, "← all backtests")), h("h1", {}, `Backtest ${id}`));
  const enc = encodeURIComponent(id);
  let summary: Record<string, unknown>, points: EquityPoint[];
  try {
    [summary, points] = await Promise.all([
      fetchJson<Record<string, unknown>>(`/api/backtests/${enc}`),
      fetchJson<EquityPoint[]>(`/api/backtests/${enc}/equity`),
    ]);
  } catch (err) {
    root.append(errorBox((err as Error).message));
    return;
  }
  if (points.length >= 2) root.append(equityChart(points.map((p) => ({ t: Date.parse(p.timestamp), v: p.equity })), `Equity of backtest ${id}`));
  const scalars = Object.entries(summary).filter(([, v]) => v === null || ["number", "string", "boolean"].includes(typeof v));
  const nested = Object.entries(summary).filter(([, v]) => v !== null && typeof v === "object" && !Array.isArray(v));
  const dl = (entries: [string, unknown][]): HTMLElement =>
    h("dl", { class: "facts" }, ...entries.flatMap(([k, v]) => [h("dt", {}, k.replace(/_/g, " ")), h("dd", {}, typeof v === "number" ? String(Number.isInteger(v) ? v : v.toFixed(4)) : String(v))]));
  root.append(h("h2", {}, "Summary"), dl(scalars));
  for (const [k, v] of nested) {
    const inner = Object.entries(v as Record<string, unknown>).filter(([, x]) => x === null || typeof x !== "object");
    if (inner.length) root.append(h("h3", {}, k.replace(/_/g, " ")), dl(inner));
  }
  root.append(h("p", {}, h("a", { href: `/api/backtests/${enc}/report` }, "Full report"), " · ", h("a", { href: `/api/backtests/${enc}/trades.csv` }, "trades (CSV)")));
}
