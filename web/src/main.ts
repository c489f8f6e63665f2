/** The app shell: a tiny router over history.pushState, the pages, the account link, and the service worker. */
import "./style.css";
import { me, signedIn } from "./auth";
import { quickCheck } from "./checkpoints";
import { h } from "./dom";
import { leavePage } from "./nav";
import { trackRecordPage } from "./pages/trackRecord";

// The landing page is in the first bundle; every other page is its own chunk, fetched when opened
// (and then kept by the service worker), so the first load stays small (bench/webapp.py).
const verify = () => import("./pages/verify");
const backtests = () => import("./pages/backtests");
const live = () => import("./pages/live");
const signal = () => import("./pages/signal");
const signin = () => import("./pages/signin");
const questionnaire = () => import("./pages/questionnaire");
const account = () => import("./pages/account");
const checkout = () => import("./pages/checkout");

const main = document.getElementById("main") as HTMLElement;

type Page = { title: string; render: (root: HTMLElement) => void | Promise<void> };

function pageFor(path: string): Page {
  const exact: Record<string, Page> = {
    "/": { title: "Track record", render: trackRecordPage },
    "/verify": { title: "Verify", render: async (r) => (await verify()).verifyPage(r) },
    "/backtests": { title: "Backtests", render: async (r) => (await backtests()).backtestsPage(r) },
    "/live": { title: "Live signals", render: async (r) => (await live()).livePage(r) },
    "/signin": { title: "Sign in", render: async (r) => (await signin()).signInPage(r) },
    "/register": { title: "Create an account", render: async (r) => (await signin()).registerPage(r) },
    "/questionnaire": { title: "Risk profile", render: async (r) => (await questionnaire()).questionnairePage(r) },
    "/account": { title: "Account", render: async (r) => (await account()).accountPage(r) },
    "/checkout": { title: "Checkout", render: async (r) => (await checkout()).checkoutPage(r) },
    "/billing/local/portal": { title: "Billing", render: async (r) => (await checkout()).localBillingPage(r, "portal") },
    "/billing/local/success": { title: "Payment complete", render: async (r) => (await checkout()).localBillingPage(r, "success") },
  };
  if (exact[path]) return exact[path];
  if (path.startsWith("/backtests/")) {
    const id = decodeURIComponent(path.slice("/backtests/".length));
    return { title: `Backtest ${id}`, render: async (r) => (await backtests()).backtestPage(r, id) };
  }
  if (path.startsWith("/signals/")) {
    const id = decodeURIComponent(path.slice("/signals/".length));
    return { title: "Signal", render: async (r) => (await signal()).signalPage(r, id) };
  }
  return {
    title: "Not found",
    render: (r) => void r.append(h("h1", {}, "Page not found"), h("p", {}, "No page at ", h("code", {}, path), ". ", h("a", { href: "/" }, "Go to the track record"), ".")),
  };
}

async function route(): Promise<void> {
  const path = location.pathname;
  leavePage();
  main.replaceChildren();
  for (const a of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    const here = a.pathname === "/" ? path === "/" : path.startsWith(a.pathname);
    if (here) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const page = pageFor(path);
  document.title = `${page.title} · tradesignals`;
  try {
    await page.render(main);
  } catch (err) {
    // A page that failed in a way it did not foresee still says so in words, never a blank page.
    main.append(h("p", { class: "error", role: "alert" }, `Something went wrong: ${(err as Error).message || String(err)}`));
  }
}

function navigate(url: string): void {
  history.pushState(null, "", url);
  void route();
}

/** The header's account link: "Sign in" or "Account (premium)". */
async function accountLink(): Promise<void> {
  const a = document.getElementById("nav-account") as HTMLAnchorElement;
  if (!signedIn()) {
    a.href = "/signin";
    a.textContent = "Sign in";
    return;
  }
  a.href = "/account";
  a.textContent = "Account";
  try {
    const m = await me();
    a.textContent = m.tier === "premium" ? "Account (premium)" : "Account";
  } catch {
    /* the account page says why */
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
window.addEventListener("ts:auth", () => void accountLink());
// Another tab signed in or out: follow it here.
window.addEventListener("storage", (ev) => { if (ev.key === "ts.refresh.v1") void accountLink(); });

const banner = document.getElementById("offline") as HTMLElement;
const online = (): void => { banner.hidden = navigator.onLine; };
window.addEventListener("online", online);
window.addEventListener("offline", online);
online();

if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => { /* the app works without it */ });
}
void accountLink();
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
