/** The landing page: the public track record (closed signals, summary, reliability), with filters. */
import { ApiError, fetchJson, OFFLINE } from "../api";
import { Bucket, equityChart, reliabilityChart } from "../charts";
import { errorBox, h, num, pct, signed, when } from "../dom";
import { BacktestItem, EquityPoint } from "./backtests";

interface HistoryItem {
  id: string; symbol: string; type: string; direction: string; confidence: number; model_version: string;
  created_at: string; closed_at: string; outcome: string | null; win: boolean | null;
  filled_at: string | null; fill_price: number | null; exit_price: number | null;
  net_pnl_pct: number | null; costs_pct: number | null; net_r: number | null; legacy: boolean; seq: number;
}
interface HistoryPage { items: HistoryItem[]; next_before: number | null }
interface Stats {
  closes: number; count: number; not_filled: number; wins: number; losses: number;
  hit_rate: number | null; avg_net_r: number | null; net_profit_factor: number | null; reliability: Bucket[];
}
interface Summary {
  overall: Stats; by_type: Record<string, Stats>; by_symbol: Record<string, Stats>; by_month: Record<string, Stats>;
  checkpoint: { number: number; seq: number; head_hash: string; at: string } | null;
}
interface Saved { query: string; history: HistoryPage; summary: Summary; savedAt: string }

const LAST = "ts.last-track-record.v1";
const PAGE = 50; // rows per page: the first load stays small (bench/webapp.py)
const TYPES = ["swing", "day", "event", "options"];

function filtersFrom(search: string): URLSearchParams {
  const q = new URLSearchParams(search);
  const out = new URLSearchParams();
  for (const k of ["type", "symbol", "month"]) {
    const v = q.get(k);
    if (v) out.set(k, v);
  }
  return out;
}

function select(name: string, label: string, options: string[], value: string | null): HTMLElement {
  const id = `f-${name}`;
  return h("div", { class: "field" },
    h("label", { for: id }, label),
    h("select", { id, name },
      h("option", { value: "" }, "all"),
      ...options.map((o) => h("option", { value: o, selected: o === value }, o))));
}

function statTile(label: string, value: string, hint: string): HTMLElement {
  return h("div", { class: "tile" }, h("div", { class: "tile-value" }, value), h("div", { class: "tile-label" }, label), h("div", { class: "hint" }, hint));
}

function rows(items: HistoryItem[]): HTMLElement[] {
  return items.map((r) =>
    h("tr", { class: r.win ? "win" : r.win === false && r.outcome !== "not_filled" ? "loss" : "" },
      h("td", {}, when(r.closed_at)),
      h("td", {}, h("a", { href: `/signals/${r.id}` }, h("strong", {}, r.symbol))),
      h("td", {}, r.type),
      h("td", {}, r.direction),
      h("td", { class: "n" }, pct(r.confidence)),
      h("td", {}, (r.outcome ?? "–").replace("_", " ")),
      h("td", { class: "n" }, r.fill_price === null ? "not filled" : num(r.fill_price, 2)),
      h("td", { class: "n" }, num(r.exit_price, 2)),
      h("td", { class: "n" }, signed(r.net_pnl_pct, 2, " %")),
      h("td", { class: "n" }, signed(r.net_r, 2, " R")),
    ));
}

export async function trackRecordPage(root: HTMLElement): Promise<void> {
  const filters = filtersFrom(location.search);
  const qs = filters.toString();
  root.append(h("h1", {}, "Track record"),
    h("p", { class: "lede" }, "Every closed signal, with its fill, exit and profit or loss after costs. Anyone can re-check it: ",
      h("a", { href: "/verify" }, "verify it yourself"), "."));
  const status = h("div", { class: "status", role: "status" }, "Loading…");
  root.append(status);

  // Both calls start now; the table is drawn as soon as the history answers (the summary, which
  // the server computes over every close, fills the tiles, filters and chart when it comes).
  const sep = qs ? `&${qs}` : "";
  const historyCall = fetchJson<HistoryPage>(`/api/history?limit=${PAGE}${sep}`);
  const summaryCall = fetchJson<Summary>(`/api/history/summary${qs ? `?${qs}` : ""}`);
  summaryCall.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
  let history: HistoryPage, savedAt: string | null = null, saved: Saved | null = null;
  try {
    history = await historyCall;
  } catch (err) {
    saved = (() => { try { return JSON.parse(localStorage.getItem(LAST) ?? "null") as Saved | null; } catch { return null; } })();
    if (!(err instanceof ApiError && err.status === OFFLINE) || !saved) {
      status.replaceWith(errorBox((err as Error).message));
      return;
    }
    ({ history, savedAt } = saved);
  }
  status.replaceWith(savedAt
    ? h("p", { class: "offline-note", role: "status" }, `Offline: showing the track record saved on ${when(savedAt)} UTC${saved?.query !== qs ? " (without the filters)" : ""}.`)
    : "");

  const tiles = h("section", { class: "tiles", "aria-label": "Summary", "aria-busy": "true" });
  const form = h("form", { class: "filters", "aria-label": "Filters" });
  root.append(tiles, form);

  const tbody = h("tbody", {}, ...rows(history.items));
  const table = h("table", { id: "history-table", class: "history" },
    h("caption", {}, `Closed signals${qs && !savedAt ? " (filtered)" : ""}, most recent first`),
    h("thead", {}, h("tr", {}, ...["closed (UTC)", "symbol", "type", "side", "confidence", "outcome", "fill", "exit", "net P/L", "net R"].map((c) => h("th", { scope: "col" }, c)))),
    tbody);
  const wrap = h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Closed signals" }, table);
  root.append(history.items.length ? wrap : h("p", { class: "empty" }, "No closed signal yet."));
  let before = history.next_before;
  if (before !== null && !savedAt) {
    const more = h("button", { type: "button" }, "Older signals");
    more.addEventListener("click", async () => {
      more.disabled = true;
      try {
        const page = await fetchJson<HistoryPage>(`/api/history?limit=${PAGE}&before=${before}${sep}`);
        tbody.append(...rows(page.items));
        before = page.next_before;
        if (before === null) more.remove(); else more.disabled = false;
      } catch (err) {
        more.replaceWith(errorBox((err as Error).message));
      }
    });
    root.append(more);
  }
  table.dataset.rendered = "1";
  performance.mark("table-rendered");

  let summary: Summary;
  try {
    summary = savedAt && saved ? saved.summary : await summaryCall;
  } catch (err) {
    tiles.replaceWith(errorBox((err as Error).message));
    return;
  }
  if (!savedAt) {
    try {
      localStorage.setItem(LAST, JSON.stringify({ query: qs, history, summary, savedAt: new Date().toISOString() } satisfies Saved));
    } catch { /* storage full or denied: the page still works online */ }
  }
  const o = summary.overall;
  tiles.removeAttribute("aria-busy");
  tiles.append(
    statTile("hit rate", pct(o.hit_rate), `${o.wins} of ${o.count} filled closes won (net R > 0)`),
    statTile("average net R", signed(o.avg_net_r, 2, " R"), "the expectancy per signal, after costs"),
    statTile("profit factor", num(o.net_profit_factor), "winning R ÷ losing R"),
    statTile("closed", String(o.closes), `${o.not_filled} never filled, counted apart`),
  );
  const current = savedAt ? new URLSearchParams(saved?.query ?? "") : filters;
  form.append(
    select("type", "Type", TYPES, current.get("type")),
    select("symbol", "Symbol", Object.keys(summary.by_symbol).sort(), current.get("symbol")),
    select("month", "Month", Object.keys(summary.by_month).sort().reverse(), current.get("month")));
  form.addEventListener("change", () => {
    const next = new URLSearchParams();
    for (const el of form.querySelectorAll("select")) if (el.value) next.set(el.name, el.value);
    history_push(`/${next.toString() ? `?${next}` : ""}`);
  });
  form.dataset.ready = "1";

  root.append(h("section", { class: "reliability" },
    h("h2", {}, "Does confidence mean what it says?"),
    h("p", {}, "Each point is a 5-point confidence bucket: its mean confidence against the share that actually won. A calibrated model sits on the diagonal; bigger points have more closes."),
    o.reliability.length ? reliabilityChart(o.reliability) : h("p", { class: "empty" }, "No filled close yet."),
  ));
  if (summary.checkpoint) {
    const c = summary.checkpoint;
    root.append(h("p", { class: "hint" }, `Signed checkpoint ${c.number}: the ledger had ${c.seq} entries, head ${c.head_hash.slice(0, 12)}…, at ${when(c.at)} UTC.`));
  }
  if (!savedAt) void latestBacktest(root);
}

/** The equity curve of the newest backtest, where the API has any (silently absent otherwise). */
async function latestBacktest(root: HTMLElement): Promise<void> {
  try {
    const list = await fetchJson<BacktestItem[]>("/api/backtests");
    if (!Array.isArray(list) || !list.length) return;
    const latest = list[0];
    const points = await fetchJson<EquityPoint[]>(`/api/backtests/${encodeURIComponent(latest.id)}/equity`);
    if (points.length < 2) return;
    root.append(h("section", {},
      h("h2", {}, "Latest backtest"),
      equityChart(points.map((p) => ({ t: Date.parse(p.timestamp), v: p.equity })), `Equity of backtest ${latest.id}`),
      h("p", {}, h("a", { href: `/backtests/${encodeURIComponent(latest.id)}` }, `Backtest ${latest.id}`), " — simulated, not the live record above.")));
  } catch { /* no backtest API or none yet: the live record stands alone */ }
}

function history_push(url: string): void {
  window.dispatchEvent(new CustomEvent("ts:navigate", { detail: url }));
}
