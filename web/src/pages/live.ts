/** Live signals (premium): the open signals the user's profile accepts, sized for their capital,
kept current over the WebSocket without a reload.

Fitting and sizing are the server's: a message that carries a signal already sized for this profile
and capital (the user's own channel: a new signal, or an `update` of an open one such as its fill) is
merged at once, a closed signal leaves the list (its `update` on the user's own channel or its
public outcome, whichever comes first), and any other message, gap or reconnect makes the page
refetch `GET /api/signals?profile=&capital=&status=open`.
Rows not seen before are drawn with a brief highlight, announced to screen readers, and (if the user
turned it on) a short tone. Each drawn row is time-stamped for bench/webapp.py (`window.tsDrawn`). */
import { ApiError } from "../api";
import { authedJson, me, Me, signedIn } from "../auth";
import { liveFeed } from "../channels";
import { errorBox, h, num, pct, price, when } from "../dom";
import { onLeave } from "../nav";
import { DataFrame, LiveSocket } from "../socket";

export interface Size { profile: string; capital: number; position_pct: number; position_value: number; units: number; risk_amount: number; notes: string[] }
export interface SignalOut {
  id: string; symbol: string; type: string; direction: "long" | "short"; entry: number; stop: number; targets: number[];
  confidence: number; created_at: string; expires_at: string; status: string; timeframe: string; model_version: string;
  reasons: string[]; decided_at: string | null; base_rate: number | null; edge: number | null; size: Size | null;
  outcome: string | null; net_r: number | null; net_pnl_pct: number | null;
  filled_at?: string | null; fill_price?: number | null;
}
interface Page { items: SignalOut[]; next_before: string | null }

const CAPITAL = "ts.capital.v1";
const SOUND = "ts.sound.v1";
declare global { interface Window { tsDrawn?: Record<string, number> } }


function beep(): void {
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    const gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.setValueAtTime(0.08, ctx.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.25);
    osc.connect(gain).connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + 0.25);
    osc.onended = () => void ctx.close();
  } catch {
    /* no audio: the visual cue stays */
  }
}

const money = (x: number): string => x.toLocaleString("en-US", { maximumFractionDigits: 2, minimumFractionDigits: 2 });

const COLUMNS = ["symbol", "side · type", "entry", "stop", "targets", "confidence", "position", "units", "at risk", "expires (UTC)"];

function row(s: SignalOut, fresh: boolean): HTMLElement {
  const size = s.size;
  const cells: (Node | string)[] = [
    h("a", { href: `/signals/${s.id}` }, h("strong", {}, s.symbol)),
    `${s.direction} · ${s.type}`,
    price(s.entry),
    price(s.stop),
    s.targets.map((t) => price(t)).join(" / "),
    pct(s.confidence),
    size ? `${money(size.position_value)} (${num(size.position_pct, 1)} %)` : "–",
    size ? num(size.units, 4) : "–",
    size ? money(size.risk_amount) : "–",
    when(s.expires_at),
  ];
  // data-label: on a phone each row is a card, and each value carries its column's name.
  return h("tr", { "data-id": s.id, class: fresh ? "fresh" : "", "data-filled": s.filled_at ? "true" : undefined },
    ...cells.map((c, i) => h("td", { class: i >= 2 && i <= 8 ? "n" : undefined, "data-label": COLUMNS[i] }, c)));
}

export async function livePage(root: HTMLElement): Promise<void> {
  root.append(h("h1", {}, "Live signals"));
  if (!signedIn()) {
    root.append(h("p", {}, "Live signals are for premium members. ", h("a", { href: "/signin?next=/live" }, "Sign in"), " or ", h("a", { href: "/register" }, "create an account"), "."));
    return;
  }
  let m: Me;
  try {
    m = await me();
  } catch (err) {
    root.append(errorBox((err as Error).message));
    return;
  }
  if (m.tier !== "premium") {
    root.append(h("p", {}, "Live signals fitted to your profile are part of premium. ", h("a", { href: "/checkout?plan=premium" }, "Go premium"), "."),
      h("p", {}, "Meanwhile the ", h("a", { href: "/" }, "track record"), " shows every closed signal."));
    return;
  }
  const capitalInput = h("input", { id: "capital", type: "number", min: 100, max: 1e9, step: 100, inputmode: "decimal", value: localStorage.getItem(CAPITAL) ?? "10000" });
  const soundBox = h("input", { id: "sound", type: "checkbox", checked: localStorage.getItem(SOUND) === "on" });
  const wsState = h("span", { id: "ws-state", "data-state": "connecting" }, "connecting…");
  const announce = h("p", { class: "visually-hidden", role: "status", "aria-live": "polite", id: "live-announce" });
  const message = h("div", { id: "live-message" });
  const tbody = h("tbody", {});
  const table = h("table", { id: "live-table", class: "live" },
    h("caption", {}, `Open signals your ${m.risk_profile} profile accepts, sized for your capital`),
    h("thead", {}, h("tr", {}, ...COLUMNS.map((c) => h("th", { scope: "col" }, c)))),
    tbody);
  root.append(
    h("p", { class: "lede" }, `Profile: ${m.risk_profile}`,
      m.profile_answered ? "" : h("span", {}, " (the default: ", h("a", { href: "/questionnaire" }, "answer the questionnaire"), ")"),
      ". New signals appear here as they are published."),
    h("div", { class: "filters" },
      h("div", { class: "field" }, h("label", { for: "capital" }, "Capital"), capitalInput),
      h("div", { class: "field checkbox" }, h("label", { for: "sound" }, soundBox, " Sound on a new signal"))),
    h("p", { class: "hint" }, "Connection: ", wsState),
    announce, message,
    h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Live signals" }, table));

  const seen = new Set<string>();
  let shown: SignalOut[] = [];
  let first = true;
  let inFlight = false;
  let again = false;
  window.tsDrawn ??= {};
  const capital = (): number => Number(capitalInput.value) || 10000;

  /** Draw `items` (newest first); rows not drawn before get the cue, the announcement and the tone. */
  function draw(items: SignalOut[]): void {
    shown = items;
    const fresh = items.filter((s) => !seen.has(s.id));
    tbody.replaceChildren(...items.map((s) => row(s, !first && !seen.has(s.id))));
    if (!items.length) tbody.append(h("tr", {}, h("td", { colspan: 10, class: "empty" }, "No open signal fits your profile right now. A signal reaches you only when its confidence beats its model's base rate and passes your profile's limits (rank, volatility, type); new ones appear here as they are published.")));
    const now = performance.timeOrigin + performance.now();
    for (const s of fresh) {
      seen.add(s.id);
      window.tsDrawn![s.id] = now;
    }
    if (!first && fresh.length) {
      announce.textContent = fresh.map((s) => `New signal: ${s.symbol} ${s.direction}`).join(". ");
      if (soundBox.checked) beep();
    }
    first = false;
    table.setAttribute("data-rendered", String(items.length));
  }

  async function refetch(): Promise<void> {
    if (inFlight) {
      again = true;
      return;
    }
    inFlight = true;
    try {
      do {
        again = false;
        const q = new URLSearchParams({ profile: m.risk_profile, capital: String(capital()), status: "open", limit: "100" });
        let page: Page;
        try {
          page = await authedJson<Page>(`/api/signals?${q}`);
        } catch (err) {
          message.replaceChildren(errorBox((err as Error).message));
          if (err instanceof ApiError && err.status === 401) socket?.close();
          return;
        }
        message.replaceChildren();
        draw(page.items);
      } while (again);
    } finally {
      inFlight = false;
    }
  }

  /** A message merged into the list when it carries all the page needs — an open signal (new, or
   * updated: filled) already fitted and sized for this profile and capital (the user's own channel), or the close of a
   * signal shown (its `update` with a closed status, or its public outcome: it leaves the list);
   * anything else is a reason to ask REST. */
  function onMessage(f: DataFrame): void {
    const d = f.data as Partial<SignalOut> & { signal_id?: string };
    if ((f.type === "signal" || f.type === "update") && d.status === "open" && d.size && d.size.profile === m.risk_profile && d.size.capital === capital() && !inFlight) {
      const s = d as SignalOut;
      draw([s, ...shown.filter((x) => x.id !== s.id)].sort((a, b) => b.created_at.localeCompare(a.created_at)).slice(0, 100));
    } else if (f.type === "outcome" || (f.type === "update" && d.id && d.status && d.status !== "open")) {
      const id = f.type === "outcome" ? d.signal_id : d.id;
      if (shown.some((x) => x.id === id)) draw(shown.filter((x) => x.id !== id));
    } else {
      void refetch();
    }
  }

  capitalInput.addEventListener("change", () => {
    localStorage.setItem(CAPITAL, capitalInput.value);
    void refetch();
  });
  soundBox.addEventListener("change", () => localStorage.setItem(SOUND, soundBox.checked ? "on" : "off"));
  let socket: LiveSocket | null = null; // (the callbacks below may run before the constructor returns)
  socket = new LiveSocket({
    channels: liveFeed(m.id),
    onMessage,
    onResync: () => void refetch(),
    onState: (state, detail) => {
      wsState.setAttribute("data-state", state);
      wsState.setAttribute("data-channels", socket?.channels().join(" ") ?? "");
      wsState.textContent = detail;
    },
  });
  onLeave(() => socket?.close());
  await refetch();
}
