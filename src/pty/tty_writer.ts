/**
 * Writing to the user's terminal without a thread hop and without ever
 * blocking the event loop.
 *
 * `Deno.stdout.write` runs each write on a blocking-pool thread (the file
 * description of a terminal is blocking, and shared with the shell that
 * started us): a keystroke's echo waits for that thread to wake, write and
 * wake the event loop again. Here the terminal is opened a second time,
 * through `/proc/self/fd/N`, which gives a file description of our own:
 * O_NONBLOCK on it changes nothing for the shell's, and a `write()` on it
 * either takes bytes at once or says EAGAIN, synchronously, in a few
 * microseconds. Linux only.
 *
 * @module
 */

import {
  closeQuietly,
  EAGAIN,
  errnoName,
  libc,
  O_CLOEXEC,
  O_NOCTTY,
  O_NONBLOCK,
  O_RDWR,
  writeNonBlocking,
} from "../platform/libc.ts";

/**
 * A terminal opened a second time, non-blocking: {@linkcode tryWrite}
 * writes what the kernel takes now and never waits.
 *
 * @example
 * ```ts
 * const out = TtyWriter.open(1);
 * const n = out?.tryWrite(new TextEncoder().encode("hi")) ?? 0;
 * // the rest (when n < 2) goes the slow way, e.g. Deno.stdout.write
 * ```
 */
export class TtyWriter {
  #fd: number;

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /**
   * Opens the terminal on descriptor `fd` again, non-blocking; null when
   * that is not possible here (not Linux, not a terminal, no /proc, or the
   * open is refused): the caller keeps its ordinary way of writing.
   */
  static open(fd: number): TtyWriter | null {
    if (Deno.build.os !== "linux") return null;
    try {
      if (!isTerminalFd(fd)) return null;
      const c = libc();
      const path = new TextEncoder().encode(`/proc/self/fd/${fd}\0`);
      // O_NOCTTY: never become our controlling terminal by this open.
      // O_RDWR because a terminal opened for writing only is just as good
      // and the flag table of this project has no O_WRONLY; nothing reads.
      const own = c.open(path, O_RDWR | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
      return own < 0 ? null : new TtyWriter(own);
    } catch {
      return null;
    }
  }

  /**
   * Writes as much of `data` as the terminal takes now: all of it, part of
   * it, or nothing (0). Never waits. 0 means "not now, write it the slow
   * way": the terminal's buffer is full (output stopped with Ctrl-S, a
   * terminal that reads slowly), or the write failed. A failure is never
   * thrown from here: errno, read back through FFI after the call, is not
   * trustworthy (the runtime may clobber it in between: a full terminal's
   * EAGAIN came back as ENOENT under load, and throwing on it ended the
   * client's output for good while its session stayed up). The slow path
   * (`Deno.stdout.write`) meets a real failure again and reports it with
   * the errno the native code saw. Throws only once closed.
   */
  tryWrite(data: Uint8Array): number {
    if (this.#fd < 0) throw new Deno.errors.BadResource("terminal closed");
    const n = writeNonBlocking(this.#fd, data);
    this.#oddFailure = n < 0 && n !== -EAGAIN ? errnoName(-n) : null;
    return Math.max(0, n);
  }

  #oddFailure: string | null = null;

  /**
   * The errno name the last {@linkcode tryWrite} read back when its write
   * failed other than for want of room, else null. For a log line only:
   * see there why it is not acted on.
   */
  get oddFailure(): string | null {
    return this.#oddFailure;
  }

  /** Closes our own description of the terminal; the shell's is untouched. */
  close(): void {
    closeQuietly(this.#fd);
    this.#fd = -1;
  }
}

function isTerminalFd(fd: number): boolean {
  if (fd === 1) return Deno.stdout.isTerminal();
  if (fd === 2) return Deno.stderr.isTerminal();
  if (fd === 0) return Deno.stdin.isTerminal();
  return false;
}
