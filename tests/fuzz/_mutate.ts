/**
 * Structure-aware mutation: byte edits (flips, inserts, deletes,
 * truncation, splicing), edits of known integer fields (frame lengths,
 * counters) to their boundary values, JSON-tree edits for the line
 * protocols, and random chunking for stream readers.
 *
 * @module
 */

import type { Random } from "./_rng.ts";
import { concat } from "./_bytes.ts";

/** Largest frame body (mirrors MAX_FRAME_BYTES, kept here for boundaries). */
const MAX_FRAME = 128 * 1024;

/** A valid encoding and where its integer fields sit, for smarter edits. */
export interface Seed {
  bytes: Uint8Array;
  /** Offsets of big-endian u32 frame lengths. */
  lengths?: number[];
  /** Offsets of other big-endian u32 fields (attempts, channels, credits). */
  u32s?: number[];
  /** Offsets of big-endian u64 fields (counters, acks, received counts). */
  u64s?: number[];
}

/** u32 values that sit on some boundary of the protocol. */
export const INTERESTING_U32 = [
  0,
  1,
  2,
  3,
  4,
  0x7f,
  0x80,
  0xff,
  0x100,
  0x3fff,
  0x4000,
  0x4001,
  0xffff,
  0x1_0000,
  MAX_FRAME - 1,
  MAX_FRAME,
  MAX_FRAME + 1,
  MAX_FRAME + 64 * 1024,
  0x7fff_ffff,
  0x8000_0000,
  0xffff_fffe,
  0xffff_ffff,
];

/** u64 values on a boundary (JS safe-integer limit included). */
export const INTERESTING_U64 = [
  0n,
  1n,
  2n,
  0xffff_ffffn,
  0x1_0000_0000n,
  2n ** 53n - 2n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 53n + 1n,
  2n ** 63n - 1n,
  2n ** 63n,
  2n ** 64n - 1n,
];

const INTERESTING_BYTES = [
  0x00,
  0x01,
  0x02,
  0x05,
  0x0a,
  0x0d,
  0x10,
  0x11,
  0x7e,
  0x7f,
  0x80,
  0x85,
  0xff,
];

function setU32(bytes: Uint8Array, at: number, value: number) {
  if (at < 0 || at + 4 > bytes.length) return;
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(at, value >>> 0);
}

function getU32(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(at);
}

function setU64(bytes: Uint8Array, at: number, value: bigint) {
  if (at < 0 || at + 8 > bytes.length) return;
  new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(
    at,
    BigInt.asUintN(64, value),
  );
}

/** One edit of a known field; returns false when the seed has none. */
function mutateField(r: Random, bytes: Uint8Array, seed: Seed): boolean {
  const kinds: Array<"length" | "u32" | "u64"> = [];
  if (seed.lengths?.length) kinds.push("length", "length");
  if (seed.u32s?.length) kinds.push("u32");
  if (seed.u64s?.length) kinds.push("u64");
  if (kinds.length === 0) return false;
  const kind = r.pick(kinds);
  if (kind === "u64") {
    const at = r.pick(seed.u64s!);
    setU64(
      bytes,
      at,
      r.chance(0.8) ? r.pick(INTERESTING_U64) : BigInt(r.u32()),
    );
    return true;
  }
  const at = r.pick(kind === "length" ? seed.lengths! : seed.u32s!);
  if (at + 4 > bytes.length) return false;
  const current = getU32(bytes, at);
  const choice = r.int(4);
  const value = choice === 0
    ? current + (r.chance(0.5) ? 1 : -1)
    : choice === 1
    ? r.u32()
    : r.pick(INTERESTING_U32);
  setU32(bytes, at, value);
  return true;
}

/** One byte-level edit; may return a new array of another length. */
function mutateOnce(
  r: Random,
  input: Uint8Array,
  pool: readonly Uint8Array[],
): Uint8Array {
  const bytes = input;
  const n = bytes.length;
  switch (r.int(n === 0 ? 2 : 12)) {
    case 0: // insert random or interesting bytes
    case 1: {
      const at = r.int(n + 1);
      const count = 1 + r.int(r.chance(0.8) ? 4 : 64);
      const inserted = r.chance(0.5)
        ? r.bytes(count)
        : new Uint8Array(count).fill(r.pick(INTERESTING_BYTES));
      return concat(bytes.subarray(0, at), inserted, bytes.subarray(at));
    }
    case 2: { // flip one bit
      const out = bytes.slice();
      out[r.int(n)] ^= 1 << r.int(8);
      return out;
    }
    case 3: { // set an interesting byte
      const out = bytes.slice();
      out[r.int(n)] = r.pick(INTERESTING_BYTES);
      return out;
    }
    case 4: { // random byte
      const out = bytes.slice();
      out[r.int(n)] = r.int(256);
      return out;
    }
    case 5: { // delete a range
      const at = r.int(n);
      const count = 1 + r.int(Math.min(n - at, r.chance(0.7) ? 4 : 256));
      return concat(bytes.subarray(0, at), bytes.subarray(at + count));
    }
    case 6: // truncate
      return bytes.slice(0, r.int(n));
    case 7: { // duplicate a range
      const at = r.int(n);
      const count = 1 + r.int(Math.min(n - at, 64));
      const where = r.int(n + 1);
      return concat(
        bytes.subarray(0, where),
        bytes.subarray(at, at + count),
        bytes.subarray(where),
      );
    }
    case 8: { // overwrite an arbitrary u32 with a boundary value
      const out = bytes.slice();
      if (n >= 4) setU32(out, r.int(n - 3), r.pick(INTERESTING_U32));
      return out;
    }
    case 9: { // splice with another input
      if (pool.length === 0) return bytes.slice();
      const other = r.pick(pool);
      const cut = r.int(n + 1);
      const from = r.int(other.length + 1);
      return concat(bytes.subarray(0, cut), other.subarray(from));
    }
    case 10: { // append random junk
      return concat(bytes, r.bytes(1 + r.int(32)));
    }
    default: { // swap two bytes
      const out = bytes.slice();
      const a = r.int(n);
      const b = r.int(n);
      [out[a], out[b]] = [out[b], out[a]];
      return out;
    }
  }
}

/**
 * Mutates a seed: a few edits, field-aware ones first (while the offsets
 * still point at the fields), then byte-level ones.
 */
export function mutate(
  r: Random,
  seed: Seed,
  pool: readonly Uint8Array[] = [],
  maxEdits = 4,
): Uint8Array {
  let bytes: Uint8Array = seed.bytes.slice();
  const edits = 1 + r.int(maxEdits);
  for (let i = 0; i < edits; i++) {
    if (i === 0 && r.chance(0.4) && mutateField(r, bytes, seed)) continue;
    bytes = mutateOnce(r, bytes, pool);
  }
  return bytes;
}

/** Mutates plain bytes (no known fields). */
export function mutateBytes(
  r: Random,
  bytes: Uint8Array,
  pool: readonly Uint8Array[] = [],
  maxEdits = 4,
): Uint8Array {
  return mutate(r, { bytes }, pool, maxEdits);
}

/**
 * Splits a stream into read-sized chunks the way a network might: whole,
 * byte by byte, at random sizes, or in two at one point.
 */
export function chunks(r: Random, bytes: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  const mode = r.int(10);
  if (bytes.length === 0) return out;
  if (mode < 3) return [bytes];
  if (mode === 3 && bytes.length <= 4096) {
    for (let i = 0; i < bytes.length; i++) out.push(bytes.subarray(i, i + 1));
    return out;
  }
  if (mode < 6) {
    const cut = r.int(bytes.length + 1);
    if (cut > 0) out.push(bytes.subarray(0, cut));
    if (cut < bytes.length) out.push(bytes.subarray(cut));
    return out;
  }
  // Tiny pieces only for short streams: a read per byte of 100 KB is slow
  // and finds nothing that 4 KB would not.
  const max = bytes.length <= 4096
    ? r.pick([2, 3, 5, 8, 17, 64, 1000])
    : r.pick([64, 1000, 4096, 20000]);
  for (let at = 0; at < bytes.length;) {
    const size = 1 + r.int(max);
    out.push(bytes.subarray(at, at + size));
    at += size;
  }
  return out;
}

// ---------------------------------------------------------------------------
// JSON lines.

/** Keys the line protocols use, plus some that trip naive object handling. */
const KEYS = [
  "op",
  "type",
  "id",
  "socket",
  "secret",
  "program",
  "limits",
  "term",
  "command",
  "pty",
  "cols",
  "rows",
  "env",
  "killOthers",
  "passkey",
  "target",
  "code",
  "detached",
  "sessions",
  "state",
  "startedAt",
  "lastSeenAt",
  "connectTimeoutMs",
  "sessionTimeoutMs",
  "maxBacklogBytes",
  "ok",
  "error",
  "LANG",
  "LC_ALL",
  "LC_CTYPE",
  "COLORTERM",
  "LC_\n",
  "LC_\u001b[31m",
  "PATH",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "",
];

/** Values on the edges of what the decoders check. */
export const INTERESTING_JSON: readonly unknown[] = [
  null,
  true,
  false,
  0,
  -1,
  1,
  1.5,
  2,
  79,
  80,
  9999,
  10000,
  65535,
  65536,
  2 ** 31,
  2 ** 32,
  2 ** 53 - 1,
  2 ** 53,
  1e21,
  1e308,
  -1e308,
  "",
  "a",
  "0",
  "-1",
  "80",
  "new",
  "attach",
  "list",
  "register",
  "status",
  "end",
  "resize",
  "exit",
  "detach",
  "attached",
  "detached",
  "xterm-256color",
  "/",
  "/tmp/et/0123456789abcdef.sock",
  "relative/path",
  "\u0000",
  "\n",
  "\r\n",
  "\u2028",
  "\u001b]0;title\u0007",
  "é",
  "\ud83d\ude00",
  "\ufffd",
  "0123456789abcdef0123456789abcdef",
  "0123456789ABCDEF0123456789ABCDEF",
  "0123456789abcdef0123456789abcdef/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
  "f".repeat(64),
  "x".repeat(300),
  {},
  [],
  [1, 2],
  { op: "list" },
];

function randomString(r: Random): string {
  const alphabet =
    'abcdef0123456789ABCDEF/-_.:@[]%$ \t\n\\"{}é\u0000\u001b\u2028😀';
  const chars = [...alphabet];
  const length = r.chance(0.9) ? r.int(40) : r.int(5000);
  let out = "";
  for (let i = 0; i < length; i++) out += r.pick(chars);
  return out;
}

/** A random JSON value of bounded depth. */
export function randomJson(r: Random, depth = 0): unknown {
  const kind = r.int(depth > 3 ? 4 : 7);
  switch (kind) {
    case 0:
      return r.pick(INTERESTING_JSON);
    case 1:
      return randomString(r);
    case 2:
      return r.chance(0.5)
        ? r.int(100_000) - 10
        : (r.u32() / 7) * (r.chance(0.5) ? 1 : -1);
    case 3:
      return r.chance(0.5);
    case 4: {
      const out: unknown[] = [];
      for (let i = r.int(4); i > 0; i--) out.push(randomJson(r, depth + 1));
      return out;
    }
    default: {
      const out: Record<string, unknown> = {};
      for (let i = r.int(5); i > 0; i--) {
        out[r.pick(KEYS)] = randomJson(r, depth + 1);
      }
      return out;
    }
  }
}

/** Edits a JSON tree: swap, drop or add members, change types. */
export function mutateJson(r: Random, value: unknown, depth = 0): unknown {
  if (r.chance(depth === 0 ? 0.05 : 0.2)) return randomJson(r, depth);
  if (Array.isArray(value)) {
    const out = value.slice();
    if (out.length > 0 && r.chance(0.6)) {
      const i = r.int(out.length);
      out[i] = mutateJson(r, out[i], depth + 1);
    } else if (r.chance(0.5)) out.push(randomJson(r, depth + 1));
    else out.splice(r.int(out.length + 1), 1);
    return out;
  }
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {
      ...value as Record<string, unknown>,
    };
    const keys = Object.keys(out);
    const action = r.int(10);
    if (action < 6 && keys.length > 0) {
      const key = r.pick(keys);
      out[key] = mutateJson(r, out[key], depth + 1);
    } else if (action < 8 && keys.length > 0) {
      delete out[r.pick(keys)];
    } else {
      out[r.pick(KEYS)] = randomJson(r, depth + 1);
    }
    return out;
  }
  if (typeof value === "number") {
    return r.pick([
      value + 1,
      value - 1,
      -value,
      value * 1000,
      value + 0.5,
      r.pick(INTERESTING_JSON),
      String(value),
    ]);
  }
  if (typeof value === "string") {
    if (value.length > 0 && r.chance(0.5)) {
      const chars = [...value];
      const at = r.int(chars.length);
      const edit = r.int(3);
      if (edit === 0) chars.splice(at, 1);
      else if (edit === 1) {
        chars.splice(at, 0, r.pick([...'aZ0-_/.\n\u0000é\\"']));
      } else chars[at] = r.pick([..."aZ0-_/.:@[]%\n"]);
      return chars.join("");
    }
    return r.pick([
      randomString(r),
      r.pick(INTERESTING_JSON),
      value.toUpperCase(),
      value + value,
    ]);
  }
  return randomJson(r, depth);
}

/** Edits of a line's text that JSON.stringify would never produce. */
const TEXT_TOKENS = [
  "\n",
  "\r",
  "\u0000",
  "{",
  "}",
  "[",
  "]",
  ",",
  ":",
  '"',
  "\\",
  "\\u0000",
  "\\ud800",
  "\\n",
  "1e999",
  "-0",
  "01",
  "0x10",
  "NaN",
  "null",
  "true",
  " ",
  "\t",
  "\ufeff",
  '"__proto__":{"op":"list"},',
  '"op":"list",',
];

/** Edits the text of a line at the character level. */
export function mutateText(r: Random, text: string): string {
  let out = text;
  const edits = 1 + r.int(3);
  for (let i = 0; i < edits; i++) {
    const at = r.int(out.length + 1);
    switch (r.int(5)) {
      case 0:
        out = out.slice(0, at) + r.pick(TEXT_TOKENS) + out.slice(at);
        break;
      case 1:
        out = out.slice(0, at) + out.slice(at + 1 + r.int(8));
        break;
      case 2:
        out = out.slice(0, at);
        break;
      case 3: {
        const from = r.int(out.length + 1);
        out = out.slice(0, at) + out.slice(from, from + 1 + r.int(16)) +
          out.slice(at);
        break;
      }
      default:
        out = out.slice(0, at) + String.fromCharCode(r.int(128)) +
          out.slice(at + 1);
    }
  }
  return out;
}

/** A deeply nested JSON text (arrays or objects), to probe parser depth. */
export function deepJson(r: Random): string {
  const depth = r.pick([100, 1000, 5000, 20000]);
  return r.chance(0.5)
    ? "[".repeat(depth) + "]".repeat(depth)
    : '{"op":'.repeat(depth) + "1" + "}".repeat(depth);
}
