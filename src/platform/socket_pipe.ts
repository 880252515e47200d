/**
 * A connected socket we hold only as a descriptor (one passed to us with
 * SCM_RIGHTS) turned into a byte pipe: `read`, `write`, `close`, the shape
 * the transport runs on. Reads and writes go through `node:net`, whose
 * sockets take a descriptor (`new net.Socket({ fd })`) and run on Deno's
 * own event loop: measured on loopback as fast as a `Deno.Conn` (see
 * docs/ARCHITECTURE.md), where FFI reads and writes waiting in `poll` on a
 * worker thread cost a thread hop per wait.
 *
 * A write first goes straight to the descriptor with `write()` (it is
 * non-blocking: EAGAIN, never a wait) when node:net has nothing queued:
 * node's stream machinery costs ~0.1 ms per write the first time after the
 * process slept (a keystroke's echo) and a few times a syscall's CPU in
 * bulk. What the kernel does not take at once goes through node:net, which
 * waits for room on the event loop; later writes queue behind it, so bytes
 * never overtake one another.
 *
 * @module
 */

import net from "node:net";
import {
  F_GETFL,
  F_SETFL,
  libc,
  O_NONBLOCK,
  writeNonBlocking,
} from "./libc.ts";

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
  #fd: number;
  // Writes handed to node:net whose callback has not come yet.
  #nodeWrites = 0;
  // True once the descriptor is known non-blocking: direct writes allowed.
  #direct: boolean;

  /** Wraps `fd`; `prefix` is delivered before anything read from it. */
  constructor(fd: number, prefix: Uint8Array = new Uint8Array(0)) {
    this.#prefix = prefix;
    this.#fd = fd;
    this.#direct = setNonBlocking(fd);
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
    let rest = data;
    // Never once node:net is tearing the socket down: it closes the
    // descriptor, and its number may then belong to another file.
    if (
      this.#direct && this.#nodeWrites === 0 &&
      this.#socket.writableLength === 0 && !this.#socket.destroyed &&
      this.#error === null && !this.#ended
    ) {
      const n = this.#writeNow(data);
      if (n === data.length) return Promise.resolve(n);
      rest = data.subarray(n);
    }
    this.#nodeWrites++;
    return new Promise((resolve, reject) => {
      this.#socket.write(rest, (error) => {
        this.#nodeWrites--;
        error ? reject(error) : resolve(data.length);
      });
    });
  }

  /** `write()` now, non-blocking: the bytes the kernel took (0: none). */
  #writeNow(data: Uint8Array): number {
    // A failure other than EAGAIN (EPIPE, ECONNRESET): node:net meets it
    // on the same bytes and reports it its own way. (Deno, as any Rust
    // program, ignores SIGPIPE: a closed peer is only an error.)
    return Math.max(0, writeNonBlocking(this.#fd, data));
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

/**
 * Makes `fd` non-blocking (node:net's own I/O wants it so too); true when
 * it is, so that a `write()` on it can never wait. False where the flag
 * cannot be read or set: writes then all go through node:net.
 */
function setNonBlocking(fd: number): boolean {
  try {
    const c = libc();
    const flags = c.fcntl(fd, F_GETFL, 0);
    if (flags < 0) return false;
    if ((flags & O_NONBLOCK) !== 0) return true;
    return c.fcntl(fd, F_SETFL, flags | O_NONBLOCK) === 0;
  } catch {
    return false; // no fcntl binding on this system
  }
}
