/** Sign in and sign up: one form each; the API's reasons (weak password, taken, locked) in words. */
import { register, signIn } from "../auth";
import { errorBox, h } from "../dom";
import { go } from "../nav";

/** Where to go after signing in: `?next=/path` on this site only. */
function nextPath(fallback: string): string {
  const next = new URLSearchParams(location.search).get("next");
  return next && next.startsWith("/") && !next.startsWith("//") ? next : fallback;
}

function credentialsForm(id: string, submit: string, newPassword: boolean, act: (email: string, password: string) => Promise<void>): HTMLFormElement {
  const status = h("div", { role: "status", "aria-live": "polite", class: "form-status" });
  const form = h("form", { id, class: "stack", novalidate: true },
    h("div", { class: "field" }, h("label", { for: `${id}-email` }, "Email"),
      h("input", { id: `${id}-email`, name: "email", type: "email", autocomplete: "email", required: true })),
    h("div", { class: "field" }, h("label", { for: `${id}-password` }, "Password"),
      h("input", { id: `${id}-password`, name: "password", type: "password", required: true,
        autocomplete: newPassword ? "new-password" : "current-password" })),
    newPassword ? h("p", { class: "hint" }, "Choose a long one: a short, common or guessable password is refused, with the reason.") : null,
    h("button", { type: "submit", class: "primary" }, submit),
    status);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const button = form.querySelector("button") as HTMLButtonElement;
    button.disabled = true;
    status.replaceChildren(h("span", {}, "Working…"));
    act(String(data.get("email") ?? "").trim(), String(data.get("password") ?? ""))
      .catch((err: unknown) => status.replaceChildren(errorBox((err as Error).message)))
      .finally(() => { button.disabled = false; });
  });
  return form;
}

export function signInPage(root: HTMLElement): void {
  const next = nextPath("/live");
  root.append(h("h1", {}, "Sign in"),
    credentialsForm("signin-form", "Sign in", false, async (email, password) => {
      await signIn(email, password);
      go(next);
    }),
    h("p", {}, "No account yet? ", h("a", { href: `/register${location.search}` }, "Create one"), "."));
}

export function registerPage(root: HTMLElement): void {
  root.append(h("h1", {}, "Create an account"),
    h("p", { class: "lede" }, "Free: the track record. Premium: live signals fitted to your risk profile, sized for your capital."),
    credentialsForm("register-form", "Create account", true, async (email, password) => {
      await register(email, password);
      go(nextPath("/questionnaire"));
    }),
    h("p", {}, "Have an account? ", h("a", { href: `/signin${location.search}` }, "Sign in"), "."));
}
