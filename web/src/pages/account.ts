/** The account: tier, risk profile, upgrades in force with their expiry, the billing portal, sign out. */
import { ApiError } from "../api";
import { authed, authedJson, forgetHere, me, signedIn, signOut } from "../auth";
import { errorBox, h, when } from "../dom";
import { go } from "../nav";
import { disablePush, enablePush, pushState, type PushState } from "../push";

interface PortalOut { url: string; test_mode: boolean }

export async function accountPage(root: HTMLElement): Promise<void> {
  root.append(h("h1", {}, "Your account"));
  if (!signedIn()) {
    root.append(h("p", {}, h("a", { href: "/signin?next=/account" }, "Sign in"), " or ", h("a", { href: "/register" }, "create an account"), "."));
    return;
  }
  let m;
  try {
    m = await me();
  } catch (err) {
    root.append(errorBox((err as Error).message));
    if (err instanceof ApiError && err.status === 401) root.append(h("p", {}, h("a", { href: "/signin?next=/account" }, "Sign in again")));
    return;
  }
  root.append(h("dl", { class: "facts", id: "account-facts" },
    h("dt", {}, "email"), h("dd", {}, m.email),
    h("dt", {}, "plan"), h("dd", { "data-tier": m.tier }, m.tier === "premium" ? "premium" : "free ",
      m.tier === "premium" ? null : h("a", { href: "/checkout?plan=premium" }, "(go premium)")),
    h("dt", {}, "risk profile"), h("dd", {}, m.profile_answered ? m.risk_profile : `${m.risk_profile} (until you answer the questionnaire)`, " · ",
      h("a", { href: "/questionnaire" }, m.profile_answered ? "answer again" : "answer it"))));

  root.append(h("h2", {}, "Live upgrades"));
  root.append(m.upgrades.length
    ? h("ul", { id: "upgrades" }, ...m.upgrades.map((u) => h("li", {}, h("a", { href: `/signals/${u.signal_id}` }, u.signal_id), ` — until ${when(u.expires_at)} UTC`)))
    : h("p", { class: "empty" }, "None. Open a live signal to buy its live updates."));

  root.append(h("h2", {}, "Billing"));
  const billing = h("div", { role: "status", "aria-live": "polite" });
  const portal = h("button", { type: "button" }, "Manage billing");
  portal.addEventListener("click", () => {
    billing.replaceChildren("Opening the billing portal…");
    authedJson<PortalOut>("/api/billing/portal")
      .then((p) => {
        // The local (test-mode) provider's portal is a page of this app; Stripe's is its own site.
        if (p.url.startsWith("/")) go(p.url);
        else location.assign(p.url);
      })
      .catch((err: unknown) => billing.replaceChildren(errorBox((err as Error).message)));
  });
  root.append(portal, billing);

  // Web Push: each new signal your profile accepts (premium), the close of a signal you upgraded.
  const pushStatus = h("div", { role: "status", "aria-live": "polite", id: "push-status" });
  const pushButton = h("button", { type: "button", id: "push-toggle" }, "…") as HTMLButtonElement;
  const words: Record<PushState, string> = {
    unsupported: "This browser cannot receive push notifications.",
    denied: "Notifications are blocked for this site in your browser's settings.",
    off: "Off on this browser.",
    on: "On: new signals that fit your profile, and the close of signals you upgraded, arrive here.",
  };
  const show = (state: PushState): void => {
    pushButton.dataset.state = state;
    pushButton.textContent = state === "on" ? "Turn notifications off" : "Turn notifications on";
    pushButton.disabled = state === "unsupported" || state === "denied";
    pushStatus.replaceChildren(words[state]);
  };
  pushButton.addEventListener("click", () => {
    const turnOn = pushButton.dataset.state !== "on";
    pushButton.disabled = true;
    pushStatus.replaceChildren(turnOn ? "Subscribing…" : "Unsubscribing…");
    (turnOn ? enablePush() : disablePush())
      .then(() => pushState())
      .then(show)
      .catch((err: unknown) => {
        pushButton.disabled = false;
        pushStatus.replaceChildren(errorBox((err as Error).message));
      });
  });
  root.append(h("h2", {}, "Notifications"), pushButton, pushStatus);
  pushState().then(show).catch((err: unknown) => pushStatus.replaceChildren(errorBox((err as Error).message)));

  const out = h("button", { type: "button", id: "sign-out" }, "Sign out");
  const outStatus = h("div", { role: "status", "aria-live": "polite" });
  out.addEventListener("click", () => {
    signOut().then(() => go("/")).catch((err: unknown) => outStatus.replaceChildren(errorBox(`Signed out here, but ${(err as Error).message}`)));
  });
  root.append(h("h2", {}, "Session"), out, outStatus);

  // DELETE /api/me: the account, its tokens and upgrades go; billing does not stop by itself.
  const del = h("button", { type: "button", id: "delete-account", class: "danger" }, "Delete my account");
  const delStatus = h("div", { role: "status", "aria-live": "polite" });
  del.addEventListener("click", () => {
    const paid = m.tier === "premium" ? " Cancel your subscription in the billing portal first: deleting the account does not stop billing." : "";
    if (!confirm(`Delete ${m.email} for good? Your sign-in, profile and upgrades are erased.${paid}`)) return;
    authed("/api/me", { method: "DELETE" })
      .then(() => forgetHere())
      .then(() => go("/"))
      .catch((err: unknown) => delStatus.replaceChildren(errorBox((err as Error).message)));
  });
  root.append(h("h2", {}, "Delete the account"),
    h("p", { class: "hint" }, "Your payments stay on record without your name; a paid subscription must be cancelled in the billing portal first."),
    del, delStatus);
}
