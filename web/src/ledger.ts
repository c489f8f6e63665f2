/**
 * Re-walks the public ledger in the browser, by the recipe of src/tradesignals/domain/ledger.py:
 * hash = sha256(bytes(prev_hash) + canonical_json({seq, signal_id, kind, at, data})), checked in the
 * same order as `verify` there, so the page names the same first bad entry as `tradesignals ledger verify`.
 */
import { canonical, parseRaw, Raw, RawNumber } from "./canonical";
import { fetchText } from "./api";

export const GENESIS = "0".repeat(64);
const HEX64 = /^[0-9a-f]{64}$/;

export interface ChainResult {
  ok: boolean;
  checked: number;
  sealed: number;
  head: string;
  headSeq: number;
  firstBad: number | null;
  reason: string | null;
  /** Hashes seen at the seqs asked for (checkpoint claims), seq 0 being GENESIS. */
  seen: Map<number, string>;
}

const enc = new TextEncoder();

export function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function bytesToHex(b: ArrayBuffer): string {
  return [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, "0")).join("");
}

export async function sha256Hex(parts: Uint8Array[]): Promise<string> {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const buf = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    buf.set(p, at);
    at += p.length;
  }
  return bytesToHex(await crypto.subtle.digest("SHA-256", buf));
}

/** The hash an entry's content must have (throws on content canonical JSON cannot hold). */
export async function entryHash(prevHash: string, e: Map<string, Raw>): Promise<string> {
  if (!HEX64.test(prevHash)) throw new Error(`prev_hash ${prevHash} is not 64 lowercase hex digits`);
  const body = new Map<string, Raw>();
  for (const k of ["seq", "signal_id", "kind", "at", "data"]) body.set(k, e.get(k) ?? null);
  return sha256Hex([hexToBytes(prevHash), enc.encode(canonical(body))]);
}

function intOf(v: Raw | undefined): number | null {
  return v instanceof RawNumber && v.isInt ? Number(v.raw) : null;
}

/** Every ledger page from seq 1, parsed number-exactly. */
export async function* ledgerEntries(pageSize = 2000): AsyncGenerator<Map<string, Raw>> {
  let from: number | null = 0;
  while (from !== null) {
    const page = parseRaw(await fetchText(`/api/ledger?from=${from}&limit=${pageSize}`));
    if (!(page instanceof Map)) throw new Error("the ledger page is not a JSON object");
    const entries = page.get("entries");
    if (!Array.isArray(entries)) throw new Error("the ledger page has no entries");
    for (const e of entries) {
      if (!(e instanceof Map)) throw new Error("a ledger entry is not a JSON object");
      yield e;
    }
    from = intOf(page.get("next_from") ?? null);
  }
}

export async function verifyChain(
  entries: AsyncIterable<Map<string, Raw>>,
  want: Set<number> = new Set(),
  onProgress?: (checked: number) => void,
): Promise<ChainResult> {
  let prev = GENESIS;
  let expected = 1;
  let checked = 0;
  let sealed = 0;
  let headSeq = 0;
  const seen = new Map<number, string>([[0, GENESIS]]);
  const bad = (seq: number, problem: string, detail: string): ChainResult => ({
    ok: false, checked, sealed, head: prev, headSeq, firstBad: seq, reason: `${problem}: ${detail}`, seen,
  });
  for await (const e of entries) {
    const seq = intOf(e.get("seq"));
    if (seq === null) return bad(expected, "unhashable entry", `an entry after seq ${expected - 1} has no whole-number seq`);
    if (seq < expected) {
      const where = checked ? `follows seq ${expected - 1}` : `where the walk starts at seq ${expected}`;
      return bad(seq, "seq out of order", `seq ${seq} ${where}`);
    }
    if (seq > expected) {
      const missing = seq === expected + 1 ? `${expected}` : `${expected}..${seq - 1}`;
      return bad(expected, "seq gap", `seq ${missing} missing (next entry is seq ${seq})`);
    }
    const stored = e.get("hash");
    const prevHash = e.get("prev_hash");
    if (e.get("data") === null || e.get("data") === undefined) {
      if (typeof stored !== "string" || !HEX64.test(stored)) {
        return bad(seq, "unhashable entry", `seq ${seq}: hash is not 64 lowercase hex digits`);
      }
      sealed++;
    } else {
      let computed: string;
      try {
        if (typeof prevHash !== "string") throw new Error("prev_hash is not a string");
        computed = await entryHash(prevHash, e);
      } catch (err) {
        return bad(seq, "unhashable entry", `seq ${seq}: ${(err as Error).message}`);
      }
      if (computed !== stored) {
        return bad(seq, "hash mismatch", `seq ${seq} content hashes to ${computed}, stored ${String(stored)}`);
      }
    }
    if (prevHash !== prev) {
      return bad(seq, "broken link", `seq ${seq} prev_hash ${String(prevHash)} is not the previous hash ${prev}`);
    }
    prev = stored as string;
    if (want.has(seq)) seen.set(seq, prev);
    expected = seq + 1;
    headSeq = seq;
    checked++;
    if (onProgress && checked % 500 === 0) onProgress(checked);
  }
  return { ok: true, checked, sealed, head: prev, headSeq, firstBad: null, reason: null, seen };
}
