/** Checkout: premium (`?plan=premium`) or one signal's dynamic upgrade (`?signal=ID`).

POST /api/billing/checkout answers `{url, status, test_mode}`: `open` sends the browser to the
provider's page (Stripe Checkout); `paid` means the provider completed it within the call (the
demo's local provider). `test_mode` is shown plainly: no money moves. */
import { jsonBody } from "../api";
import { authedJson, invalidateMe, me, signedIn } from "../auth";
import { errorBox, h } from "../dom";

interface CheckoutOut { url: string; status: "open" | "paid"; test_mode: boolean }

export async function checkoutPage(root: HTMLElement): Promise<void> {
  const q = new URLSearchParams(location.search);
  const signal = q.get("signal");
  const premium = !signal;
  root.append(h("h1", {}, premium ? "Go premium" : "Live updates for one signal"));
  if (!signedIn()) {
    root.append(h("p", {}, h("a", { href: `/signin?next=${encodeURIComponent(location.pathname + location.search)}` }, "Sign in"), " first."));
    return;
  }
  root.append(h("p", { class: "lede" }, premium
    ? "Premium: every live signal your risk profile accepts, with its position size for your capital, as it is published."
    : "A dynamic upgrade: this signal's live price, unrealised P/L, re-scored probability and distances to stop and targets, until it closes or for 72 hours."));
  try {
    const m = await me();
    if (premium && m.tier === "premium") {
      root.append(h("p", { class: "ok" }, "You are premium already. ", h("a", { href: "/live" }, "Your live signals"), "."));
      return;
    }
  } catch (err) {
    root.append(errorBox((err as Error).message));
    return;
  }
  const status = h("div", { role: "status", "aria-live": "polite", class: "form-status" });
  const pay = h("button", { type: "button", class: "primary", id: "pay" }, premium ? "Continue to payment" : "Buy live updates");
  pay.addEventListener("click", () => {
    pay.disabled = true;
    status.replaceChildren(h("span", {}, "Contacting the payment provider…"));
    authedJson<CheckoutOut>("/api/billing/checkout", jsonBody("POST", premium ? { plan: "premium" } : { signal_id: signal }))
      .then((out) => {
        invalidateMe();
        const mode = out.test_mode ? h("p", { class: "test-mode", "data-test-mode": "true" }, "TEST MODE — no money moved.") : null;
        if (out.status === "paid") {
          status.replaceChildren(mode ?? "", h("p", { class: "ok", "data-paid": "true" }, "Paid. ",
            premium ? h("a", { href: "/live" }, "See your live signals") : h("a", { href: `/signals/${signal}` }, "Open the signal's live panel"), "."));
          window.dispatchEvent(new Event("ts:auth"));
        } else {
          status.replaceChildren(mode ?? "", h("p", {}, "Taking you to the payment page…"));
          location.assign(out.url);
        }
      })
      .catch((err: unknown) => {
        pay.disabled = false;
        status.replaceChildren(errorBox((err as Error).message));
      });
  });
  root.append(pay, status);
}

/** The local (test-mode) provider's pages: its "portal" and its "success" page live in this app. */
export function localBillingPage(root: HTMLElement, which: "portal" | "success"): void {
  root.append(h("h1", {}, which === "portal" ? "Billing (test mode)" : "Payment complete (test mode)"),
    h("p", { class: "test-mode", "data-test-mode": "true" }, "TEST MODE — the demo's payment provider moves no money."),
    h("p", {}, which === "portal"
      ? "There is nothing to manage here: with the local provider every checkout completes at once and no card is charged. With Stripe configured, this button opens Stripe's customer portal."
      : "Your purchase is active."),
    h("p", {}, h("a", { href: "/account" }, "Back to your account")));
}
