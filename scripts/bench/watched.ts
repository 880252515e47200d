/**
 * A child process (an `et` or `ssh -tt` client) with piped stdio whose
 * stdout is scanned for markers as it streams, with the arrival time of the
 * chunk that completed each marker. Unlike the tests' PipedClient it keeps
 * no growing text, so hundreds of megabytes stream through cheaply and the
 * benchmark process does not become the bottleneck it measures.
 *
 * @module
 */

import { Pty } from "../../src/pty/mod.ts";
import { withTimeout } from "./util.ts";

/** Where and when a marker was seen. */
export interface Hit {
  /** `performance.now()` when the chunk completing the marker arrived. */
  at: number;
  /** Byte offset of the marker's first byte in the whole stdout stream. */
  offset: number;
}

interface Waiter {
  marker: string;
  from: number;
  resolve: (hit: Hit) => void;
}

/** Recent output kept for markers asked for after they arrived. */
const HISTORY_CHARS = 256 * 1024;
/** Longest marker that can be watched for. */
const MAX_MARKER_CHARS = 64;

/** How a watched child is attached: piped stdio, or a terminal. */
export type Attachment = "pipes" | "pty";

/** What the watcher needs of a running child, however it is attached. */
interface Child {
  pid: number;
  /** Resolves once the child exited. */
  status: Promise<unknown>;
  /** Its output (stdout, or everything written to the terminal). */
  output: AsyncIterable<Uint8Array>;
  /** Its stderr, when piped apart. */
  errors: AsyncIterable<Uint8Array> | null;
  write(data: Uint8Array): Promise<void>;
  kill(): void;
  /** Releases stdin / the terminal after exit. */
  release(): Promise<void>;
}

function pipedChild(argv: string[]): Child {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stdin = child.stdin.getWriter();
  return {
    pid: child.pid,
    status: child.status,
    output: child.stdout,
    errors: child.stderr,
    write: (data) => stdin.write(data),
    kill: () => child.kill("SIGKILL"),
    release: () => stdin.close().catch(() => {}),
  };
}

function ptyChild(argv: string[]): Child {
  const pty = Pty.spawn({
    command: argv[0],
    args: argv.slice(1),
    cols: 200,
    rows: 50,
  });
  async function* output() {
    for (let chunk; (chunk = await pty.read()) !== null;) yield chunk;
  }
  return {
    pid: pty.pid,
    status: pty.exited,
    output: output(),
    errors: null,
    write: (data) => pty.write(data),
    kill: () => pty.kill("SIGKILL"),
    release: () => pty.close(),
  };
}

/** A running child whose output is watched for markers. */
export class WatchedProcess {
  #child: Child;
  /** `performance.now()` just before the spawn. */
  readonly spawnedAt: number;
  #total = 0;
  /** Recent output as latin1 text (one char per byte), chunk by chunk. */
  #history: { text: string; start: number; at: number }[] = [];
  #historyChars = 0;
  /** The last bytes before the current chunk, for markers split across chunks. */
  #tail = "";
  #waiters = new Set<Waiter>();
  #stderr = "";
  #done: Promise<void>;
  #exited = false;

  /**
   * Spawns `argv` with piped stdin, stdout and stderr, or (`"pty"`) on a
   * terminal of its own, as a person runs it (200x50).
   */
  constructor(argv: string[], attachment: Attachment = "pipes") {
    this.spawnedAt = performance.now();
    const child = this.#child = attachment === "pty"
      ? ptyChild(argv)
      : pipedChild(argv);
    const latin1 = new TextDecoder("latin1");
    const out = (async () => {
      for await (const chunk of child.output) {
        this.#take(latin1.decode(chunk), performance.now());
      }
    })();
    const err = (async () => {
      if (!child.errors) return;
      const decoder = new TextDecoder();
      for await (const chunk of child.errors) {
        this.#stderr = (this.#stderr + decoder.decode(chunk)).slice(-4000);
      }
    })();
    this.#done = Promise.allSettled([out, err]).then(() => {});
    child.status.then(() => this.#exited = true);
  }

  /** Resolves once the child exited. */
  get status(): Promise<unknown> {
    return this.#child.status;
  }

  /** The child's pid. */
  get pid(): number {
    return this.#child.pid;
  }

  /** Bytes of stdout received so far. */
  get total(): number {
    return this.#total;
  }

  /** The last bytes of stdout, for error messages. */
  tail(chars = 300): string {
    return this.#history.map((chunk) => chunk.text).join("").slice(-chars);
  }

  /** Whether the child has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  #take(text: string, at: number) {
    const start = this.#total;
    this.#total += text.length;
    this.#history.push({ text, start, at });
    this.#historyChars += text.length;
    while (this.#historyChars - this.#history[0].text.length > HISTORY_CHARS) {
      this.#historyChars -= this.#history.shift()!.text.length;
    }
    if (this.#waiters.size > 0) {
      // Search only the new chunk plus the tail before it (a marker may
      // straddle chunks), not the whole history: bulk runs stream 200 MB.
      const window = this.#tail + text;
      const windowStart = start - this.#tail.length;
      for (const waiter of this.#waiters) {
        const index = window.indexOf(
          waiter.marker,
          Math.max(0, waiter.from - windowStart),
        );
        if (index >= 0) {
          this.#waiters.delete(waiter);
          waiter.resolve({ at, offset: windowStart + index });
        }
      }
    }
    this.#tail = (this.#tail + text).slice(-MAX_MARKER_CHARS);
  }

  /**
   * Resolves when `marker` appears at or after byte offset `from` (default:
   * anywhere still remembered). Register before causing the output: a
   * marker that already arrived is found only if still in recent history.
   */
  watch(marker: string, from = 0): Promise<Hit> {
    if (marker.length > MAX_MARKER_CHARS) {
      throw new Error(`marker longer than ${MAX_MARKER_CHARS} chars`);
    }
    if (this.#history.length > 0) {
      const historyStart = this.#history[0].start;
      const text = this.#history.map((chunk) => chunk.text).join("");
      const index = text.indexOf(marker, Math.max(0, from - historyStart));
      if (index >= 0) {
        const offset = historyStart + index;
        const end = offset + marker.length;
        const chunk = this.#history.find((c) => c.start + c.text.length >= end);
        return Promise.resolve({ at: chunk?.at ?? performance.now(), offset });
      }
    }
    return new Promise((resolve) =>
      this.#waiters.add({ marker, from, resolve })
    );
  }

  /** {@link watch} with a time limit; the error shows the output's tail. */
  async waitFor(marker: string, from = 0, timeoutMs = 30_000): Promise<Hit> {
    try {
      return await withTimeout(this.watch(marker, from), timeoutMs, marker);
    } catch (error) {
      throw new Error(
        `${(error as Error).message}; stdout tail: ${
          JSON.stringify(this.tail())
        }; stderr: ${JSON.stringify(this.#stderr.slice(-500))}`,
      );
    }
  }

  /** Writes `text` to the child's stdin (as keystrokes). */
  async type(text: string | Uint8Array): Promise<void> {
    await this.#child.write(
      typeof text === "string" ? new TextEncoder().encode(text) : text,
    );
  }

  /** Waits up to `timeoutMs` for the child to exit; kills it after that. */
  async exit(timeoutMs = 10_000): Promise<void> {
    const timer = setTimeout(() => this.kill(), timeoutMs);
    await this.#child.status;
    clearTimeout(timer);
    await this.#child.release();
    await this.#done;
  }

  /** Sends SIGKILL if still running. */
  kill(): void {
    if (this.#exited) return;
    try {
      this.#child.kill();
    } catch {
      // Exited meanwhile.
    }
  }

  /** Kills the child (if running) and waits for its streams to end. */
  async close(): Promise<void> {
    this.kill();
    await this.exit();
  }
}
