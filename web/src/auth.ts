/** The signed-in session: the access token in memory only, the refresh token in localStorage.

The API rotates refresh tokens: each one is spent when used, and presenting a spent one revokes its
whole family (README, "Accounts"). Tabs of one browser share the refresh token, so they must never
both spend it: refreshes are serialised with a Web Lock, and the tab that refreshed hands the new
pair to the others over a BroadcastChannel. A tab that had to wait for the lock takes the pair it
was handed instead of refreshing again — it cannot trust its own read of localStorage, which
Chromium propagates between tabs asynchronously (a waiting tab can still read the spent token).
An access token lives only in page memory (a script injected later cannot read it from storage).
*/
import { ApiError, jsonBody, request } from "./api";

export interface Upgrade { signal_id: string; expires_at: string }
export interface Me {
  id: number; email: string; tier: "free" | "premium"; role: string;
  risk_profile: "conservative" | "moderate" | "aggressive"; profile_answered: boolean; upgrades: Upgrade[];
}
interface TokenPair { access_token: string; refresh_token: string; token_type: string }

const REFRESH = "ts.refresh.v1";
let access: string | null = null;
let meCache: Promise<Me> | null = null;
let refreshing: Promise<boolean> | null = null;

/** Whether this browser holds a session (a refresh token); the access token may still need minting. */
export const signedIn = (): boolean => localStorage.getItem(REFRESH) !== null;

function changed(): void {
  meCache = null;
  window.dispatchEvent(new Event("ts:auth"));
}

function keep(pair: TokenPair): void {
  access = pair.access_token;
  localStorage.setItem(REFRESH, pair.refresh_token);
}

function forget(): void {
  access = null;
  localStorage.removeItem(REFRESH);
  channel?.postMessage({ kind: "signed-out" } satisfies Shared);
  changed();
}

const channel = typeof BroadcastChannel === "undefined" ? null : new BroadcastChannel("ts.auth");
type Shared = { kind: "pair"; pair: TokenPair; at: number } | { kind: "signed-out" };
let handed: { pair: TokenPair; at: number } | null = null;
const handedWaiters = new Set<() => void>();

channel?.addEventListener("message", (ev: MessageEvent<Shared>) => {
  if (ev.data.kind === "signed-out") {
    access = null;
    changed();
    return;
  }
  handed = { pair: ev.data.pair, at: ev.data.at };
  access = ev.data.pair.access_token;
  for (const wake of handedWaiters) wake();
});

/** A pair another tab handed over since `since` (ms), waiting up to `ms` for one. */
function handedSince(since: number, ms: number): Promise<TokenPair | null> {
  const fresh = (): TokenPair | null => (handed && handed.at >= since ? handed.pair : null);
  if (fresh() || ms <= 0) return Promise.resolve(fresh());
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      handedWaiters.delete(done);
      resolve(fresh());
    };
    const timer = setTimeout(done, ms);
    handedWaiters.add(done);
  });
}

async function spend(token: string): Promise<boolean> {
  try {
    const pair = (await (await request("/api/auth/refresh", jsonBody("POST", { refresh_token: token }))).json()) as TokenPair;
    keep(pair);
    channel?.postMessage({ kind: "pair", pair, at: Date.now() } satisfies Shared);
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      forget();
      return false;
    }
    throw err; // offline, rate-limited: keep the session, say so
  }
}

/** A fresh token pair (spending the stored refresh token, or handed over by the tab that just spent
 * it); false, and signed out, when the session is over. */
export function refresh(): Promise<boolean> {
  const asked = Date.now();
  const run = async (waited: boolean): Promise<boolean> => {
    if (waited) {
      // Another tab held the lock: it most likely refreshed and handed the pair over.
      const pair = await handedSince(asked, 1500);
      if (pair) {
        access = pair.access_token;
        return true;
      }
    }
    const token = localStorage.getItem(REFRESH);
    if (!token) {
      access = null;
      return false;
    }
    return spend(token);
  };
  refreshing ??= (async () => {
    if (!navigator.locks) return run(false);
    const now = await navigator.locks.request("ts.refresh", { ifAvailable: true }, (lock) => (lock ? run(false) : null));
    return now ?? (await navigator.locks.request("ts.refresh", () => run(true)));
  })().finally(() => { refreshing = null; });
  return refreshing;
}

/** The access token, minted from the refresh token when this page has none. */
export async function accessToken(): Promise<string> {
  if (access) return access;
  if (await refresh()) return access as unknown as string;
  throw new ApiError("Sign in first.", 401);
}

/** A call as the signed-in user; an expired access token is refreshed once and the call retried. */
export async function authed(url: string, init: RequestInit = {}): Promise<Response> {
  const call = async (): Promise<Response> => {
    const headers = new Headers(init.headers);
    headers.set("authorization", `Bearer ${await accessToken()}`);
    return request(url, { ...init, headers });
  };
  try {
    return await call();
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401 || !signedIn()) throw err;
    access = null;
    if (!(await refresh())) throw new ApiError("Your session ended: sign in again.", 401);
    return call();
  }
}

/** As the user when signed in, anonymously otherwise (public data that shows more to an account). */
export async function maybeAuthed(url: string): Promise<Response> {
  return signedIn() ? authed(url) : request(url);
}

export async function authedJson<T>(url: string, init: RequestInit = {}): Promise<T> {
  return (await authed(url, init)).json() as Promise<T>;
}

export async function signIn(email: string, password: string): Promise<void> {
  const form = new URLSearchParams({ username: email, password });
  const res = await request("/api/auth/token", { method: "POST", body: form });
  keep((await res.json()) as TokenPair);
  changed();
}

export async function register(email: string, password: string): Promise<void> {
  await request("/api/auth/register", jsonBody("POST", { email, password }));
  await signIn(email, password);
}

/** Forget the session in this browser only (the account is gone, so there is nothing to revoke). */
export function forgetHere(): void {
  forget();
}

/** Revokes the refresh token's family on the server, then forgets the session here whatever the answer. */
export async function signOut(): Promise<void> {
  const token = localStorage.getItem(REFRESH);
  try {
    if (token) await request("/api/auth/logout", jsonBody("POST", { refresh_token: token }));
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) {
      forget();
      throw err;
    }
  }
  forget();
}

/** The account (GET /api/me), cached until the session or the account changes (`invalidateMe`). */
export function me(): Promise<Me> {
  meCache ??= authedJson<Me>("/api/me").catch((err: unknown) => {
    meCache = null;
    throw err;
  });
  return meCache;
}

export function invalidateMe(): void {
  meCache = null;
}

/** What the API changed (a checkout, the questionnaire): the new account replaces the cached one. */
export function setMe(m: Me): void {
  meCache = Promise.resolve(m);
  window.dispatchEvent(new Event("ts:auth"));
}
