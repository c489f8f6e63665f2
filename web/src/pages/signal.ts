/** One signal: its plan, a candlestick chart with entry, stop and targets and the decision marker,
its explanation, its static image, and — for the holder of an upgrade to it — the live panel fed by
`signal:{id}:live` (domain.live.LiveUpdate: price, unrealised P/L, re-scored probability, distances). */
import { ApiError, request } from "../api";
import { me, maybeAuthed, signedIn } from "../auth";
import { liveChannel } from "../channels";
import { errorBox, h, num, pct, price, signed, when } from "../dom";
import { onLeave } from "../nav";
import { LiveSocket } from "../socket";
import type { Bar } from "../signalChart";
import type { SignalOut } from "./live";

interface Explanation { signal_id: string; text: string; citations: string[]; model: string }
/** A LiveUpdate as published (src/tradesignals/domain/live.py). */
export interface LiveUpdate {
  signal_id: string; symbol: string; ts_ns: number; price: number; filled: boolean;
  unrealised_net_pct: number | null; unrealised_net_r: number | null;
  distance_to_stop_pct: number; distance_to_targets_pct: number[]; probability: number | null; model_version: string;
}


function facts(s: SignalOut): HTMLElement {
  const rows: [string, string][] = [
    ["status", s.status.replace("_", " ")],
    ["direction", `${s.direction} (${s.type}, ${s.timeframe} bars)`],
    ["entry", price(s.entry)], ["stop", price(s.stop)], ["targets", s.targets.map((t) => price(t)).join(" / ")],
    ["confidence", `${pct(s.confidence)}${s.base_rate === null ? "" : ` (model base rate ${pct(s.base_rate)}, edge ${signed((s.edge ?? 0) * 100, 1, " pts")})`}`],
    ["decided", `${when(s.decided_at)} UTC`], ["published", `${when(s.created_at)} UTC`], ["expires", `${when(s.expires_at)} UTC`],
    ["model", s.model_version],
  ];
  if (s.outcome) rows.push(["outcome", `${s.outcome.replace("_", " ")}, ${signed(s.net_r, 2, " R")} net`]);
  return h("dl", { class: "facts" }, ...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

async function chartSection(box: HTMLElement, s: SignalOut): Promise<void> {
  let bars: Bar[];
  try {
    const q = new URLSearchParams({ timeframe: s.timeframe, limit: "150" });
    bars = (await (await request(`/api/market/${encodeURIComponent(s.symbol)}/bars?${q}`)).json()) as Bar[];
  } catch (err) {
    box.replaceChildren(h("p", { class: "empty" }, `No chart: ${(err as Error).message}.`));
    return;
  }
  const { drawChart } = await import("../signalChart");
  const el = h("div", { class: "candles", id: "signal-chart", role: "img", "aria-label": `${s.symbol} candlestick chart with entry ${price(s.entry)}, stop ${price(s.stop)} and targets ${s.targets.map((t) => price(t)).join(", ")}` });
  box.replaceChildren(el);
  drawChart(el, bars, s);
  el.setAttribute("data-drawn", String(bars.length));
}

async function imageSection(box: HTMLElement, s: SignalOut): Promise<void> {
  // The image is gated like the signal: fetched with the session's token, shown from a blob.
  try {
    const blob = await (await maybeAuthed(`/api/signals/${s.id}/image.png`)).blob();
    const imageUrl = URL.createObjectURL(blob);
    onLeave(() => URL.revokeObjectURL(imageUrl));
    box.replaceChildren(h("img", { src: imageUrl, alt: `${s.symbol} ${s.direction}: chart of recent bars with entry, stop and targets`, class: "signal-image", width: 800, height: 450 }));
  } catch (err) {
    const why = err instanceof ApiError && err.status === 404 ? "The picture of this signal is not ready yet." : (err as Error).message;
    box.replaceChildren(h("div", { class: "image-placeholder", "data-missing": "true" }, why));
  }
}

async function explanationSection(box: HTMLElement, s: SignalOut): Promise<void> {
  try {
    const e = (await (await maybeAuthed(`/api/signals/${s.id}/explanation`)).json()) as Explanation;
    box.replaceChildren(...e.text.split(/\n\s*\n/).map((p) => h("p", {}, p)), h("p", { class: "hint" }, `Explained by ${e.model}.`));
  } catch (err) {
    box.replaceChildren(errorBox((err as Error).message));
  }
}

function livePanel(s: SignalOut): HTMLElement {
  const fields = {
    price: h("dd", { "data-field": "price" }, "–"),
    pnl: h("dd", { "data-field": "pnl" }, "–"),
    probability: h("dd", { "data-field": "probability" }, "–"),
    stop: h("dd", { "data-field": "stop" }, "–"),
    targets: h("dd", { "data-field": "targets" }, "–"),
    at: h("dd", { "data-field": "at" }, "–"),
  };
  const state = h("p", { class: "hint", id: "live-state", "data-state": "connecting" }, "Connecting…");
  const panel = h("section", { class: "live-panel", id: "live-panel", "aria-labelledby": "live-title", "data-updates": "0" },
    h("h2", { id: "live-title" }, "Live"),
    h("dl", { class: "facts", "aria-live": "polite" },
      h("dt", {}, "price"), fields.price, h("dt", {}, "unrealised P/L (net)"), fields.pnl,
      h("dt", {}, "re-scored probability"), fields.probability, h("dt", {}, "to stop"), fields.stop,
      h("dt", {}, "to targets"), fields.targets, h("dt", {}, "as of"), fields.at),
    state);
  let updates = 0;
  const show = (u: LiveUpdate): void => {
    fields.price.textContent = price(u.price);
    fields.pnl.textContent = u.filled ? `${signed(u.unrealised_net_pct, 2, " %")} · ${signed(u.unrealised_net_r, 2, " R")}` : "not filled yet";
    fields.probability.textContent = u.probability === null ? "not re-scored (rule-based signal)" : pct(u.probability);
    fields.stop.textContent = `${num(u.distance_to_stop_pct, 2)} %`;
    fields.targets.textContent = u.distance_to_targets_pct.map((d) => `${num(d, 2)} %`).join(" / ");
    fields.at.textContent = `${when(new Date(u.ts_ns / 1e6).toISOString())} UTC`;
    updates += 1;
    panel.setAttribute("data-updates", String(updates));
    panel.classList.remove("pulse");
    void panel.offsetWidth;
    panel.classList.add("pulse");
  };
  const socket = new LiveSocket({
    channels: [liveChannel(s.id)],
    onMessage: (f) => {
      const d = f.data as Partial<LiveUpdate> & { status?: string };
      if (typeof d.price === "number") show(d as LiveUpdate);
      else if (f.type === "closed" || (typeof d.status === "string" && d.status !== "open")) {
        const how = String((d as { outcome?: string }).outcome ?? d.status ?? "closed").replace("_", " ");
        state.setAttribute("data-state", "ended");
        state.textContent = `Closed: ${how}. The live stream has ended.`;
      }
    },
    onResync: () => undefined, // only the newest state matters; the next update brings it
    onState: (st, detail) => {
      state.setAttribute("data-state", st);
      state.textContent = st === "open" ? "Live: updates arrive with each bar." : detail;
    },
    onRefused: (_channel, message) => {
      state.setAttribute("data-state", "refused");
      state.textContent = message;
    },
  });
  onLeave(() => socket.close());
  return panel;
}

export async function signalPage(root: HTMLElement, id: string): Promise<void> {
  root.append(h("p", {}, h("a", { href: signedIn() ? "/live" : "/" }, signedIn() ? "← live signals" : "← track record")));
  if (!/^[0-9a-f]{22}$/.test(id)) {
    root.append(h("h1", {}, "Signal"), errorBox(`"${id}" is not a signal id (22 hexadecimal digits).`));
    return;
  }
  let s: SignalOut;
  try {
    s = (await (await maybeAuthed(`/api/signals/${id}`)).json()) as SignalOut;
  } catch (err) {
    root.append(h("h1", {}, "Signal"), errorBox((err as Error).message));
    if (err instanceof ApiError && err.status === 403) {
      root.append(h("p", {}, signedIn()
        ? h("a", { href: `/checkout?signal=${id}` }, "Buy live updates for this signal")
        : h("span", {}, h("a", { href: `/signin?next=/signals/${id}` }, "Sign in"), " to see it.")));
    }
    return;
  }
  document.title = `${s.symbol} ${s.direction} · tradesignals`;
  const chartBox = h("div", { class: "chart-box" }, h("p", { class: "empty" }, "Loading the chart…"));
  const explainBox = h("div", {}, h("p", { class: "empty" }, "Loading…"));
  const imageBox = h("div", {}, h("p", { class: "empty" }, "Loading…"));
  const liveBox = h("div", { id: "live-box" });
  root.append(h("h1", {}, `${s.symbol} — ${s.direction}`), facts(s), liveBox,
    h("h2", {}, "Chart"), chartBox, h("h2", {}, "Why"), explainBox, h("h2", {}, "Picture"), imageBox);
  const open = s.status === "open";
  if (open && signedIn()) {
    try {
      const m = await me();
      if (m.upgrades.some((u) => u.signal_id === s.id)) liveBox.append(livePanel(s));
      else liveBox.append(h("p", { class: "upsell" }, "Follow this signal live — price, P/L, re-scored probability, distance to stop and targets: ",
        h("a", { href: `/checkout?signal=${s.id}`, id: "upgrade-link" }, "buy live updates"), "."));
    } catch (err) {
      liveBox.append(errorBox((err as Error).message));
    }
  }
  await Promise.all([chartSection(chartBox, s), explanationSection(explainBox, s), imageSection(imageBox, s)]);
}
