/**
 * Sealed packets (DATA and CONTROL) as they sit on the wire: a clear header
 * (type, counter) authenticated with the sealed body, inside a length-prefixed
 * frame. The nonce space follows from the type, so the two kinds can never
 * share a nonce under one key.
 *
 * @module
 */

import {
  NONCE_SPACE_CONTROL,
  NONCE_SPACE_DATA,
  open,
  type PacketKey,
  sealInto,
  TAG_BYTES,
} from "./crypto.ts";
import { FRAME_HEADER_BYTES } from "./frame.ts";
import {
  FrameType,
  PACKET_HEADER_BYTES,
  packetCounter,
  writePacketHeader,
} from "./wire.ts";

/** The two kinds of sealed packet. */
export type PacketType = typeof FrameType.Data | typeof FrameType.Control;

function nonceSpace(type: PacketType): number {
  return type === FrameType.Data ? NONCE_SPACE_DATA : NONCE_SPACE_CONTROL;
}

/**
 * Seals `plaintext` (or the concatenation of its parts) as packet
 * `counter`; resolves with the whole frame. The frame is made once and the
 * ciphertext written into it in place (see `sealInto`): a 64 KiB chunk of
 * bulk output is not copied on its way in.
 */
export async function sealPacket(
  key: PacketKey,
  type: PacketType,
  counter: number,
  plaintext: Uint8Array | readonly Uint8Array[],
): Promise<Uint8Array> {
  const parts = plaintext instanceof Uint8Array ? [plaintext] : plaintext;
  let size = 0;
  for (const part of parts) size += part.length;
  const bodyLength = PACKET_HEADER_BYTES + size + TAG_BYTES;
  const frame = new Uint8Array(FRAME_HEADER_BYTES + bodyLength);
  new DataView(frame.buffer).setUint32(0, bodyLength);
  const header = frame.subarray(
    FRAME_HEADER_BYTES,
    FRAME_HEADER_BYTES + PACKET_HEADER_BYTES,
  );
  writePacketHeader(header, type, counter);
  await sealInto(
    key,
    nonceSpace(type),
    counter,
    header,
    parts,
    frame.subarray(FRAME_HEADER_BYTES + PACKET_HEADER_BYTES),
  );
  return frame;
}

/**
 * Opens a packet frame body (as FrameReader returns it); resolves with the
 * plaintext, or null when anything was tampered.
 */
export function openPacket(
  key: PacketKey,
  type: PacketType,
  body: Uint8Array,
): Promise<Uint8Array | null> {
  return open(
    key,
    nonceSpace(type),
    packetCounter(body),
    body.subarray(0, PACKET_HEADER_BYTES),
    body.subarray(PACKET_HEADER_BYTES),
  );
}
