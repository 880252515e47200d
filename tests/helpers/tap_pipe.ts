/**
 * A pipe wrapper for attack and fault tests: records what one side wrote,
 * lets a test inject bytes into that direction, or kill the socket.
 *
 * @module
 */

import type { BytePipe } from "../../src/transport/mod.ts";

/** Wraps a real socket; everything passes through unchanged unless told. */
export class TapPipe implements BytePipe {
  #inner: Deno.Conn;
  /** Every write, in order, as sent on the socket. */
  readonly written: Uint8Array[] = [];
  #inject: Uint8Array[] = [];

  /** Wraps `inner`. */
  constructor(inner: Deno.Conn) {
    this.#inner = inner;
  }

  /** Bytes to put on the wire before the next write. */
  inject(bytes: Uint8Array) {
    this.#inject.push(bytes);
  }

  read(buffer: Uint8Array): Promise<number | null> {
    return this.#inner.read(buffer);
  }

  async write(data: Uint8Array): Promise<number> {
    while (this.#inject.length > 0) {
      const extra = this.#inject.shift()!;
      let offset = 0;
      while (offset < extra.length) {
        offset += await this.#inner.write(extra.subarray(offset));
      }
    }
    const n = await this.#inner.write(data);
    this.written.push(data.slice(0, n));
    return n;
  }

  /** Closes the socket; closing twice is fine (tests kill at random). */
  close() {
    try {
      this.#inner.close();
    } catch {
      // already closed
    }
  }
}

/** Splits recorded writes into whole frames (length prefix included). */
export function splitFrames(writes: Uint8Array[]): Uint8Array[] {
  const total = writes.reduce((n, w) => n + w.length, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const w of writes) {
    all.set(w, at);
    at += w.length;
  }
  const frames: Uint8Array[] = [];
  const view = new DataView(all.buffer);
  for (let offset = 0; offset + 4 <= total;) {
    const length = view.getUint32(offset);
    if (offset + 4 + length > total) break;
    frames.push(all.slice(offset, offset + 4 + length));
    offset += 4 + length;
  }
  return frames;
}

/** A `wrapClientPipe` that wraps every dialed socket and records it. */
export function recordTaps(taps: TapPipe[]): (conn: Deno.Conn) => TapPipe {
  return (conn) => {
    const tap = new TapPipe(conn);
    taps.push(tap);
    return tap;
  };
}
