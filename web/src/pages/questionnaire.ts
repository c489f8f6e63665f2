/** The risk questionnaire: the API's own questions (GET /api/risk/questionnaire, no scores shown),
answered with PUT /api/me/risk-profile, which decides the profile. */
import { fetchJson, jsonBody } from "../api";
import { authedJson, Me, setMe, signedIn } from "../auth";
import { errorBox, h } from "../dom";

interface Questionnaire { version: number; questions: { id: string; text: string; options: { id: string; text: string }[] }[] }

export async function questionnairePage(root: HTMLElement): Promise<void> {
  root.append(h("h1", {}, "Your risk profile"),
    h("p", { class: "lede" }, "These questions decide which signals you see and how large a position each one gets. Answer for the money you would trade with."));
  if (!signedIn()) {
    root.append(h("p", {}, h("a", { href: "/signin?next=/questionnaire" }, "Sign in"), " to save your profile."));
    return;
  }
  let q: Questionnaire;
  try {
    q = await fetchJson<Questionnaire>("/api/risk/questionnaire");
  } catch (err) {
    root.append(errorBox((err as Error).message));
    return;
  }
  const status = h("div", { role: "status", "aria-live": "polite", class: "form-status" });
  const form = h("form", { id: "questionnaire", class: "stack", novalidate: true },
    ...q.questions.map((question, i) => h("fieldset", { class: "question" },
      h("legend", {}, `${i + 1}. ${question.text}`),
      ...question.options.map((o) => h("label", { class: "choice" },
        h("input", { type: "radio", name: question.id, value: o.id, required: true }), ` ${o.text}`)))),
    h("button", { type: "submit", class: "primary" }, "Save my profile"),
    status);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const answers: Record<string, string> = {};
    for (const [k, v] of new FormData(form)) answers[k] = String(v);
    status.replaceChildren(h("span", {}, "Saving…"));
    authedJson<Me>("/api/me/risk-profile", jsonBody("PUT", { answers }))
      .then((m) => {
        setMe(m);
        status.replaceChildren(h("p", { class: "ok", "data-profile": m.risk_profile }, `Saved: your profile is ${m.risk_profile}.`),
          h("p", {}, m.tier === "premium"
            ? h("a", { href: "/live" }, "See your live signals")
            : h("a", { href: "/checkout?plan=premium", class: "button-link" }, "Go premium to see live signals fitted to it")));
      })
      .catch((err: unknown) => status.replaceChildren(errorBox((err as Error).message)));
  });
  root.append(form);
}
