/**
 * A connected socket we hold only as a descriptor (one passed to us with
 * SCM_RIGHTS) turned into a byte pipe: `read`, `write`, `close`, the shape
 * the transport runs on. Reads and writes go through `node:net`, whose
 * sockets take a descriptor (`new net.Socket({ fd })`) and run on Deno's
 * own event loop: measured on loopback as fast as a `Deno.Conn` (see
 * docs/ARCHITECTURE.md), where FFI reads and writes waiting in `poll` on a
 * worker thread cost a thread hop per wait.
 *
 * @module
 */

import net from "node:net";

/**
 * Bytes queued from the socket before it is paused until the reader
 * catches up: a few reads' worth, so a slow consumer bounds memory.
 */
const HIGH_WATER_BYTES = 256 * 1024;

/**
 * A byte pipe over socket descriptor `fd`, which it owns from now on:
 * `close()` closes it. Bytes of `prefix` (read from the socket by someone
 * else before it was passed on) come first.
 *
 * @example
 * ```ts
 * const pipe = new SocketPipe(fd, helloFrame);
 * const n = await pipe.read(new Uint8Array(4096)); // the hello, then the rest
 * ```
 */
export class SocketPipe {
  #socket: net.Socket;
  #prefix: Uint8Array;
  #chunks: Uint8Array[] = [];
  #queued = 0;
  #paused = false;
  #ended = false;
  #closed = false;
  #error: Error | null = null;
  #wake: (() => void) | null = null;

  /** Wraps `fd`; `prefix` is delivered before anything read from it. */
  constructor(fd: number, prefix: Uint8Array = new Uint8Array(0)) {
    this.#prefix = prefix;
    this.#socket = new net.Socket({ fd, readable: true, writable: true });
    this.#socket.setNoDelay(true);
    this.#socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#queued += chunk.length;
      if (this.#queued >= HIGH_WATER_BYTES && !this.#paused) {
        this.#paused = true;
        this.#socket.pause();
      }
      this.#notify();
    });
    this.#socket.on("end", () => {
      this.#ended = true;
      this.#notify();
    });
    this.#socket.on("error", (error: Error) => {
      this.#error ??= error;
      this.#notify();
    });
    this.#socket.on("close", () => {
      this.#ended = true;
      this.#notify();
    });
  }

  /** Reads into `buffer`; resolves with the count, or null at end of stream. */
  async read(buffer: Uint8Array): Promise<number | null> {
    if (this.#prefix.length > 0) {
      const n = Math.min(buffer.length, this.#prefix.length);
      buffer.set(this.#prefix.subarray(0, n));
      this.#prefix = this.#prefix.subarray(n);
      return n;
    }
    while (this.#chunks.length === 0) {
      if (this.#closed) return null;
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    let n = 0;
    while (n < buffer.length && this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      const take = Math.min(chunk.length, buffer.length - n);
      buffer.set(chunk.subarray(0, take), n);
      n += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    this.#queued -= n;
    if (this.#paused && this.#queued < HIGH_WATER_BYTES / 2) {
      this.#paused = false;
      this.#socket.resume();
    }
    return n;
  }

  /** Writes all of `data`; resolves with its length once the kernel has it. */
  write(data: Uint8Array): Promise<number> {
    if (this.#closed) {
      return Promise.reject(new Deno.errors.BadResource("socket is closed"));
    }
    return new Promise((resolve, reject) => {
      this.#socket.write(
        data,
        (error) => error ? reject(error) : resolve(data.length),
      );
    });
  }

  /** Closes the socket (both directions); safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
    this.#notify();
  }

  #notify() {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}
