/** "Verify it yourself": re-walk the ledger's hash chain here, check signed checkpoints, and compare
 * with the checkpoints this browser kept on earlier visits. */
import { ApiError, fetchJson } from "../api";
import { allCheckpoints, Checkpoint, contradictions, ed25519, keep, keptCheckpoints, verifyCheckpointChain } from "../checkpoints";
import { h } from "../dom";
import { ledgerEntries, verifyChain } from "../ledger";

export async function verifyPage(root: HTMLElement): Promise<void> {
  root.append(h("h1", {}, "Verify it yourself"),
    h("p", { class: "lede" }, "Your browser downloads the whole public ledger and recomputes every entry's SHA-256 fingerprint, chained to the one before, exactly as ",
      h("a", { href: "/docs#/ledger" }, "the recipe"), " says. Nothing is taken on trust from the server's word."));
  const result = h("div", { id: "verify-result", role: "status", "aria-live": "polite" }, "Checking…");
  const details = h("ul", { class: "checks" });
  root.append(result, details);
  if (!globalThis.crypto?.subtle) {
    result.replaceChildren(h("p", { class: "error" }, "This page needs WebCrypto, which browsers give only to secure pages: open it over https or at 127.0.0.1/localhost."));
    return;
  }
  const line = (cls: string, text: string): void => void details.append(h("li", { class: cls }, text));
  try {
    const [served, check] = await Promise.all([allCheckpoints(), ed25519()]);
    const kept = keptCheckpoints();
    const want = new Set([...served, ...kept].map((c) => c.seq));
    const chain = await verifyChain(ledgerEntries(), want, (n) => { result.textContent = `Checking… ${n} entries so far`; });
    const cps = await verifyCheckpointChain(served, check);
    let key: { public_key: string } | null = null;
    try {
      key = await fetchJson<{ public_key: string }>("/api/ledger/public-key");
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) throw err;
    }
    const problems = contradictions(kept, cps.ok ? served : served.slice(0, cps.checked), chain.seen, chain);
    if (cps.problem) problems.unshift(cps.problem);
    if (cps.ok && key && cps.key && key.public_key !== cps.key) {
      problems.push({ number: served[served.length - 1].number, why: `the served public key ${key.public_key.slice(0, 12)} is not the key in force ${cps.key.slice(0, 12)} (a key swapped without a rotation checkpoint)` });
    }

    if (chain.ok) {
      result.replaceChildren(h("p", { class: "ok big", "data-state": "verified" },
        `✔ Verified ${chain.checked} entries`), h("p", {}, `Head seq ${chain.headSeq}, hash ${chain.head.slice(0, 16)}…` +
        (chain.sealed ? ` (${chain.sealed} entries of still-open signals are sealed: their links checked, their content shown when they close).` : ".")));
    } else {
      result.replaceChildren(h("p", { class: "bad big", "data-state": "broken", "data-first-bad": chain.firstBad ?? "" },
        `✘ Entry ${chain.firstBad} does not match`), h("p", {}, `${chain.reason}. The ${chain.checked} entries before it verified.`));
    }
    if (served.length) {
      line(cps.ok ? "ok" : "bad", cps.ok
        ? `${cps.checked} signed checkpoints chain together${check ? ", each signature checked (Ed25519)" : ""}.`
        : `Checkpoints: ${cps.problem?.why}`);
    } else line("", "No signed checkpoint yet.");
    if (!check) line("warn", "This browser cannot check Ed25519 signatures (WebCrypto has no Ed25519 here): the checkpoints' links and head hashes are checked, their signatures are not.");
    if (key) line("", `Signing key: ${key.public_key}`);
    const rewrites = problems.filter((p) => p !== cps.problem);
    for (const p of rewrites) line("bad contradiction", p.why);
    if (!rewrites.length && kept.length) line("ok", `The ledger still extends all ${kept.length} checkpoints this browser kept on earlier visits.`);
    if (problems.length && chain.ok) {
      result.prepend(h("p", { class: "bad big", "data-state": "contradicted" }, `✘ ${problems[0].why}`));
    } else if (served.length && chain.ok && !problems.length) {
      keep(served[served.length - 1] as Checkpoint);
      line("", `Checkpoint ${served[served.length - 1].number} is now kept in this browser: later visits check that the ledger still passes through it.`);
    }
  } catch (err) {
    result.replaceChildren(h("p", { class: "error", role: "alert" }, `Could not finish the check: ${(err as Error).message}`));
  }
}
