/**
 * Runs a program on a real pseudo-terminal (our `Pty`) for tests that need
 * its stdin to BE a terminal, and keeps every byte it writes to that
 * terminal exactly as the master reads it: nothing is mocked.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { Pty, type PtyExitStatus } from "../../src/pty/mod.ts";
import { getTermios } from "../../src/pty/termios.ts";

/** Options of {@linkcode PtyProcess.spawn}. */
export interface PtyProcessOptions {
  /**
   * Terminal width in columns.
   * @default {80}
   */
  cols?: number;
  /**
   * Terminal height in rows.
   * @default {24}
   */
  rows?: number;
  /**
   * The program's whole environment.
   * @default {our own environment}
   */
  env?: Record<string, string>;
  /**
   * Working directory.
   * @default {our own working directory}
   */
  cwd?: string;
}

/** Where a pattern was found: byte offsets, `end` exclusive. */
export interface PtyMatch {
  start: number;
  end: number;
}

const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();

/**
 * Fds of this process that are open on a pty master. `Pty` keeps its
 * master private; the fd it opened is the one that appears during
 * `Pty.spawn` (which is synchronous, so no other pty can appear meanwhile).
 */
function masterFds(): Set<number> {
  const fds = new Set<number>();
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      if (/\/ptmx$/.test(Deno.readLinkSync(`/proc/self/fd/${entry.name}`))) {
        fds.add(Number(entry.name));
      }
    } catch {
      // closed meanwhile (e.g. the fd of the directory listing itself)
    }
  }
  return fds;
}

/**
 * A program running on its own pty, with everything it prints recorded.
 *
 * @example
 * ```ts
 * const proc = PtyProcess.spawn(["/bin/sh", "-c", "read x; echo got-$x"]);
 * await proc.type("hi\r");
 * await proc.waitFor("got-hi");
 * console.log(await proc.wait()); // { code: 0, signal: null }
 * await proc.close();
 * ```
 */
export class PtyProcess {
  /** The pty; its child is the program itself (the launcher execs it). */
  readonly pty: Pty;
  /** The program's pid. */
  readonly pid: number;
  /** Resolves once all output has been read (the terminal hung up or closed). */
  readonly drained: Promise<void>;

  #master: number;
  #buffer = new Uint8Array(64 * 1024);
  #length = 0;
  #text = "";
  #waiters = new Set<() => void>();
  #ended = false;
  #closed = false;
  #paused: Promise<void> | null = null;
  #resume = () => {};

  private constructor(pty: Pty, master: number) {
    this.pty = pty;
    this.pid = pty.pid;
    this.#master = master;
    this.drained = this.#pump();
  }

  /** Starts `argv` (program first) on a new pty. */
  static spawn(argv: string[], options: PtyProcessOptions = {}): PtyProcess {
    const before = masterFds();
    const pty = Pty.spawn({
      command: argv[0],
      args: argv.slice(1),
      cols: options.cols ?? 80,
      rows: options.rows ?? 24,
      env: options.env,
      cwd: options.cwd,
    });
    const added = [...masterFds()].filter((fd) => !before.has(fd));
    if (added.length !== 1) {
      pty.close();
      throw new Error(`cannot tell the pty master among fds ${added}`);
    }
    return new PtyProcess(pty, added[0]);
  }

  async #pump(): Promise<void> {
    try {
      for (
        let chunk;
        (await this.#paused, chunk = await this.pty.read()) !== null;
      ) {
        this.#append(chunk);
      }
    } catch (error) {
      // A read failure ends the transcript; waiters report the tail.
      console.error(`pty_process: read failed: ${error}`);
    } finally {
      this.#ended = true;
      this.#wake();
    }
  }

  #append(chunk: Uint8Array): void {
    if (this.#length + chunk.length > this.#buffer.length) {
      let capacity = this.#buffer.length * 2;
      while (capacity < this.#length + chunk.length) capacity *= 2;
      const grown = new Uint8Array(capacity);
      grown.set(this.#buffer.subarray(0, this.#length));
      this.#buffer = grown;
    }
    this.#buffer.set(chunk, this.#length);
    this.#length += chunk.length;
    this.#text += latin1.decode(chunk);
    this.#wake();
  }

  #wake(): void {
    for (const waiter of this.#waiters) waiter();
  }

  /** Number of bytes read from the master so far. */
  get length(): number {
    return this.#length;
  }

  /** Everything read so far as latin1 text: one character per byte. */
  get text(): string {
    return this.#text;
  }

  /** A copy of the bytes read in [from, to). */
  bytes(from = 0, to = this.#length): Uint8Array {
    return this.#buffer.slice(from, Math.min(to, this.#length));
  }

  /** Hex sha256 of the bytes read in [from, to). */
  sha256(from = 0, to = this.#length): string {
    return createHash("sha256").update(
      this.#buffer.subarray(from, Math.min(to, this.#length)),
    ).digest("hex");
  }

  /** Types `data` on the terminal, as a user would (strings as UTF-8). */
  async type(data: string | Uint8Array): Promise<void> {
    await this.pty.write(
      typeof data === "string" ? encoder.encode(data) : data,
    );
  }

  /**
   * Waits until `pattern` appears in the output at or after byte `from`
   * and returns where. Strings match bytes as latin1 (so ASCII as is).
   * Throws after `timeoutMs`, or once the output ended without it, with
   * the tail of the output in the message.
   */
  async waitFor(
    pattern: string | RegExp,
    options: { from?: number; timeoutMs?: number } = {},
  ): Promise<PtyMatch> {
    const from = options.from ?? 0;
    const timeoutMs = options.timeoutMs ?? 10_000;
    let searchedTo = from;
    const find = (): PtyMatch | null => {
      if (typeof pattern === "string") {
        // Resume where the last search could not have matched yet.
        const start = Math.max(from, searchedTo - pattern.length + 1);
        const at = this.#text.indexOf(pattern, start);
        searchedTo = this.#text.length;
        return at < 0 ? null : { start: at, end: at + pattern.length };
      }
      const match = pattern.exec(this.#text.slice(from));
      return match === null ? null : {
        start: from + match.index,
        end: from + match.index + match[0].length,
      };
    };
    let timedOut = false;
    let wake = () => {};
    const timer = setTimeout(() => {
      timedOut = true;
      wake();
    }, timeoutMs);
    try {
      while (true) {
        const found = find();
        if (found) return found;
        if (timedOut || this.#ended) {
          throw new Error(
            `${
              timedOut ? `timed out after ${timeoutMs} ms` : "output ended"
            } waiting for ${pattern}; output tail: ${
              JSON.stringify(this.#text.slice(-600))
            }`,
          );
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
          this.#waiters.add(resolve);
        });
        this.#waiters.delete(wake);
      }
    } finally {
      clearTimeout(timer);
      this.#waiters.delete(wake);
    }
  }

  /**
   * The terminal's attributes (the exact `struct termios` bytes). Read on
   * the master, which on Linux answers for the slave; works after the
   * program exited too, until {@linkcode close}.
   */
  termios(): Uint8Array {
    if (this.#closed) throw new Error("pty_process: closed");
    return getTermios(this.#master);
  }

  /**
   * Stops reading the terminal after the read under way (its chunk still
   * arrives): the program's output fills the terminal and its writes find
   * no room, as behind a slow terminal or one stopped with Ctrl-S.
   */
  pause(): void {
    this.#paused ??= new Promise((resolve) => this.#resume = resolve);
  }

  /** Reads the terminal again after {@linkcode pause}. */
  resume(): void {
    this.#paused = null;
    this.#resume();
  }

  /** Sends `signal` to the program alone, as `kill -SIG pid` does. */
  signal(signal: Deno.Signal): void {
    Deno.kill(this.pid, signal);
  }

  /**
   * Waits for the program's exit status, then for the rest of its output.
   * Throws after `timeoutMs` (the program keeps running; close() ends it).
   */
  async wait(timeoutMs = 20_000): Promise<PtyExitStatus> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new Error(
              `pid ${this.pid} still running after ${timeoutMs} ms; output tail: ${
                JSON.stringify(this.#text.slice(-600))
              }`,
            ),
          ),
        timeoutMs,
      );
    });
    try {
      const status = await Promise.race([this.pty.exited, timeout]);
      await Promise.race([this.drained, timeout]);
      return status;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Hangs up the terminal (the program gets SIGHUP, then SIGKILL) and waits
   * for the end of its output and its exit. Safe to call repeatedly.
   */
  async close(): Promise<void> {
    this.#closed = true;
    this.resume();
    await this.pty.close();
    await this.drained;
    await this.pty.exited;
  }
}
