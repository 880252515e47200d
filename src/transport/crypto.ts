/**
 * Keys, sealing and proofs: keys and proofs through WebCrypto; packets
 * through the system's OpenSSL where it can be opened (`openssl_gcm.ts`:
 * synchronous, no thread hop, 4 GB/s), else node:crypto for small packets
 * and WebCrypto for large ones. All three are the same AES-256-GCM.
 *
 * Every key is derived with HKDF-SHA256 from the passkey, salted with the
 * session id, under a distinct label: one HMAC key for the handshake proofs
 * and one AES-256-GCM key per direction. A direction's nonce is a 4-byte
 * space tag and an 8-byte counter that the session never reuses, including
 * across reconnects, because the counters live in the session, not in the
 * connection.
 *
 * @module
 */

import { type GcmKey, openSslGcm, openSslPresent } from "./openssl_gcm.ts";
import type { SessionSecret } from "./session_secret.ts";

// node:crypto costs ~20 ms to load, and packets need it only where
// OpenSSL cannot be opened: loaded by the first packet that needs it (or
// earlier by preloadPacketCrypto), never on the way of a process that
// has OpenSSL, nor of one that makes no keys (the launcher). Keys alone
// (deriveSessionKeys) are WebCrypto's and wait for nothing.
let createCipheriv: typeof import("node:crypto").createCipheriv | undefined;
let createDecipheriv:
  | typeof import("node:crypto").createDecipheriv
  | undefined;
let loading: Promise<void> | undefined;

/** Loads node:crypto's synchronous AES-GCM (once). */
function loadNodeCipher(): Promise<void> {
  return loading ??= import("node:crypto").then((module) => {
    createCipheriv = module.createCipheriv;
    createDecipheriv = module.createDecipheriv;
  });
}

/**
 * Readies the packet cipher ahead of the first packet (a client calls it
 * while ssh runs, a host once it answered): opens the system's OpenSSL, or
 * where there is none loads node:crypto without waiting.
 */
export function preloadPacketCrypto(): Promise<void> {
  return openSslPresent() ? Promise.resolve() : loadNodeCipher();
}

/** Bytes added to every sealed payload by AES-GCM. */
export const TAG_BYTES = 16;

/** Nonce space of sequenced (resendable) data packets. */
export const NONCE_SPACE_DATA = 0;
/** Nonce space of unsequenced control packets (acks, keepalives). */
export const NONCE_SPACE_CONTROL = 1;

/**
 * An AES-256-GCM key usable three ways: through OpenSSL when the system
 * has it (`gcm`, synchronous and fastest at every size), through WebCrypto
 * (fast for bulk data, but every call is an async op) and synchronously
 * through node:crypto (microseconds for a keystroke-sized packet).
 */
export interface PacketKey {
  crypto: CryptoKey;
  raw: Uint8Array;
  /**
   * The key scheduled in OpenSSL: set on the key's first packet (so that
   * opening the library stays off the handshake's path and out of
   * processes that never send one); null where there is none.
   */
  gcm?: GcmKey | null;
}

/** The keys of one session, as seen from one side. */
export interface SessionKeys {
  /** HMAC-SHA256 key for handshake proofs. */
  auth: CryptoKey;
  /** AES-GCM key sealing what this side sends. */
  send: PacketKey;
  /** AES-GCM key opening what this side receives. */
  receive: PacketKey;
}

/**
 * Payloads up to this size are sealed and opened synchronously: an async
 * WebCrypto call costs ~0.15 ms after idle, four of which sit on every
 * keystroke's round trip; bigger payloads go to WebCrypto, which is faster
 * per byte.
 */
export const SYNC_CRYPTO_MAX_BYTES = 4096;

/** Which end of the session a key set is for. */
export type SessionRole = "client" | "server";

const encoder = new TextEncoder();

/**
 * WebCrypto wants buffers that cannot be shared; ours never are, so this
 * only tells the type checker what is already true.
 */
function source(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes as Uint8Array<ArrayBuffer>;
}

/** Derives the session keys for `role` from the shared secret. */
export async function deriveSessionKeys(
  secret: SessionSecret,
  role: SessionRole,
): Promise<SessionKeys> {
  const base = await crypto.subtle.importKey(
    "raw",
    source(secret.passkey),
    "HKDF",
    false,
    ["deriveKey", "deriveBits"],
  );
  const hkdf = (label: string): HkdfParams => ({
    name: "HKDF",
    hash: "SHA-256",
    salt: source(secret.id),
    info: encoder.encode(label),
  });
  const packetKey = async (label: string): Promise<PacketKey> => {
    const raw = new Uint8Array(
      await crypto.subtle.deriveBits(hkdf(label), base, 256),
    );
    const key = await crypto.subtle.importKey(
      "raw",
      source(raw),
      { name: "AES-GCM" },
      false,
      ["encrypt", "decrypt"],
    );
    return { crypto: key, raw };
  };
  const [auth, clientToServer, serverToClient] = await Promise.all([
    crypto.subtle.deriveKey(
      hkdf("et/1 handshake proof"),
      base,
      { name: "HMAC", hash: "SHA-256", length: 256 },
      false,
      ["sign", "verify"],
    ),
    packetKey("et/1 client to server"),
    packetKey("et/1 server to client"),
  ]);
  return role === "client"
    ? { auth, send: clientToServer, receive: serverToClient }
    : { auth, send: serverToClient, receive: clientToServer };
}

function nonce(
  space: number,
  counter: number,
  bytes: Uint8Array<ArrayBuffer> = new Uint8Array(12),
): Uint8Array<ArrayBuffer> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, 12);
  view.setUint32(0, space);
  view.setBigUint64(4, BigInt(counter));
  return bytes;
}

// OpenSSL reads the nonce during its (synchronous) call and keeps nothing:
// one array serves every packet there, instead of one made per packet.
// The asynchronous ways get a fresh one each.
const syncNonce = new Uint8Array(12);

/**
 * Seals `plaintext` under `key` with the nonce (`space`, `counter`),
 * authenticating `header` too: ciphertext followed by the 16-byte tag. The
 * caller guarantees the pair is never used twice with one key.
 */
export async function seal(
  key: PacketKey,
  space: number,
  counter: number,
  header: Uint8Array,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const iv = nonce(space, counter);
  const gcm = key.gcm === undefined ? (key.gcm = openSslGcm(key.raw)) : key.gcm;
  if (gcm) return gcm.seal(iv, header, plaintext);
  if (plaintext.length <= SYNC_CRYPTO_MAX_BYTES) {
    if (createCipheriv === undefined) await loadNodeCipher();
    const cipher = createCipheriv!("aes-256-gcm", key.raw, iv);
    cipher.setAAD(header);
    const body = cipher.update(plaintext);
    const tail = cipher.final();
    const tag = cipher.getAuthTag();
    return concatBytes([body, tail, tag]);
  }
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: source(header) },
    key.crypto,
    source(plaintext),
  );
  return new Uint8Array(sealed);
}

/**
 * {@link seal} of the concatenation of `parts`, written into `out` (the
 * parts' length plus {@link TAG_BYTES}). With OpenSSL the parts are
 * encrypted straight into `out`, no copy made; the other ways join them
 * first and copy the result in.
 */
export async function sealInto(
  key: PacketKey,
  space: number,
  counter: number,
  header: Uint8Array,
  parts: readonly Uint8Array[],
  out: Uint8Array,
): Promise<void> {
  const gcm = key.gcm === undefined ? (key.gcm = openSslGcm(key.raw)) : key.gcm;
  if (gcm) {
    gcm.sealInto(nonce(space, counter, syncNonce), header, parts, out);
    return;
  }
  const plaintext = parts.length === 1 ? parts[0] : concatBytes([...parts]);
  const sealed = await seal(key, space, counter, header, plaintext);
  if (sealed.length !== out.length) {
    throw new RangeError(`output of ${out.length} bytes for ${sealed.length}`);
  }
  out.set(sealed);
}

/** Opens what {@link seal} made; returns null when anything was tampered. */
export async function open(
  key: PacketKey,
  space: number,
  counter: number,
  header: Uint8Array,
  sealed: Uint8Array,
): Promise<Uint8Array | null> {
  if (sealed.length < TAG_BYTES) return null;
  const gcm = key.gcm === undefined ? (key.gcm = openSslGcm(key.raw)) : key.gcm;
  if (gcm) return gcm.open(nonce(space, counter, syncNonce), header, sealed);
  const iv = nonce(space, counter);
  try {
    if (sealed.length - TAG_BYTES <= SYNC_CRYPTO_MAX_BYTES) {
      if (createDecipheriv === undefined) await loadNodeCipher();
      const decipher = createDecipheriv!("aes-256-gcm", key.raw, iv);
      decipher.setAAD(header);
      decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
      const body = decipher.update(
        sealed.subarray(0, sealed.length - TAG_BYTES),
      );
      const tail = decipher.final();
      return tail.length === 0
        ? new Uint8Array(body)
        : concatBytes([body, tail]);
    }
    const plain = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv, additionalData: source(header) },
      key.crypto,
      source(sealed),
    );
    return new Uint8Array(plain);
  } catch {
    return null;
  }
}

/** HMAC-SHA256 of the concatenated parts under the handshake key. */
export async function prove(
  key: CryptoKey,
  parts: Uint8Array[],
): Promise<Uint8Array> {
  return new Uint8Array(
    await crypto.subtle.sign("HMAC", key, source(concatBytes(parts))),
  );
}

/** Checks a proof in constant time (WebCrypto's verify). */
export function verifyProof(
  key: CryptoKey,
  parts: Uint8Array[],
  proof: Uint8Array,
): Promise<boolean> {
  return crypto.subtle.verify(
    "HMAC",
    key,
    source(proof),
    source(concatBytes(parts)),
  );
}

/** Joins byte arrays into one. */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
