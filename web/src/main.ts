/** The app shell: a tiny router over history.pushState, the pages, and the service worker. */
import "./style.css";
import { quickCheck } from "./checkpoints";
import { h } from "./dom";
import { backtestPage, backtestsPage } from "./pages/backtests";
import { trackRecordPage } from "./pages/trackRecord";
import { verifyPage } from "./pages/verify";

const main = document.getElementById("main") as HTMLElement;

async function route(): Promise<void> {
  const path = location.pathname;
  main.replaceChildren();
  for (const a of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    const here = a.pathname === "/" ? path === "/" : path.startsWith(a.pathname);
    if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  if (path === "/") {
    document.title = "Track record · tradesignals";
    await trackRecordPage(main);
  } else if (path === "/verify") {
    document.title = "Verify · tradesignals";
    await verifyPage(main);
  } else if (path === "/backtests") {
    document.title = "Backtests · tradesignals";
    await backtestsPage(main);
  } else if (path.startsWith("/backtests/")) {
    const id = decodeURIComponent(path.slice("/backtests/".length));
    document.title = `Backtest ${id} · tradesignals`;
    await backtestPage(main, id);
  } else {
    document.title = "Not found · tradesignals";
    main.append(h("h1", {}, "Page not found"), h("p", {}, "No page at ", h("code", {}, path), ". ", h("a", { href: "/" }, "Go to the track record"), "."));
  }
}

function navigate(url: string): void {
  history.pushState(null, "", url);
  void route();

// Every visit (except the verify page, which does the full check): does the ledger still pass
// through the checkpoints this browser kept? A contradiction is shown on every page, plainly.
if (location.pathname !== "/verify") {
  void quickCheck().then((problem) => {
    if (!problem) return;
    const box = h("p", { class: "contradiction-banner", role: "alert" }, `✘ ${problem.why}. `, h("a", { href: "/verify" }, "Check it yourself"), ".");
    document.querySelector("header")?.after(box);
  });
}
}

document.addEventListener("click", (ev) => {
  const a = (ev.target as Element).closest("a");
  if (!a || a.target || ev.metaKey || ev.ctrlKey || ev.shiftKey || a.origin !== location.origin) return;
  if (/^\/(api|docs|ws|metrics|openapi\.json)(\/|$|#|\?)/.test(a.pathname)) return;
  ev.preventDefault();
  navigate(a.pathname + a.search);
});
window.addEventListener("popstate", () => void route());
window.addEventListener("ts:navigate", (ev) => navigate((ev as CustomEvent<string>).detail));

const banner = document.getElementById("offline") as HTMLElement;
const online = (): void => { banner.hidden = navigator.onLine; };
window.addEventListener("online", online);
window.addEventListener("offline", online);
online();

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => { /* the app works without it */ });
}
void route();

// Every visit (except the verify page, which does the full check): does the ledger still pass
// through the checkpoints this browser kept? A contradiction is shown on every page, plainly.
if (location.pathname !== "/verify") {
  void quickCheck().then((problem) => {
    if (!problem) return;
    const box = h("p", { class: "contradiction-banner", role: "alert" }, `✘ ${problem.why}. `, h("a", { href: "/verify" }, "Check it yourself"), ".");
    document.querySelector("header")?.after(box);
  });
}
