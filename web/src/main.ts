/** The app shell: a tiny router over history.pushState, the pages, the account link, and the service worker. */
import "./style.css";
import { me, signedIn } from "./auth";
import { quickCheck } from "./checkpoints";
import { h } from "./dom";
import { accountPage } from "./pages/account";
import { backtestPage, backtestsPage } from "./pages/backtests";
import { checkoutPage, localBillingPage } from "./pages/checkout";
import { leaveLive, livePage } from "./pages/live";
import { questionnairePage } from "./pages/questionnaire";
import { leaveSignal, signalPage } from "./pages/signal";
import { registerPage, signInPage } from "./pages/signin";
import { trackRecordPage } from "./pages/trackRecord";
import { verifyPage } from "./pages/verify";

const main = document.getElementById("main") as HTMLElement;

type Page = { title: string; render: (root: HTMLElement) => void | Promise<void> };

function pageFor(path: string): Page {
  const exact: Record<string, Page> = {
    "/": { title: "Track record", render: trackRecordPage },
    "/verify": { title: "Verify", render: verifyPage },
    "/backtests": { title: "Backtests", render: backtestsPage },
    "/live": { title: "Live signals", render: livePage },
    "/signin": { title: "Sign in", render: signInPage },
    "/register": { title: "Create an account", render: registerPage },
    "/questionnaire": { title: "Risk profile", render: questionnairePage },
    "/account": { title: "Account", render: accountPage },
    "/checkout": { title: "Checkout", render: checkoutPage },
    "/billing/local/portal": { title: "Billing", render: (r) => localBillingPage(r, "portal") },
    "/billing/local/success": { title: "Payment complete", render: (r) => localBillingPage(r, "success") },
  };
  if (exact[path]) return exact[path];
  if (path.startsWith("/backtests/")) {
    const id = decodeURIComponent(path.slice("/backtests/".length));
    return { title: `Backtest ${id}`, render: (r) => backtestPage(r, id) };
  }
  if (path.startsWith("/signals/")) {
    const id = decodeURIComponent(path.slice("/signals/".length));
    return { title: "Signal", render: (r) => signalPage(r, id) };
  }
  return {
    title: "Not found",
    render: (r) => void r.append(h("h1", {}, "Page not found"), h("p", {}, "No page at ", h("code", {}, path), ". ", h("a", { href: "/" }, "Go to the track record"), ".")),
  };
}

async function route(): Promise<void> {
  const path = location.pathname;
  leaveLive();
  leaveSignal();
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
