/**
 * Length-prefixed framing: every frame on the wire is a 4-byte big-endian
 * body length followed by the body. The body's first byte is its type.
 *
 * @module
 */

import type { BytePipe } from "./pipe.ts";

/** Largest frame body accepted or produced; anything bigger is refused. */
export const MAX_FRAME_BYTES = 128 * 1024;

/** Bytes of the length prefix. */
export const FRAME_HEADER_BYTES = 4;

const INITIAL_BUFFER_BYTES = 16 * 1024;
const MAX_BUFFER_BYTES = FRAME_HEADER_BYTES + MAX_FRAME_BYTES + 64 * 1024;

/** A frame that cannot be valid: the connection carrying it must close. */
export class FrameError extends Error {
  override name = "FrameError";
}

/** Prefixes `body` with its length, ready to write to a pipe. */
export function encodeFrame(body: Uint8Array): Uint8Array {
  if (body.length === 0 || body.length > MAX_FRAME_BYTES) {
    throw new FrameError(`frame body of ${body.length} bytes is out of range`);
  }
  const out = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  new DataView(out.buffer).setUint32(0, body.length);
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Reads whole frames from a pipe, buffering partial ones. Bytes read past a
 * frame stay buffered for the next call, so a reader can be handed from the
 * handshake to the data loop without losing anything.
 *
 * @example
 * ```ts
 * const frames = new FrameReader(conn);
 * for (let body; (body = await frames.next()) !== null;) handle(body);
 * ```
 */
export class FrameReader {
  #pipe: BytePipe;
  // Starts small (an idle connection costs little) and grows, up to one
  // maximal frame plus a read's worth, only when traffic needs it.
  #buffer = new Uint8Array(INITIAL_BUFFER_BYTES);
  #view = new DataView(this.#buffer.buffer);
  #start = 0;
  #end = 0;

  /** Wraps `pipe`; the reader owns reading from it from now on. */
  constructor(pipe: BytePipe) {
    this.#pipe = pipe;
  }

  /**
   * Resolves with the next frame body, or null when the pipe ends cleanly
   * between frames. Throws FrameError on an impossible length or a stream
   * that ends inside a frame. The body is a view into the reader's buffer,
   * valid until the next call: copy what must outlive it. (Not copying
   * saves an allocation per frame on the bulk path.)
   */
  async next(): Promise<Uint8Array | null> {
    while (true) {
      const available = this.#end - this.#start;
      if (available >= FRAME_HEADER_BYTES) {
        const length = this.#view.getUint32(this.#start);
        if (length === 0 || length > MAX_FRAME_BYTES) {
          throw new FrameError(
            `frame length ${length} outside 1..${MAX_FRAME_BYTES}`,
          );
        }
        if (available >= FRAME_HEADER_BYTES + length) {
          const from = this.#start + FRAME_HEADER_BYTES;
          this.#start = from + length;
          return this.#buffer.subarray(from, from + length);
        }
        this.#reserve(FRAME_HEADER_BYTES + length);
      }
      if (this.#end === this.#buffer.length) {
        if (this.#start > 0) this.#compact();
        else this.#grow(this.#buffer.length * 2);
      }
      const n = await this.#pipe.read(this.#buffer.subarray(this.#end));
      if (n === null) {
        if (this.#end > this.#start) {
          throw new FrameError("stream ended inside a frame");
        }
        return null;
      }
      this.#end += n;
    }
  }

  /**
   * Returns (and forgets) bytes read from the pipe but not yet framed, so a
   * relay that parsed the first frame can pass the rest on untouched.
   */
  takeBuffered(): Uint8Array {
    const rest = this.#buffer.slice(this.#start, this.#end);
    this.#start = this.#end = 0;
    return rest;
  }

  /** Makes sure a frame of `size` bytes fits from the read position. */
  #reserve(size: number) {
    if (this.#start + size <= this.#buffer.length) return;
    if (size <= this.#buffer.length) this.#compact();
    else this.#grow(size);
  }

  /** Replaces the buffer by a larger one holding the unread bytes. */
  #grow(size: number) {
    const capacity = Math.min(
      Math.max(size, this.#buffer.length * 2),
      MAX_BUFFER_BYTES,
    );
    if (capacity <= this.#buffer.length) {
      this.#compact();
      return;
    }
    const next = new Uint8Array(capacity);
    next.set(this.#buffer.subarray(this.#start, this.#end));
    this.#end -= this.#start;
    this.#start = 0;
    this.#buffer = next;
    this.#view = new DataView(next.buffer);
  }

  /** Moves unread bytes to the front so a whole frame always fits. */
  #compact() {
    this.#buffer.copyWithin(0, this.#start, this.#end);
    this.#end -= this.#start;
    this.#start = 0;
  }
}
