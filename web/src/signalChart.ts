/** The signal's candlestick chart (lightweight-charts, bundled; loaded only by the signal page).

Entry, stop and each target are price lines on the candle series; the decision is a marker on the
bar it was decided on. The chart is registered on `window.tsCharts[signalId]` so tests (and a curious
reader) can ask the chart itself what it draws rather than reading pixels. */
import { priceDigits } from "./dom";
import { AutoscaleInfo, CandlestickSeries, createChart, createSeriesMarkers, IChartApi, ISeriesApi, ISeriesMarkersPluginApi, LineStyle, Time, UTCTimestamp } from "lightweight-charts";

export interface Bar { ts: string; open: number; high: number; low: number; close: number; volume: number }
export interface Levels { id: string; direction: "long" | "short"; entry: number; stop: number; targets: number[]; decided_at: string | null; created_at: string }
export interface DrawnChart { chart: IChartApi; series: ISeriesApi<"Candlestick">; markers: ISeriesMarkersPluginApi<Time> }

declare global { interface Window { tsCharts?: Record<string, DrawnChart> } }

const secs = (iso: string): UTCTimestamp => Math.floor(Date.parse(iso) / 1000) as UTCTimestamp;

export function drawChart(el: HTMLElement, bars: Bar[], s: Levels): DrawnChart {
  const chart = createChart(el, {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#14201f" },
    grid: { vertLines: { color: "#eef1f0" }, horzLines: { color: "#eef1f0" } },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
  // The plan's levels are what the reader came for: the price scale always takes them in, even when
  // the recent bars never came near the stop or the last target.
  const levels = [s.entry, s.stop, ...s.targets];
  const digits = priceDigits(s.entry);
  const series = chart.addSeries(CandlestickSeries, {
    priceFormat: { type: "price", precision: digits, minMove: 10 ** -digits },
    upColor: "#0a6b2d", downColor: "#a4161a", borderVisible: false, wickUpColor: "#0a6b2d", wickDownColor: "#a4161a",
    autoscaleInfoProvider: (base: () => AutoscaleInfo | null): AutoscaleInfo | null => {
      const own = base();
      const lo = Math.min(...levels, own?.priceRange?.minValue ?? Infinity);
      const hi = Math.max(...levels, own?.priceRange?.maxValue ?? -Infinity);
      return { priceRange: { minValue: lo, maxValue: hi }, margins: own?.margins };
    },
  });
  series.setData(bars.map((b) => ({ time: secs(b.ts), open: b.open, high: b.high, low: b.low, close: b.close })));
  series.createPriceLine({ price: s.entry, color: "#0b5c8a", lineWidth: 2, lineStyle: LineStyle.Solid, axisLabelVisible: true, title: "entry" });
  series.createPriceLine({ price: s.stop, color: "#a4161a", lineWidth: 2, lineStyle: LineStyle.Dashed, axisLabelVisible: true, title: "stop" });
  s.targets.forEach((t, i) => series.createPriceLine({ price: t, color: "#0a6b2d", lineWidth: 1, lineStyle: LineStyle.Dashed, axisLabelVisible: true, title: `target ${i + 1}` }));
  // The decision sits on the last bar at or before it (markers must name a bar's time).
  const decided = secs(s.decided_at ?? s.created_at);
  let at: UTCTimestamp | null = null;
  for (const b of bars) if (secs(b.ts) <= decided) at = secs(b.ts);
  const markers = createSeriesMarkers<Time>(series, at === null ? [] : [{
    time: at, position: s.direction === "long" ? "belowBar" : "aboveBar", shape: s.direction === "long" ? "arrowUp" : "arrowDown",
    color: "#0f3d3e", text: `decision: ${s.direction}`, id: "decision",
  }]);
  chart.timeScale().fitContent();
  const drawn = { chart, series, markers };
  (window.tsCharts ??= {})[s.id] = drawn;
  return drawn;
}
