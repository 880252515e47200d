/**
 * The handshake and packet formats re-implemented from docs/PROTOCOL.md
 * alone (WebCrypto directly, none of src/'s helpers), so the fuzz oracles
 * check the code against the document rather than against itself.
 *
 * @module
 */

import { be32, be64, concat, utf8Bytes } from "./_bytes.ts";

/** The proof key and both packet keys of a session, per section 2. */
export interface SpecKeys {
  proof: CryptoKey;
  clientToServer: CryptoKey;
  serverToClient: CryptoKey;
}

type Buf = Uint8Array<ArrayBuffer>;
const buf = (bytes: Uint8Array) => bytes as Buf;

/** HKDF-SHA256(IKM = passkey, salt = session id, info = label). */
export async function specKeys(
  id: Uint8Array,
  passkey: Uint8Array,
): Promise<SpecKeys> {
  const base = await crypto.subtle.importKey(
    "raw",
    buf(passkey),
    "HKDF",
    false,
    ["deriveKey"],
  );
  const params = (label: string) => ({
    name: "HKDF",
    hash: "SHA-256",
    salt: buf(id),
    info: buf(utf8Bytes(label)),
  });
  const aes = (label: string) =>
    crypto.subtle.deriveKey(
      params(label),
      base,
      { name: "AES-GCM", length: 256 },
      false,
      ["encrypt", "decrypt"],
    );
  return {
    proof: await crypto.subtle.deriveKey(
      params("et/1 handshake proof"),
      base,
      { name: "HMAC", hash: "SHA-256", length: 256 },
      false,
      ["sign", "verify"],
    ),
    clientToServer: await aes("et/1 client to server"),
    serverToClient: await aes("et/1 server to client"),
  };
}

async function hmac(key: CryptoKey, parts: Uint8Array[]): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.sign("HMAC", key, buf(concat(...parts))),
  );
}

/** What both proofs cover (section 4). */
export interface ProofInput {
  sessionId: Uint8Array;
  clientNonce: Uint8Array;
  serverNonce: Uint8Array;
  attempt: number;
  clientReceived: bigint;
}

/** client_proof of section 4. */
export function clientProof(
  key: CryptoKey,
  p: ProofInput,
): Promise<Uint8Array> {
  return hmac(key, [
    utf8Bytes("et/1 client proof"),
    new Uint8Array([1]),
    p.sessionId,
    p.clientNonce,
    p.serverNonce,
    be32(p.attempt),
    be64(p.clientReceived),
  ]);
}

/** server_proof of section 4. */
export function serverProof(
  key: CryptoKey,
  p: ProofInput,
  serverReceived: bigint,
): Promise<Uint8Array> {
  return hmac(key, [
    utf8Bytes("et/1 server proof"),
    new Uint8Array([1]),
    p.sessionId,
    p.clientNonce,
    p.serverNonce,
    be32(p.attempt),
    be64(p.clientReceived),
    be64(serverReceived),
  ]);
}

/** What a signed refusal's MAC covers (section 4). */
export interface RefuseInput {
  version: number;
  sessionId: Uint8Array;
  clientNonce: Uint8Array;
  /** Absent when the refusal answers the hello (no challenge was sent). */
  serverNonce: Uint8Array | null;
  code: number;
  reason: Uint8Array;
}

/** refuse_mac of section 4. */
export function refuseMac(key: CryptoKey, r: RefuseInput): Promise<Uint8Array> {
  return hmac(key, [
    utf8Bytes("et/1 refuse"),
    new Uint8Array([r.version]),
    r.sessionId,
    r.clientNonce,
    ...(r.serverNonce ? [r.serverNonce] : []),
    new Uint8Array([r.code]),
    r.reason,
  ]);
}

/** A frame: length:u32 body (section 3). */
export function frame(body: Uint8Array): Uint8Array {
  return concat(be32(body.length), body);
}

/** Outcome of parsing a byte stream into frames by section 3. */
export interface SpecFrames {
  frames: Uint8Array[];
  /** How the stream ends after the frames. */
  end: "clean" | "bad-length" | "cut";
  /** Bytes the frames took, headers included. */
  consumed: number;
}

/** Splits `bytes` into frames exactly as section 3 says. */
export function specFrames(bytes: Uint8Array, max = 128 * 1024): SpecFrames {
  const frames: Uint8Array[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  while (true) {
    if (at === bytes.length) return { frames, end: "clean", consumed: at };
    if (bytes.length - at < 4) return { frames, end: "cut", consumed: at };
    const length = view.getUint32(at);
    if (length === 0 || length > max) {
      return { frames, end: "bad-length", consumed: at };
    }
    if (bytes.length - at - 4 < length) {
      return { frames, end: "cut", consumed: at };
    }
    frames.push(bytes.subarray(at + 4, at + 4 + length));
    at += 4 + length;
  }
}

/** A parsed REFUSE per section 4 (either form). */
export interface SpecRefusal {
  code: number;
  signed: boolean;
  reason: Uint8Array;
  mac: Uint8Array | null;
}

/** Parses a REFUSE body per section 4; null when it is not one. */
export function specRefusal(body: Uint8Array): SpecRefusal | null {
  if (body.length < 2 || body[0] !== 0x05) return null;
  const signed = (body[1] & 0x80) !== 0;
  if (!signed) {
    return { code: body[1], signed, reason: body.subarray(2), mac: null };
  }
  if (body.length < 2 + 32) return null;
  return {
    code: body[1] & 0x7f,
    signed,
    reason: body.subarray(2, body.length - 32),
    mac: body.subarray(body.length - 32),
  };
}

/** The 12-byte AES-GCM nonce of section 5. */
export function packetNonce(space: number, counter: bigint): Uint8Array {
  return concat(be32(space), be64(counter));
}

/**
 * Opens a DATA (0x10) or CONTROL (0x11) frame body per section 5 with
 * WebCrypto; null when it does not authenticate.
 */
export async function specOpen(
  key: CryptoKey,
  body: Uint8Array,
): Promise<Uint8Array | null> {
  if (body.length < 9 + 16) return null;
  const type = body[0];
  if (type !== 0x10 && type !== 0x11) return null;
  const counter = new DataView(body.buffer, body.byteOffset, 9)
    .getBigUint64(1);
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt(
        {
          name: "AES-GCM",
          iv: buf(packetNonce(type === 0x10 ? 0 : 1, counter)),
          additionalData: buf(body.slice(0, 9)),
        },
        key,
        buf(body.slice(9)),
      ),
    );
  } catch {
    return null;
  }
}
