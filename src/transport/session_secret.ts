/**
 * The two secrets that name and protect a session: a random id (sent in the
 * clear so relays can route) and a random passkey (never on the wire).
 *
 * @module
 */

/** Bytes in a session id. */
export const SESSION_ID_BYTES = 16;
/** Bytes in a session passkey. */
export const PASSKEY_BYTES = 32;

/** A session's id and passkey, shared by the client and its terminal. */
export interface SessionSecret {
  /** Public routing name of the session. */
  id: Uint8Array;
  /** Shared secret that every key of the session is derived from. */
  passkey: Uint8Array;
}

/** Makes a fresh session id and passkey from the system CSPRNG. */
export function generateSessionSecret(): SessionSecret {
  return {
    id: crypto.getRandomValues(new Uint8Array(SESSION_ID_BYTES)),
    passkey: crypto.getRandomValues(new Uint8Array(PASSKEY_BYTES)),
  };
}

/** Lowercase hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** Parses lowercase or uppercase hex of exactly `length` bytes, else throws. */
export function fromHex(text: string, length: number): Uint8Array {
  if (text.length !== length * 2 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new Error(`expected ${length * 2} hex digits`);
  }
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    out[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  }
  return out;
}

/**
 * Encodes a secret as one line `id-hex/passkey-hex` for a private channel
 * (ssh's stdin). Never put this string on a command line.
 */
export function encodeSessionSecret(secret: SessionSecret): string {
  return `${toHex(secret.id)}/${toHex(secret.passkey)}`;
}

/** Parses what {@link encodeSessionSecret} produced; throws on anything else. */
export function decodeSessionSecret(text: string): SessionSecret {
  const [id, passkey, ...rest] = text.trim().split("/");
  if (id === undefined || passkey === undefined || rest.length > 0) {
    throw new Error("malformed session secret");
  }
  return {
    id: fromHex(id, SESSION_ID_BYTES),
    passkey: fromHex(passkey, PASSKEY_BYTES),
  };
}
