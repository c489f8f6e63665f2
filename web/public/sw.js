// Service worker: the app shell (index.html and its hashed assets) is cached at install and served
// when the network fails; API calls always go to the network (the pages keep their own last copy
// of the track record and say when they show it offline). Web Push messages (the API's push sender,
// README "Web Push") become notifications; a click opens the signal's page.
const CACHE = "ts-shell-v3";
const SHELL = ["/", "/manifest.webmanifest", "/icons/icon-192.png", "/icons/icon-512.png"];
const LIVE = /^\/(api|ws|docs|metrics|openapi\.json)(\/|$)/;

self.addEventListener("install", (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await cache.addAll(SHELL);
    // The bundle names are hashed: the build lists them all (web/postbuild.mjs), pages included,
    // so every page opens offline; the shell page's own references are added in case.
    const html = await (await cache.match("/")).text();
    const linked = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]);
    let listed = [];
    try {
      listed = await (await fetch("/assets.json", { cache: "no-cache" })).json();
    } catch { /* an older build: the linked ones only */ }
    await cache.addAll([...new Set([...linked, ...listed])]);
    await self.skipWaiting();
  })());
});

self.addEventListener("activate", (event) => {
  event.waitUntil((async () => {
    for (const key of await caches.keys()) if (key !== CACHE) await caches.delete(key);
    await self.clients.claim();
  })());
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== location.origin || LIVE.test(url.pathname)) return;
  if (req.mode === "navigate") {
    // Network first, so a new release shows at once; the cached shell when offline.
    event.respondWith(fetch(req).then((res) => {
      if (res.ok) caches.open(CACHE).then((c) => c.put("/", res.clone()));
      return res;
    }).catch(async () => (await caches.match("/")) || Response.error()));
    return;
  }
  // Hashed assets never change: cache first.
  event.respondWith((async () => {
    const hit = await caches.match(req);
    if (hit) return hit;
    const res = await fetch(req);
    if (res.ok && url.pathname.startsWith("/assets/")) (await caches.open(CACHE)).put(req, res.clone());
    return res;
  })());
});

/** A push payload (JSON, decrypted by the browser) → the notification's title and body. */
function notificationOf(msg) {
  const pct = (x) => `${Math.round(Number(x) * 100)} %`;
  if (msg.type === "signal") {
    return {
      title: `${msg.symbol}: new ${msg.direction} ${msg.signal_type} signal`,
      body: `Entry ${msg.entry}, stop ${msg.stop}, confidence ${pct(msg.confidence)}; expires ${msg.expires_at}`,
    };
  }
  if (msg.type === "closed") {
    const r = msg.net_r === null || msg.net_r === undefined ? "" : `, net ${Number(msg.net_r).toFixed(2)} R`;
    return { title: `${msg.symbol}: ${msg.outcome.replace(/_/g, " ")}`, body: `Exit ${msg.exit_price}${r}` };
  }
  return { title: "tradesignals", body: "Open the app for the latest." };
}

self.addEventListener("push", (event) => {
  let msg = {};
  try {
    msg = event.data ? event.data.json() : {};
  } catch { /* not JSON: a generic notification, never a silent push */ }
  const { title, body } = notificationOf(msg);
  const url = typeof msg.url === "string" && msg.url.startsWith("/") ? msg.url : "/";
  event.waitUntil(self.registration.showNotification(title, {
    body,
    tag: msg.id ? `${msg.type}:${msg.id}` : undefined,
    icon: "/icons/icon-192.png",
    data: { url },
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/";
  event.waitUntil((async () => {
    const open = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
    const here = open.find((c) => new URL(c.url).origin === location.origin);
    if (here) {
      await here.focus();
      return here.navigate(url);
    }
    return self.clients.openWindow(url);
  })());
});
