/**
 * Signed checkpoints (docs/ledger.md, src/tradesignals/domain/checkpoints.py), checked in the browser,
 * and the ones this browser saw kept in localStorage: on each visit the ledger must still pass
 * through every kept one, which is what catches a ledger rewritten or cut short since.
 */
import { fetchJson } from "./api";
import { GENESIS, hexToBytes, sha256Hex } from "./ledger";

export interface Checkpoint {
  number: number;
  seq: number;
  head_hash: string;
  at: string;
  previous_checkpoint_hash: string;
  next_public_key: string | null;
  public_key: string;
  signature: string;
  hash: string;
}

const KEPT = "ts.kept-checkpoints.v1";
const MAX_KEPT = 50;
const short = (h: string): string => h.slice(0, 12);
const enc = new TextEncoder();

/** The signed bytes: keys in sorted order, integers and ASCII strings only, so JSON.stringify is exact. */
export function message(cp: Checkpoint): Uint8Array {
  const body: Record<string, unknown> = { at: cp.at, head_hash: cp.head_hash };
  if (cp.next_public_key !== null && cp.next_public_key !== undefined) body.next_public_key = cp.next_public_key;
  body.previous_checkpoint_hash = cp.previous_checkpoint_hash;
  body.seq = cp.seq;
  return enc.encode(JSON.stringify(body));
}

/** One text per checkpoint, to compare a kept one with the one served now, field by field. */
export function fingerprint(cp: Checkpoint): string {
  const keys = ["at", "hash", "head_hash", "next_public_key", "number", "previous_checkpoint_hash", "public_key", "seq", "signature"] as const;
  return JSON.stringify(keys.map((k) => cp[k] ?? null));
}

export type Ed25519Check = (publicKey: string, msg: Uint8Array, signature: string) => Promise<boolean>;

/** WebCrypto's Ed25519 verifier, or null where this browser has none. */
export async function ed25519(): Promise<Ed25519Check | null> {
  try {
    const probe = new Uint8Array(32);
    probe[0] = 1;
    await crypto.subtle.importKey("raw", probe, { name: "Ed25519" }, false, ["verify"]);
  } catch (err) {
    if ((err as DOMException).name === "NotSupportedError") return null;
  }
  return async (publicKey, msg, signature) => {
    try {
      const key = await crypto.subtle.importKey("raw", hexToBytes(publicKey), { name: "Ed25519" }, false, ["verify"]);
      return await crypto.subtle.verify({ name: "Ed25519" }, key, hexToBytes(signature), msg);
    } catch {
      return false;
    }
  };
}

export async function allCheckpoints(): Promise<Checkpoint[]> {
  const out: Checkpoint[] = [];
  let from: number | null = 0;
  while (from !== null) {
    const page: { checkpoints: Checkpoint[]; next_from: number | null } = await fetchJson(
      `/api/ledger/checkpoints?from=${from}&limit=1000`,
    );
    out.push(...page.checkpoints);
    from = page.next_from;
  }
  return out;
}

export interface ChainCheck {
  ok: boolean;
  checked: number;
  signaturesChecked: boolean;
  key: string | null;
  problem: { number: number; why: string } | null;
}

/** The checkpoint chain on its own, in the order of domain/checkpoints.py's `_chain_problem`. */
export async function verifyCheckpointChain(cps: Checkpoint[], check: Ed25519Check | null): Promise<ChainCheck> {
  let previous: Checkpoint | null = null;
  let previousHash = GENESIS;
  let key: string | null = null;
  let checked = 0;
  const fail = (number: number, why: string): ChainCheck => ({
    ok: false, checked, signaturesChecked: check !== null, key, problem: { number, why: `checkpoint ${number}: ${why}` },
  });
  for (const cp of cps) {
    const expected = previous ? previous.number + 1 : 1;
    if (cp.number !== expected) {
      return fail(expected, `checkpoint ${expected} is ${cp.number > expected ? "missing" : "repeated or out of order"} (next served is ${cp.number})`);
    }
    if (cp.previous_checkpoint_hash !== previousHash) {
      return fail(cp.number, `previous_checkpoint_hash ${short(cp.previous_checkpoint_hash)} is not the hash ${short(previousHash)} of checkpoint ${expected - 1}`);
    }
    if (key !== null && cp.public_key !== key) {
      return fail(cp.number, `signed by key ${short(cp.public_key)}, but the key in force is ${short(key)} (a key swapped without a rotation checkpoint)`);
    }
    const msg = message(cp);
    if (check && !(await check(cp.public_key, msg, cp.signature))) {
      return fail(cp.number, "bad signature (forged or altered)");
    }
    if (previous && cp.seq < previous.seq) {
      return fail(cp.number, `vouches for seq ${cp.seq}, behind checkpoint ${previous.number}'s seq ${previous.seq}`);
    }
    const hash = await sha256Hex([msg]);
    if (cp.hash !== hash) return fail(cp.number, `served hash ${short(cp.hash)} is not the hash of its message ${short(hash)}`);
    previous = cp;
    previousHash = hash;
    key = cp.next_public_key ?? cp.public_key;
    checked++;
  }
  return { ok: true, checked, signaturesChecked: check !== null, key, problem: null };
}

export function keptCheckpoints(): Checkpoint[] {
  try {
    const v = JSON.parse(localStorage.getItem(KEPT) ?? "[]") as unknown;
    return Array.isArray(v) ? (v as Checkpoint[]) : [];
  } catch {
    return [];
  }
}

/** Keep `cp` (the newest verified one); the oldest kept ones go first past MAX_KEPT, but not number 1's. */
export function keep(cp: Checkpoint): void {
  const kept = keptCheckpoints().filter((k) => k.number !== cp.number);
  kept.push(cp);
  kept.sort((a, b) => a.number - b.number);
  while (kept.length > MAX_KEPT) kept.splice(1, 1);
  localStorage.setItem(KEPT, JSON.stringify(kept));
}

/** What is wrong between the kept checkpoints and what the server serves now, lowest number first. */
export function contradictions(
  kept: Checkpoint[],
  served: Checkpoint[],
  seen: Map<number, string>,
  ledger: { ok: boolean; headSeq: number; firstBad: number | null },
  servedClaims = true,
): { number: number; why: string }[] {
  const out: { number: number; why: string }[] = [];
  const byNumber = new Map(served.map((c) => [c.number, c]));
  for (const k of kept) {
    const s = byNumber.get(k.number);
    if (!s) {
      out.push({ number: k.number, why: `this ledger deleted checkpoint ${k.number}, which this browser kept (seq ${k.seq}, head ${short(k.head_hash)})` });
      continue;
    }
    if (fingerprint(s) !== fingerprint(k)) {
      out.push({ number: k.number, why: `this ledger rewrote its checkpoints: checkpoint ${k.number} differs from the one this browser kept` });
      continue;
    }
  }
  for (const c of servedClaims ? [...kept, ...served] : kept) {
    if (out.some((o) => o.number === c.number)) continue;
    if (c.seq <= ledger.headSeq) {
      const h = seen.get(c.seq);
      if (h !== c.head_hash) {
        out.push({ number: c.number, why: `this ledger rewrote history after checkpoint ${c.number}: its entry ${c.seq} hashes to ${short(h ?? "?")}, checkpoint ${c.number} says ${short(c.head_hash)}` });
      }
    } else if (ledger.ok) {
      out.push({ number: c.number, why: `this ledger dropped its newest entries after checkpoint ${c.number}: it ends at seq ${ledger.headSeq}, checkpoint ${c.number} vouches for seq ${c.seq}` });
    } else {
      out.push({ number: c.number, why: `the ledger breaks at seq ${ledger.firstBad} before checkpoint ${c.number}'s seq ${c.seq}` });
    }
  }
  out.sort((a, b) => a.number - b.number);
  return out.filter((o, i) => i === 0 || out[i - 1].number !== o.number);
}

/**
 * The per-visit check (docs/ledger.md, "For the web app's verify page"), cheap enough for every page
 * load: each kept checkpoint must still be served unchanged, and the ledger entry at its seq must
 * still have its head hash. Returns the first contradiction, or null (also when nothing is kept, or
 * the server cannot be reached: that says nothing about the ledger).
 */
export async function quickCheck(): Promise<{ number: number; why: string } | null> {
  const kept = keptCheckpoints();
  if (!kept.length) return null;
  try {
    const served = await allCheckpoints();
    const seen = new Map<number, string>([[0, GENESIS]]);
    const dropped: { number: number; why: string }[] = [];
    for (const k of kept) {
      if (seen.has(k.seq)) continue;
      const page: { entries: { seq: number; hash: string }[] } = await fetchJson(`/api/ledger?from=${k.seq}&to=${k.seq}`);
      const e = page.entries.find((x) => x.seq === k.seq);
      if (e) seen.set(k.seq, e.hash);
      else dropped.push({ number: k.number, why: `this ledger dropped its newest entries after checkpoint ${k.number}: it has no entry ${k.seq} any more` });
    }
    const headSeq = Math.max(...seen.keys());
    const found = contradictions(kept.filter((k) => seen.has(k.seq)), served, seen, { ok: true, headSeq, firstBad: null }, false);
    return [...found, ...dropped].sort((a, b) => a.number - b.number)[0] ?? null;
  } catch {
    return null;
  }
}
