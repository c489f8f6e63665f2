/**
 * Web Push opt-in: the browser subscribes with our VAPID key (`GET /api/push/vapid-public-key`) and
 * hands the subscription to `POST /api/me/push-subscriptions`; opting out unsubscribes here and
 * deletes it there. The service worker (`public/sw.js`) shows what arrives. Every failure is a
 * sentence: the API's reason (403: premium or an upgrade needed) or the browser's.
 */
import { ApiError, fetchJson, jsonBody } from "./api";
import { authed } from "./auth";

interface VapidOut { public_key: string }

export type PushState = "unsupported" | "denied" | "off" | "on";

/** Whether this browser can do Web Push at all (service worker, PushManager, Notification). */
export function pushSupported(): boolean {
  return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
}

/** base64url (the key as the API serves it) → the bytes `applicationServerKey` takes. */
export function keyBytes(b64url: string): Uint8Array {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (b64url.length % 4)) % 4);
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

async function registration(): Promise<ServiceWorkerRegistration> {
  return navigator.serviceWorker.ready;
}

export async function pushState(): Promise<PushState> {
  if (!pushSupported()) return "unsupported";
  if (Notification.permission === "denied") return "denied";
  const sub = await (await registration()).pushManager.getSubscription();
  return sub ? "on" : "off";
}

/** Ask permission, subscribe with our key, register the subscription with the API. */
export async function enablePush(): Promise<void> {
  if (!pushSupported()) throw new Error("This browser cannot receive push notifications.");
  const permission = await Notification.requestPermission();
  if (permission !== "granted") throw new Error("Notifications are blocked for this site in your browser's settings.");
  const { public_key } = await fetchJson<VapidOut>("/api/push/vapid-public-key");
  const reg = await registration();
  let sub: PushSubscription;
  try {
    sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(public_key) });
  } catch (err) {
    throw new Error(`Your browser could not reach its push service: ${(err as Error).message}`);
  }
  try {
    await authed("/api/me/push-subscriptions", jsonBody("POST", sub.toJSON()));
  } catch (err) {
    await sub.unsubscribe().catch(() => undefined); // not registered with us: do not keep it
    if (err instanceof ApiError && err.status === 403) {
      throw new Error("Notifications are for premium members and holders of a live upgrade.");
    }
    throw err;
  }
}

/** Unsubscribe here and remove the subscription from the API (a 404 there: already gone). */
export async function disablePush(): Promise<void> {
  const sub = await (await registration()).pushManager.getSubscription();
  if (!sub) return;
  const endpoint = sub.endpoint;
  await sub.unsubscribe();
  try {
    await authed(`/api/me/push-subscriptions?endpoint=${encodeURIComponent(endpoint)}`, { method: "DELETE" });
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
  }
}
