/**
 * Canonical JSON exactly as the server hashes it (src/tradesignals/domain/ledger.py):
 * Python's json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).
 *
 * JSON.parse cannot be used on ledger pages: it turns `5.0` into the number 5, and Python hashes
 * `5.0` (a float) and `5` (an int) differently. So this module parses numbers into their source text
 * and writes them back as Python would: integers as integers, floats as Python's repr().
 */

/** A JSON number kept as its source text. */
export class RawNumber {
  constructor(readonly raw: string) {}
  get isInt(): boolean {
    return /^-?\d+$/.test(this.raw);
  }
  toNumber(): number {
    return Number(this.raw);
  }
}

export type Raw = null | boolean | string | RawNumber | Raw[] | Map<string, Raw>;

const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const WS = /[ \t\n\r]*/y;

/** Strict JSON parse keeping numbers as text and objects as Maps (key order and "__proto__" safe). */
export function parseRaw(text: string): Raw {
  let i = 0;
  const fail = (what: string): never => {
    throw new SyntaxError(`bad JSON at ${i}: ${what}`);
  };
  const ws = (): void => {
    WS.lastIndex = i;
    WS.exec(text);
    i = WS.lastIndex;
  };
  const value = (): Raw => {
    ws();
    const c = text[i];
    if (c === "{") {
      i++;
      const out = new Map<string, Raw>();
      ws();
      if (text[i] === "}") {
        i++;
        return out;
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail("expected a key");
        const key = string();
        ws();
        if (text[i++] !== ":") fail("expected ':'");
        out.set(key, value());
        ws();
        const sep = text[i++];
        if (sep === "}") return out;
        if (sep !== ",") fail("expected ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const out: Raw[] = [];
      ws();
      if (text[i] === "]") {
        i++;
        return out;
      }
      for (;;) {
        out.push(value());
        ws();
        const sep = text[i++];
        if (sep === "]") return out;
        if (sep !== ",") fail("expected ',' or ']'");
      }
    }
    if (c === '"') return string();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return fail("unexpected character");
    i = NUMBER.lastIndex;
    return new RawNumber(m[0]);
  };
  const string = (): string => {
    const start = i;
    i++;
    for (;;) {
      const c = text[i];
      if (c === undefined) fail("unterminated string");
      if (c === "\\") i += 2;
      else if (c === '"') break;
      else i++;
    }
    i++;
    return JSON.parse(text.slice(start, i)) as string;
  };
  const out = value();
  ws();
  if (i !== text.length) fail("trailing characters");
  return out;
}

/** Python's repr() of the double nearest `raw` (shortest round-trip digits, Python's layout). */
export function pythonFloat(raw: string): string {
  const x = Number(raw);
  if (!Number.isFinite(x)) throw new RangeError(`${raw} is not finite: canonical JSON refuses it`);
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  // toExponential() without an argument gives the shortest digits that round-trip, like repr().
  const [mant, expText] = Math.abs(x).toExponential().split("e");
  const digits = mant.replace(".", "");
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, "0");
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${e}`;
  }
  if (exp >= 0) {
    const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
    const frac = digits.slice(exp + 1) || "0";
    return `${sign}${intPart}.${frac}`;
  }
  return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function codePointCompare(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const d = (x.value.codePointAt(0) ?? 0) - (y.value.codePointAt(0) ?? 0);
    if (d !== 0) return d;
  }
}

function str(s: string): string {
  if (LONE_SURROGATE.test(s)) throw new RangeError("a lone surrogate cannot be encoded in UTF-8");
  // JSON.stringify escapes exactly what Python's ensure_ascii=False escapes: " \ and controls.
  return JSON.stringify(s);
}

/** The canonical text of a parsed value (encode it as UTF-8 to get the hashed bytes). */
export function canonical(v: Raw): string {
  if (v === null) return "null";
  if (v === true) return "true";
  if (v === false) return "false";
  if (typeof v === "string") return str(v);
  if (v instanceof RawNumber) return v.isInt ? BigInt(v.raw).toString() : pythonFloat(v.raw);
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  const keys = [...v.keys()].sort(codePointCompare);
  return `{${keys.map((k) => `${str(k)}:${canonical(v.get(k) as Raw)}`).join(",")}}`;
}
