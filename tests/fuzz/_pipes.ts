/**
 * In-memory byte pipes for the fuzzer: a scripted pipe that hands out fixed
 * chunks and then ends (or stalls until closed), and a connected pair for
 * running both sides of a handshake without sockets.
 *
 * @module
 */

import type { BytePipe } from "../../src/transport/mod.ts";

/** Thrown by writes on a closed pipe, like a socket's BrokenPipe. */
export class PipeClosedError extends Error {
  override name = "PipeClosedError";
}

/**
 * Reads come from `chunks` in order (a chunk larger than the caller's
 * buffer is handed out over several reads); then the pipe ends, or, with
 * `stall`, waits until closed. Writes are recorded.
 */
export class ScriptedPipe implements BytePipe {
  #chunks: Uint8Array[];
  #index = 0;
  #offset = 0;
  #stall: boolean;
  #closed = false;
  #wake: (() => void) | null = null;
  /** Bytes handed to the reader so far. */
  delivered = 0;
  /** Largest backing buffer a reader passed to read() (its allocation). */
  largestBuffer = 0;
  /** Largest read request (free space offered). */
  largestRead = 0;
  /** Every write, copied. */
  readonly written: Uint8Array[] = [];

  /** Serves `chunks`, then ends (or stalls until closed). */
  constructor(chunks: Uint8Array[], options: { stall?: boolean } = {}) {
    this.#chunks = chunks.filter((chunk) => chunk.length > 0);
    this.#stall = options.stall ?? false;
  }

  /** True once close() was called. */
  get closed(): boolean {
    return this.#closed;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    this.largestBuffer = Math.max(this.largestBuffer, buffer.buffer.byteLength);
    this.largestRead = Math.max(this.largestRead, buffer.length);
    if (this.#closed) return Promise.resolve(null);
    if (this.#index >= this.#chunks.length) {
      if (!this.#stall) return Promise.resolve(null);
      return new Promise((resolve) => {
        this.#wake = () => resolve(null);
      });
    }
    if (buffer.length === 0) return Promise.resolve(0);
    const chunk = this.#chunks[this.#index];
    const n = Math.min(buffer.length, chunk.length - this.#offset);
    buffer.set(chunk.subarray(this.#offset, this.#offset + n));
    this.#offset += n;
    if (this.#offset === chunk.length) {
      this.#index++;
      this.#offset = 0;
    }
    this.delivered += n;
    return Promise.resolve(n);
  }

  write(data: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new PipeClosedError("closed"));
    this.written.push(data.slice());
    return Promise.resolve(data.length);
  }

  close() {
    this.#closed = true;
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}

/** One end of a {@link pipePair}. */
export class MemoryPipe implements BytePipe {
  #inbox: Uint8Array[] = [];
  #waiting: (() => void) | null = null;
  #closed = false;
  #writeEnded = false;
  peer!: MemoryPipe;
  /** Everything this end wrote, in order (for recording a handshake). */
  readonly written: Uint8Array[] = [];

  /** True once this end was closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Bytes waiting to be read at this end. */
  get queued(): number {
    let total = 0;
    for (const chunk of this.#inbox) total += chunk.length;
    return total;
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (true) {
      if (this.#closed) return null;
      if (this.#inbox.length > 0) {
        const chunk = this.#inbox[0];
        const n = Math.min(buffer.length, chunk.length);
        buffer.set(chunk.subarray(0, n));
        if (n === chunk.length) this.#inbox.shift();
        else this.#inbox[0] = chunk.subarray(n);
        return n;
      }
      if (this.peer.#closed || this.peer.#writeEnded) return null;
      await new Promise<void>((resolve) => this.#waiting = resolve);
    }
  }

  write(data: Uint8Array): Promise<number> {
    if (this.#closed || this.peer.#closed || this.#writeEnded) {
      return Promise.reject(new PipeClosedError("pipe closed"));
    }
    const copy = data.slice();
    this.written.push(copy);
    this.peer.#inbox.push(copy);
    this.peer.#wakeReader();
    return Promise.resolve(data.length);
  }

  /** Ends this direction (a FIN): the peer reads what is queued, then null. */
  shutdown() {
    this.#writeEnded = true;
    this.peer.#wakeReader();
  }

  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#inbox = [];
    this.#wakeReader();
    this.peer.#wakeReader();
  }

  #wakeReader() {
    const wake = this.#waiting;
    this.#waiting = null;
    wake?.();
  }
}

/** Two connected in-memory pipe ends: what one writes, the other reads. */
export function pipePair(): [MemoryPipe, MemoryPipe] {
  const a = new MemoryPipe();
  const b = new MemoryPipe();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
