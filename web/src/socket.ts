/** The WebSocket client: auth, subscriptions with `since`, reconnection with back-off, gaps → resync.

Protocol (README, "Live signals over WebSocket"; api/ws.py): `{"op":"auth","token"}` → `authenticated`;
`{"op":"subscribe","channels":[c],"since":n}` → the buffered messages after n, then `subscribed`
(or an `error` frame without a channel: refused). Data frames carry `channel` and `seq`; an error
frame *with* a channel means an entitlement ended. One subscribe is sent per channel, so a refusal
names the channel it answers (replies come in order). Whatever may have been missed — a reconnect, a
seq gap, a server restart (seq went back, or `bad_since`), or a `{"type":"resync"|"lagged","channel",
"from_seq"}` frame — calls `onResync`, and the
page refetches over REST: the socket is the doorbell, REST the truth.
*/
import { accessToken, refresh } from "./auth";

export interface DataFrame { channel: string; seq: number; type: string; data: unknown }
export type SocketState = "connecting" | "open" | "closed" | "offline";

export interface SocketOptions {
  channels: string[];
  onMessage: (frame: DataFrame) => void;
  onResync: (why: string) => void;
  onState?: (state: SocketState, detail: string) => void;
  /** A channel refused or ended (its error frame's message). */
  onRefused?: (channel: string, message: string) => void;
}

const MAX_BACKOFF_MS = 30_000;
declare global { interface Window { tsSockets?: Set<LiveSocket> } }

/** What a close code means to the user (the server's codes: README "WebSocket /ws"). */
const CLOSE_REASONS: Record<number, string> = {
  1001: "the server restarted",
  1011: "the server had an internal error",
  1013: "the server is at capacity",
  4000: "the connection was idle",
  4008: "the server dropped a slow connection",
};

export class LiveSocket {
  private ws: WebSocket | null = null;
  private readonly seqs = new Map<string, number>();
  private pending: string[] = [];
  private readonly active = new Set<string>();
  private readonly refused = new Set<string>();
  private attempts = 0;
  private timer: number | undefined;
  private ping: number | undefined;
  private stopped = false;
  private everOpen = false;
  private readonly wake = (): void => { if (!this.ws) this.connect(); };

  constructor(private readonly opts: SocketOptions) {
    window.addEventListener("online", this.wake);
    (window.tsSockets ??= new Set()).add(this);
    void this.connect();
  }

  /** Drop the connection as a network failure would: the client reconnects, resumes with `since`
   * and refetches (used by the browser tests to check exactly that). */
  kick(): void {
    this.ws?.close(4000, "kicked");
  }

  /** The channels subscribed now (for the page and its tests). */
  channels(): string[] {
    return [...this.active].sort();
  }

  close(): void {
    this.stopped = true;
    window.tsSockets?.delete(this);
    window.removeEventListener("online", this.wake);
    clearTimeout(this.timer);
    clearInterval(this.ping);
    this.ws?.close(1000);
    this.ws = null;
  }

  private state(s: SocketState, detail: string): void {
    this.opts.onState?.(s, detail);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.state("connecting", this.attempts ? `reconnecting (try ${this.attempts + 1})` : "connecting");
    let token: string;
    try {
      token = await accessToken();
    } catch (err) {
      this.retry((err as Error).message);
      return;
    }
    if (this.stopped) return;
    const ws = new WebSocket(`${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`);
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ op: "auth", token }));
    ws.onmessage = (ev) => this.frame(ws, String(ev.data));
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.active.clear();
      this.pending = [];
      clearInterval(this.ping);
      this.retry(CLOSE_REASONS[ev.code] ?? "connection closed");
    };
  }

  private retry(why: string): void {
    if (this.stopped) return;
    if (!navigator.onLine) {
      this.state("offline", "offline: live updates resume when the network is back");
      return; // the "online" event reconnects
    }
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** this.attempts) * (0.5 + Math.random() / 2);
    this.attempts += 1;
    this.state("closed", `${why}; retrying in ${Math.round(delay / 1000)} s`);
    this.timer = window.setTimeout(() => void this.connect(), delay);
  }

  private subscribe(ws: WebSocket, channel: string): void {
    const since = this.seqs.get(channel);
    this.pending.push(channel);
    ws.send(JSON.stringify(since === undefined ? { op: "subscribe", channels: [channel] } : { op: "subscribe", channels: [channel], since }));
  }

  private frame(ws: WebSocket, raw: string): void {
    let f: Record<string, unknown>;
    try {
      f = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      return;
    }
    const type = f.type as string;
    if (typeof f.channel === "string" && typeof f.seq === "number") {
      this.data(f as unknown as DataFrame);
      return;
    }
    if (type === "authenticated") {
      for (const c of this.opts.channels) if (!this.refused.has(c)) this.subscribe(ws, c);
    } else if (type === "subscribed") {
      const channel = this.pending.shift();
      const seq = (f.seq ?? {}) as Record<string, number>;
      if (channel === undefined) return;
      this.active.add(channel);
      const known = this.seqs.get(channel);
      const now = seq[channel] ?? 0;
      this.seqs.set(channel, now);
      const reconnect = this.everOpen;
      this.attempts = 0;
      this.everOpen = true;
      this.state("open", `live: ${this.channels().join(", ")}`);
      clearInterval(this.ping);
      this.ping = window.setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('{"op":"ping"}'), 25_000);
      // After the replay: the server's seq is ahead of what we saw (its buffer did not hold it all)
      // or behind it (a restarted server counts from 0): either way, ask REST.
      if (reconnect || (known !== undefined && known !== now)) this.opts.onResync(`${channel}: resumed`);
    } else if (type === "error") {
      if (f.code === "unauthorized") {
        // The access token expired between mint and use: mint a fresh one, then reconnect.
        void refresh().catch(() => undefined).finally(() => ws.close(4001));
        return;
      }
      const message = String(f.message ?? f.code ?? "refused");
      // A refusal names no channel (it answers the oldest pending subscribe); should a server name
      // it, that pending subscribe is answered all the same.
      const named = typeof f.channel === "string" ? this.pending.indexOf(f.channel) : -1;
      if (named >= 0) this.pending.splice(named, 1);
      const channel = typeof f.channel === "string" ? f.channel : this.pending.shift();
      if (channel === undefined) return;
      if (f.code === "bad_since" && typeof f.channel !== "string") {
        // The server counts from less than we saw (it restarted, its log was reset): start afresh.
        this.seqs.delete(channel);
        this.subscribe(ws, channel);
        this.opts.onResync(`${channel}: numbering restarted`);
        return;
      }
      this.active.delete(channel);
      this.refused.add(channel);
      this.opts.onRefused?.(channel, message);
    } else if (type === "resync" || type === "lagged") {
      const channel = typeof f.channel === "string" ? f.channel : "";
      // "resync": the server no longer holds what we missed; messages after from_seq follow.
      // "lagged": we fell behind; the missed messages follow in order. Either way REST is asked.
      if (channel && typeof f.from_seq === "number" && type === "resync") this.seqs.set(channel, f.from_seq);
      this.opts.onResync(`${channel || "feed"}: ${type}`);
    }
  }

  private data(f: DataFrame): void {
    const last = this.seqs.get(f.channel);
    if (last !== undefined && f.seq <= last) return; // already seen (a replay overlapping)
    this.seqs.set(f.channel, f.seq);
    if (last !== undefined && f.seq > last + 1) this.opts.onResync(`${f.channel}: missed ${f.seq - last - 1}`);
    this.opts.onMessage(f);
  }
}
