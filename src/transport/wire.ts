/**
 * Encoders and decoders of every frame body `et` puts on the wire. Layouts
 * are documented in docs/PROTOCOL.md; all integers are big-endian.
 *
 * @module
 */

import { SESSION_ID_BYTES } from "./session_secret.ts";

/** Version of the wire protocol spoken by this build. */
export const PROTOCOL_VERSION = 1;

/** Bytes of a handshake nonce. */
export const HANDSHAKE_NONCE_BYTES = 32;
/** Bytes of a handshake proof (HMAC-SHA256). */
export const PROOF_BYTES = 32;
/** Bytes of the MAC an authenticated refusal carries (HMAC-SHA256). */
export const REFUSE_MAC_BYTES = 32;
/** Longest refusal reason on the wire, in bytes of UTF-8. */
export const MAX_REFUSE_REASON_BYTES = 200;
/** Set in a refusal's code byte when a MAC ends the frame. */
const REFUSE_MAC_FLAG = 0x80;

/** The first byte of every frame body. */
export const FrameType = {
  Hello: 0x01,
  Challenge: 0x02,
  Auth: 0x03,
  Accept: 0x04,
  Refuse: 0x05,
  Data: 0x10,
  Control: 0x11,
} as const;

/** Why a handshake was refused; each ends in its own message. */
export const RefuseCode = {
  UnknownSession: 1,
  BadProof: 2,
  VersionMismatch: 3,
  CannotResume: 4,
  Malformed: 5,
  /**
   * A newer attempt of the same client is already attached: this one is
   * abandoned, the session is not.
   */
  StaleAttempt: 6,
  /**
   * The session was taken over by a client with a new passkey; signed with
   * the old key, so only a retired client can believe it.
   */
  TakenOver: 7,
  /**
   * A relay (a jumphost) could not reach what comes after it; plain, so
   * the client retries.
   */
  NextHopUnreachable: 8,
} as const;

/** A value of {@link RefuseCode}. */
export type RefuseCode = typeof RefuseCode[keyof typeof RefuseCode];

/** A frame body that does not parse: the connection must close. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}

/** First frame of a connection, in the clear so relays can route it. */
export interface Hello {
  version: number;
  sessionId: Uint8Array;
  clientNonce: Uint8Array;
}

/** Server's answer to a hello. */
export interface Challenge {
  version: number;
  serverNonce: Uint8Array;
}

/** Proof of the passkey plus how many packets the prover has received. */
export interface Proof {
  received: number;
  proof: Uint8Array;
}

/** The client's proof: a {@link Proof} for one numbered attempt. */
export interface Auth extends Proof {
  /** The client's attempt number, strictly increasing per session. */
  attempt: number;
}

/** A handshake refusal. */
export interface Refusal {
  code: number;
  reason: string;
  /**
   * The reason exactly as on the wire (what a MAC covers); filled in by
   * the decoder, computed from `reason` by the encoder when absent.
   */
  reasonBytes?: Uint8Array;
  /** Present when the refusing end holds the session key and signed it. */
  mac?: Uint8Array;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a u64 counter (kept below 2^53 by construction). */
export function u64(value: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value));
  return out;
}

/** Reads a u64 counter at `offset`, refusing values JS cannot hold exactly. */
export function readU64(view: DataView, offset: number): number {
  const value = view.getBigUint64(offset);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new ProtocolError("counter out of range");
  }
  return Number(value);
}

function viewOf(body: Uint8Array): DataView {
  return new DataView(body.buffer, body.byteOffset, body.byteLength);
}

function expect(body: Uint8Array, type: number, length: number, name: string) {
  if (body[0] !== type || body.length !== length) {
    throw new ProtocolError(`expected ${name}, got a malformed frame`);
  }
}

/** Encodes a hello body. */
export function encodeHello(hello: Hello): Uint8Array {
  const out = new Uint8Array(2 + SESSION_ID_BYTES + HANDSHAKE_NONCE_BYTES);
  out[0] = FrameType.Hello;
  out[1] = hello.version;
  out.set(hello.sessionId, 2);
  out.set(hello.clientNonce, 2 + SESSION_ID_BYTES);
  return out;
}

/** Decodes a hello body, accepting any version so it can be refused by name. */
export function decodeHello(body: Uint8Array): Hello {
  expect(
    body,
    FrameType.Hello,
    2 + SESSION_ID_BYTES + HANDSHAKE_NONCE_BYTES,
    "hello",
  );
  return {
    version: body[1],
    sessionId: body.slice(2, 2 + SESSION_ID_BYTES),
    clientNonce: body.slice(2 + SESSION_ID_BYTES),
  };
}

/** Encodes a challenge body. */
export function encodeChallenge(challenge: Challenge): Uint8Array {
  const out = new Uint8Array(2 + HANDSHAKE_NONCE_BYTES);
  out[0] = FrameType.Challenge;
  out[1] = challenge.version;
  out.set(challenge.serverNonce, 2);
  return out;
}

/** Decodes a challenge body. */
export function decodeChallenge(body: Uint8Array): Challenge {
  expect(body, FrameType.Challenge, 2 + HANDSHAKE_NONCE_BYTES, "challenge");
  return { version: body[1], serverNonce: body.slice(2) };
}

/** Encodes an auth body: attempt, received count and the client's proof. */
export function encodeAuth(auth: Auth): Uint8Array {
  const out = new Uint8Array(1 + 4 + 8 + PROOF_BYTES);
  out[0] = FrameType.Auth;
  out.set(u32(auth.attempt), 1);
  out.set(u64(auth.received), 5);
  out.set(auth.proof, 13);
  return out;
}

/** Decodes an auth body. */
export function decodeAuth(body: Uint8Array): Auth {
  expect(body, FrameType.Auth, 1 + 4 + 8 + PROOF_BYTES, "auth");
  const view = viewOf(body);
  return {
    attempt: view.getUint32(1),
    received: readU64(view, 5),
    proof: body.slice(13),
  };
}

/** Encodes an accept body: the server's received count and proof. */
export function encodeAccept(proof: Proof): Uint8Array {
  const out = new Uint8Array(1 + 8 + PROOF_BYTES);
  out[0] = FrameType.Accept;
  out.set(u64(proof.received), 1);
  out.set(proof.proof, 9);
  return out;
}

/** Decodes an accept body. */
export function decodeAccept(body: Uint8Array): Proof {
  expect(body, FrameType.Accept, 1 + 8 + PROOF_BYTES, "accept");
  return { received: readU64(viewOf(body), 1), proof: body.slice(9) };
}

/**
 * A refusal reason as it goes on the wire: UTF-8, cut to at most
 * {@link MAX_REFUSE_REASON_BYTES} on a character boundary.
 */
export function refuseReasonBytes(reason: string): Uint8Array {
  const bytes = encoder.encode(reason);
  if (bytes.length <= MAX_REFUSE_REASON_BYTES) return bytes;
  let end = MAX_REFUSE_REASON_BYTES;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.slice(0, end);
}

/**
 * Encodes a refusal with a short human-readable reason. With a MAC the
 * code byte gets its high bit set and the MAC ends the frame.
 */
export function encodeRefuse(refusal: Refusal): Uint8Array {
  const reason = refusal.reasonBytes ?? refuseReasonBytes(refusal.reason);
  const mac = refusal.mac ?? new Uint8Array();
  if (mac.length !== 0 && mac.length !== REFUSE_MAC_BYTES) {
    throw new ProtocolError("a refusal MAC is 32 bytes");
  }
  const out = new Uint8Array(2 + reason.length + mac.length);
  out[0] = FrameType.Refuse;
  out[1] = (refusal.code & 0x7f) | (mac.length > 0 ? REFUSE_MAC_FLAG : 0);
  out.set(reason, 2);
  out.set(mac, 2 + reason.length);
  return out;
}

/**
 * Decodes a refusal body, with or without a MAC (relays and older servers
 * send none).
 */
export function decodeRefuse(body: Uint8Array): Refusal {
  if (body[0] !== FrameType.Refuse || body.length < 2) {
    throw new ProtocolError("malformed refusal");
  }
  const code = body[1] & 0x7f;
  if ((body[1] & REFUSE_MAC_FLAG) === 0) {
    const reasonBytes = body.slice(2);
    return { code, reason: decoder.decode(reasonBytes), reasonBytes };
  }
  if (body.length < 2 + REFUSE_MAC_BYTES) {
    throw new ProtocolError("malformed refusal: MAC cut short");
  }
  const reasonBytes = body.slice(2, body.length - REFUSE_MAC_BYTES);
  return {
    code,
    reason: decoder.decode(reasonBytes),
    reasonBytes,
    mac: body.slice(body.length - REFUSE_MAC_BYTES),
  };
}

/** Bytes before the sealed part of a data or control packet. */
export const PACKET_HEADER_BYTES = 9;

/** Builds the clear header (type and counter) of a sealed packet. */
export function packetHeader(
  type: typeof FrameType.Data | typeof FrameType.Control,
  counter: number,
): Uint8Array {
  const header = new Uint8Array(PACKET_HEADER_BYTES);
  writePacketHeader(header, type, counter);
  return header;
}

/**
 * Writes the clear header (type and counter) of a sealed packet into the
 * first {@link PACKET_HEADER_BYTES} of `into` (a frame being built).
 */
export function writePacketHeader(
  into: Uint8Array,
  type: typeof FrameType.Data | typeof FrameType.Control,
  counter: number,
): void {
  into[0] = type;
  new DataView(into.buffer, into.byteOffset, PACKET_HEADER_BYTES)
    .setBigUint64(1, BigInt(counter));
}

/** Reads the counter from a data or control packet's header. */
export function packetCounter(body: Uint8Array): number {
  if (body.length < PACKET_HEADER_BYTES) {
    throw new ProtocolError("packet shorter than its header");
  }
  return readU64(viewOf(body), 1);
}

/** Message kinds carried inside a sealed data packet. */
export const MessageType = {
  /** Bytes for a channel. */
  ChannelData: 1,
  /** The receiver consumed `u32` bytes of a channel: more may be sent. */
  ChannelCredit: 2,
  /** The sender will write no more on a channel. */
  ChannelEnd: 3,
  /** The session is over; the body is a UTF-8 reason. */
  SessionEnd: 4,
} as const;

/** Bytes before a message's body inside a data packet's plaintext. */
export const MESSAGE_HEADER_BYTES = 8 + 1 + 4;

/** A decoded data-packet plaintext. */
export interface Message {
  /** Packets the sender had received from us when it sealed this. */
  ack: number;
  type: number;
  channel: number;
  body: Uint8Array;
}

/** Lays out a data-packet plaintext. */
export function encodeMessage(message: Message): Uint8Array {
  const out = new Uint8Array(MESSAGE_HEADER_BYTES + message.body.length);
  out.set(encodeMessageHeader(message));
  out.set(message.body, MESSAGE_HEADER_BYTES);
  return out;
}

/**
 * The first {@link MESSAGE_HEADER_BYTES} of a data-packet plaintext (ack,
 * type, channel); the body follows it. Sealing the two as parts spares
 * the copy of the body that {@link encodeMessage} makes.
 */
export function encodeMessageHeader(
  message: Omit<Message, "body">,
): Uint8Array {
  const out = new Uint8Array(MESSAGE_HEADER_BYTES);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(message.ack));
  out[8] = message.type;
  view.setUint32(9, message.channel);
  return out;
}

/** Parses a data-packet plaintext. */
export function decodeMessage(plain: Uint8Array): Message {
  if (plain.length < MESSAGE_HEADER_BYTES) {
    throw new ProtocolError("message shorter than its header");
  }
  const view = viewOf(plain);
  return {
    ack: readU64(view, 0),
    type: plain[8],
    channel: view.getUint32(9),
    body: plain.subarray(MESSAGE_HEADER_BYTES),
  };
}

/** Encodes a u32 (channel credits). */
export function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/** Decodes a body that must be exactly one u32. */
export function readU32Body(body: Uint8Array): number {
  if (body.length !== 4) throw new ProtocolError("malformed credit");
  return viewOf(body).getUint32(0);
}

/** Decodes UTF-8 text. */
export function decodeText(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

/** Encodes UTF-8 text. */
export function encodeText(text: string): Uint8Array {
  return encoder.encode(text);
}
