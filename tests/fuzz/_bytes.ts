/**
 * Small byte helpers shared by the fuzz targets.
 *
 * @module
 */

/** Joins byte arrays into one. */
export function concat(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** True when both arrays hold the same bytes. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Lowercase hex. */
export function hex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** Parses hex (whitespace ignored). */
export function unhex(text: string): Uint8Array {
  const clean = text.replace(/\s+/g, "");
  if (clean.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(clean)) {
    throw new Error("not hex");
  }
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = parseInt(clean.slice(2 * i, 2 * i + 2), 16);
  }
  return out;
}

/** A big-endian u32. */
export function be32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value >>> 0);
  return out;
}

/** A big-endian u64 from a bigint (any 64-bit value, unlike wire.u64). */
export function be64(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt.asUintN(64, value));
  return out;
}

const utf8 = new TextEncoder();
const text = new TextDecoder();

/** UTF-8 bytes of a string. */
export function utf8Bytes(value: string): Uint8Array {
  return utf8.encode(value);
}

/** Decodes bytes as UTF-8, replacing invalid sequences, as the readers do. */
export function utf8Text(bytes: Uint8Array): string {
  return text.decode(bytes);
}

/** A short printable preview of a value for failure messages. */
export function preview(value: unknown, max = 120): string {
  let textValue: string;
  try {
    textValue = typeof value === "string"
      ? JSON.stringify(value)
      : JSON.stringify(
        value,
        (_, v) =>
          v instanceof Uint8Array
            ? `<${v.length} bytes ${hex(v.subarray(0, 16))}>`
            : typeof v === "bigint"
            ? `${v}n`
            : v,
      );
  } catch {
    textValue = String(value);
  }
  textValue ??= String(value);
  return textValue.length > max ? textValue.slice(0, max) + "…" : textValue;
}

/** Deep equality for decoded values (bytes compared by content). */
export function equalValue(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    return equalBytes(a, b);
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => equalValue(x, b[i]));
  }
  if (a && b && typeof a === "object" && typeof b === "object") {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
    for (const key of keys) {
      const x = (a as Record<string, unknown>)[key];
      const y = (b as Record<string, unknown>)[key];
      if (x === undefined && y === undefined) continue;
      if (!equalValue(x, y)) return false;
    }
    return true;
  }
  return Object.is(a, b);
}
