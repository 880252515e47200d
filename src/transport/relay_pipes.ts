/**
 * Copying bytes both ways between two byte pipes, unchanged: what any relay
 * of sealed frames does (the jump relay on a jumphost; an `et relay` over
 * ssh could too). It reads nothing into the bytes and holds no key; it
 * only counts them.
 *
 * @module
 */

import { type BytePipe, closeQuietly, writeAll } from "./pipe.ts";
import { FrameType, HANDSHAKE_NONCE_BYTES } from "./wire.ts";

/** Read size of each direction: one large frame at a time or so. */
const CHUNK_BYTES = 64 * 1024;

/** Byte counts of a relayed pair, updated live. */
export interface RelayCounters {
  /** Bytes copied from `a` to `b`. */
  aToB: number;
  /** Bytes copied from `b` to `a`. */
  bToA: number;
}

/** Options of {@link relayPipes}. */
export interface RelayPipesOptions {
  /**
   * Called with each chunk read from `a` (`fromA`) or `b`, before it is
   * written on (the chunk is valid during the call only), e.g. to watch a
   * handshake go by.
   */
  onChunk?: (fromA: boolean, chunk: Uint8Array) => void;
  /** Counters to update (a caller's, to read while the pair runs). */
  counters?: RelayCounters;
}

/**
 * Copies `a` to `b` and `b` to `a` until either side ends or fails, then
 * closes both (the protocol never half-closes: a pipe that ends is over).
 * Each direction reads only when its last chunk was written, so a slow
 * side bounds what is held to one chunk per direction. Resolves with the
 * counts once both copies stopped; never throws.
 *
 * @example
 * ```ts
 * const counts = await relayPipes(clientConn, await Deno.connect({ port }));
 * ```
 */
export async function relayPipes(
  a: BytePipe,
  b: BytePipe,
  options: RelayPipesOptions = {},
): Promise<RelayCounters> {
  const counters = options.counters ?? { aToB: 0, bToA: 0 };
  const stop = () => {
    closeQuietly(a);
    closeQuietly(b);
  };
  const copy = async (from: BytePipe, to: BytePipe, fromA: boolean) => {
    const buffer = new Uint8Array(CHUNK_BYTES);
    try {
      for (let n; (n = await from.read(buffer)) !== null;) {
        if (n === 0) continue;
        const chunk = buffer.subarray(0, n);
        options.onChunk?.(fromA, chunk);
        await writeAll(to, chunk);
        if (fromA) counters.aToB += n;
        else counters.bToA += n;
      }
    } catch {
      // a reset or a closed pipe: the pair is over either way.
    } finally {
      stop();
    }
  };
  await Promise.all([copy(a, b, true), copy(b, a, false)]);
  return counters;
}

/** Bytes of a CHALLENGE frame: length prefix, type, version, nonce. */
const CHALLENGE_FRAME_BYTES = 4 + 2 + HANDSHAKE_NONCE_BYTES;
/** Offset of the type byte of the frame after the CHALLENGE. */
const SECOND_TYPE_AT = CHALLENGE_FRAME_BYTES + 4;

/**
 * Watches what the server end of a relayed connection sends and tells,
 * without any key, when it accepted the client: the handshake is in clear
 * frames (docs/PROTOCOL.md section 4), and a server sends ACCEPT, right
 * after its CHALLENGE, only to a client that proved it holds the passkey.
 * A relay uses it to tell its clients' connections from anyone's (the
 * session id it routes by is public) when it must drop some.
 *
 * @example
 * ```ts
 * const watch = new HandshakeWatch();
 * relayPipes(client, server, {
 *   onChunk: (fromClient, chunk) => fromClient || watch.push(chunk),
 * });
 * ```
 */
export class HandshakeWatch {
  #head = new Uint8Array(SECOND_TYPE_AT + 1);
  #filled = 0;
  #verdict: boolean | null = null;

  /**
   * True once the server accepted, false once it is clear it did not (a
   * REFUSE, garbage), null while the first two frames are not in yet.
   */
  get accepted(): boolean | null {
    return this.#verdict;
  }

  /** Feeds bytes the server sent, in order. */
  push(chunk: Uint8Array): void {
    if (this.#verdict !== null) return;
    const take = Math.min(chunk.length, this.#head.length - this.#filled);
    this.#head.set(chunk.subarray(0, take), this.#filled);
    this.#filled += take;
    const head = this.#head;
    const view = new DataView(head.buffer);
    if (this.#filled >= 5) {
      const challenge = view.getUint32(0) === CHALLENGE_FRAME_BYTES - 4 &&
        head[4] === FrameType.Challenge;
      if (!challenge) this.#verdict = false;
    }
    if (this.#verdict === null && this.#filled === head.length) {
      this.#verdict = head[SECOND_TYPE_AT] === FrameType.Accept;
    }
  }
}
