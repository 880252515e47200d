/**
 * Writing to this process's stdout or stderr exactly once per byte, without
 * ever blocking the event loop.
 *
 * `Deno.stdout.write` is not safe for that: it goes through Rust's buffered
 * stdout, which may take bytes into its buffer and then throw when the
 * flush finds no room (a stdout whose file description another program made
 * non-blocking says EAGAIN when full). The caller cannot know those bytes
 * were taken, writes them again, and the buffer writes them too: output
 * doubled (2 MiB came out as 2.1 MiB). It also hops to a pool thread for
 * every write, even a keystroke's echo.
 *
 * So on Linux the descriptor is written with `write(2)` directly, never
 * through a buffer, and never on a description whose blocking mode someone
 * else controls:
 * - a terminal or a pipe is opened a second time through
 *   `/proc/self/fd/N`, which gives a file description of our own: its
 *   O_NONBLOCK is ours and changes nothing for the shell that shares the
 *   original one;
 * - a socket is written with `send(MSG_DONTWAIT)`, non-blocking per call;
 * - anything else (a regular file, /dev/null: writes there never wait for
 *   a reader), and every descriptor on other systems, is written the
 *   runtime's way, whose wait is on a pool thread.
 *
 * A write that finds no room waits for it in `poll` on a worker thread.
 *
 * @module
 */

import {
  closeQuietly,
  EAGAIN,
  EPIPE,
  errnoError,
  libc,
  O_CLOEXEC,
  O_NOCTTY,
  O_NONBLOCK,
  O_WRONLY,
  POLLOUT,
  setPollFd,
  timespec,
  writeNonBlocking,
} from "./libc.ts";
import { sendSome, SocketError, WOULD_BLOCK } from "./socket.ts";

/** The standard descriptors written here: stdout and stderr. */
export type StdOutputFd = 1 | 2;

/**
 * Longest one wait for room lasts in `poll` before the write is tried
 * again. Its answer is not trusted either way (the worker thread's errno
 * is out of reach); the next write tells the real state, so a lost wakeup
 * costs this much latency, not a stuck write.
 */
const ROOM_POLL_MS = 100;

/**
 * How long a write that found no room first waits for it on the event
 * loop's own thread (in `ppoll`, asleep). A reader keeping up (a terminal
 * drawing a bulk stream) frees room within this; caught here, the write
 * goes on without the worker thread's wake-up and the event loop's
 * (~0.1-0.3 ms each: with one per partial write, the client's CPU per
 * 100 MB doubled). The price: the rest of the client waits this long at
 * most, once per write that found the output full.
 */
const ROOM_BRIEF_WAIT_MS = 1;

const ROOM_BRIEF_WAIT_TIMESPEC = timespec(ROOM_BRIEF_WAIT_MS);

/** Longest pause between two tries of a runtime write that found no room. */
const NO_ROOM_PAUSE_MAX_MS = 50;

/**
 * stdout or stderr, written without a buffer in between and without
 * blocking the event loop.
 *
 * @example
 * ```ts
 * const out = StdOutput.open(1);
 * const bytes = new TextEncoder().encode("hi\n");
 * for (let at = 0; at < bytes.length;) at += await out.write(bytes.subarray(at));
 * ```
 */
export class StdOutput {
  #fd: number;
  #way: "own" | "socket" | "runtime";
  #pollFds = new Uint8Array(8);
  #pollView = new DataView(this.#pollFds.buffer);

  private constructor(fd: number, way: "own" | "socket" | "runtime") {
    this.#fd = fd;
    this.#way = way;
  }

  /**
   * The best way to write descriptor `fd` here (see the module's text).
   * Never fails: when nothing better can be had, the runtime's way.
   */
  static open(fd: StdOutputFd): StdOutput {
    if (Deno.build.os !== "linux") return new StdOutput(fd, "runtime");
    try {
      const target = Deno.statSync(`/proc/self/fd/${fd}`);
      if (target.isSocket) return new StdOutput(fd, "socket");
      if (!target.isFifo && !isTerminal(fd)) {
        return new StdOutput(fd, "runtime");
      }
      // O_WRONLY: a pipe opened for reading too would make us one of its
      // readers, and a reader that left would never be noticed.
      // O_NOCTTY: never become our controlling terminal by this open.
      const path = new TextEncoder().encode(`/proc/self/fd/${fd}\0`);
      const own = libc().open(
        path,
        O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
      );
      if (own >= 0) return new StdOutput(own, "own");
    } catch {
      // fd closed (stat fails), no /proc: the runtime's way reports it
    }
    return new StdOutput(fd, "runtime");
  }

  /**
   * How this output is written: "own" (a description of our own),
   * "socket" or "runtime". For logs and tests.
   */
  get way(): string {
    return this.#way;
  }

  /**
   * Writes as much of `data` as the output takes now, synchronously: all
   * of it, part of it, or nothing (0: no room now, or this output has no
   * synchronous way; {@linkcode write} waits). Throws on a real failure:
   * `Deno.errors.BrokenPipe` when the reader of a pipe or socket left
   * (EPIPE), another error otherwise (EIO: a hung-up terminal). An errno
   * is believed only once a second try repeats it (`callDoubtingErrno`).
   */
  tryWrite(data: Uint8Array): number {
    if (this.#fd < 0) throw new Deno.errors.BadResource("output closed");
    if (this.#way === "runtime") return 0;
    if (this.#way === "socket") {
      try {
        const n = sendSome(this.#fd, data);
        return n === WOULD_BLOCK ? 0 : n;
      } catch (error) {
        if (error instanceof SocketError && error.code === EPIPE) {
          throw new Deno.errors.BrokenPipe(error.message);
        }
        throw error;
      }
    }
    const n = writeNonBlocking(this.#fd, data);
    if (n >= 0) return n;
    if (n === -EAGAIN) return 0;
    if (n === -EPIPE) {
      throw new Deno.errors.BrokenPipe(errnoError("write", EPIPE).message);
    }
    throw errnoError("write", -n);
  }

  /**
   * Writes `data`, or the part of it the output takes before it must wait
   * long: resolves with the count (at least one byte when `data` is not
   * empty and no stop came); callers loop. A slow reader, or a terminal
   * stopped with Ctrl-S, is no failure: the write waits for room as long
   * as it takes. While the reader keeps up, the pieces go out one after
   * another within this call, each brief wait for room on the event
   * loop's own thread (see {@linkcode ROOM_BRIEF_WAIT_MS}), as a blocking
   * write would loop in the kernel. Rejects as {@linkcode tryWrite}
   * throws. Once `signal` is aborted it writes nothing more, even while
   * waiting for room, and resolves with what it wrote (0 if nothing), so
   * a caller that stops knows exactly what was written; the runtime's way
   * cannot be called back and ignores it.
   */
  async write(data: Uint8Array, signal?: AbortSignal): Promise<number> {
    if (data.length === 0) return 0;
    if (this.#way === "runtime") return await this.#runtimeWrite(data);
    let written = 0;
    // One brief wait per piece: room announced but not taken (a race, an
    // odd errno) must not spin on the event loop's thread.
    let brief = true;
    while (written < data.length && !signal?.aborted) {
      const rest = data.subarray(written);
      const n = this.tryWrite(rest);
      if (n > 0) {
        written += n;
        brief = true;
        // Took it all: done. Took part: the output is full now, so the
        // next write would only say EAGAIN; wait for room at once.
        if (n === rest.length) continue;
      }
      if (brief && this.#roomSoon()) {
        brief = false;
        continue;
      }
      // A long wait ahead: what is written so far is the caller's to count.
      if (written > 0) break;
      await this.#waitForRoom(signal);
    }
    return written;
  }

  /** Closes our own description, if any; the shared one is untouched. */
  close(): void {
    if (this.#way === "own") closeQuietly(this.#fd);
    this.#fd = -1;
  }

  /** Sets the poll array up to wait for room on our descriptor. */
  #pollForRoom(): Uint8Array {
    setPollFd(this.#pollView, 0, this.#fd, POLLOUT);
    return this.#pollFds;
  }

  /**
   * Waits up to {@linkcode ROOM_BRIEF_WAIT_MS} on this thread; true when
   * the output said it has room (or an error, which the next write
   * reports).
   */
  #roomSoon(): boolean {
    const fds = this.#pollForRoom();
    return libc().ppoll(fds, 1n, ROOM_BRIEF_WAIT_TIMESPEC, null) > 0;
  }

  async #waitForRoom(signal?: AbortSignal): Promise<void> {
    const polled = libc().poll(this.#pollForRoom(), 1n, ROOM_POLL_MS);
    if (signal === undefined) return void await polled;
    // An abort need not wait for the poll: nothing is written after it,
    // and the poll ends by itself within ROOM_POLL_MS.
    let onAbort = () => {};
    const aborted = new Promise<void>((resolve) => onAbort = resolve);
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await Promise.race([polled, aborted]);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }

  /**
   * The runtime's write, waiting out "no room now" (WouldBlock) with a
   * pause that doubles from 1 ms to 50 ms. Only for outputs where that
   * cannot double bytes: a regular file never says EAGAIN, and on other
   * systems there is no better way.
   */
  async #runtimeWrite(data: Uint8Array): Promise<number> {
    const stream = this.#fd === 2 ? Deno.stderr : Deno.stdout;
    for (let pause = 1;; pause = Math.min(pause * 2, NO_ROOM_PAUSE_MAX_MS)) {
      try {
        return await stream.write(data);
      } catch (error) {
        if (error instanceof Deno.errors.Interrupted) continue;
        if (!(error instanceof Deno.errors.WouldBlock)) throw error;
      }
      // Not deadline.ts's sleep: platform/ imports nothing of ours.
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }
}

function isTerminal(fd: number): boolean {
  return fd === 2 ? Deno.stderr.isTerminal() : Deno.stdout.isTerminal();
}
