/**
 * An `et` client as a child with piped stdio whose stdout is hashed as it
 * streams (nothing kept), for the reliability runs that move hundreds of
 * megabytes through many sessions: bytes so far, a sha256 of them, waits
 * for a byte count, and the stderr text.
 *
 * @module
 */

import { StreamHash } from "../helpers/session_pair.ts";

/** A running client whose stdout is hashed, not kept. */
export class StreamClient {
  readonly child: Deno.ChildProcess;
  /** Everything on stderr so far (notices, the command's stderr). */
  stderr = "";
  #hash = new StreamHash();
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #waiters: { bytes: number; resolve: () => void }[] = [];
  #stderrWaiters: { text: string; resolve: () => void }[] = [];
  #done: Promise<void>;
  #exited = false;
  #code: number | null = null;
  /** `performance.now()` when the last stdout chunk arrived. */
  lastOutputAt = 0;

  /** Spawns `argv` with piped stdin, stdout and stderr. */
  constructor(argv: string[]) {
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.child = child;
    child.status.then((status) => {
      this.#exited = true;
      this.#code = status.code;
    });
    this.#stdin = child.stdin.getWriter();
    const out = (async () => {
      for await (const chunk of child.stdout) {
        this.#hash.update(chunk);
        this.lastOutputAt = performance.now();
        if (this.#waiters.length > 0) this.#wake();
      }
    })();
    const err = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of child.stderr) {
        this.stderr = (this.stderr + decoder.decode(chunk, { stream: true }))
          .slice(-100_000);
        for (const waiter of [...this.#stderrWaiters]) {
          if (this.stderr.includes(waiter.text)) {
            this.#stderrWaiters.splice(this.#stderrWaiters.indexOf(waiter), 1);
            waiter.resolve();
          }
        }
      }
    })();
    this.#done = Promise.all([out, err]).then(() => {});
  }

  /** The client's pid. */
  get pid(): number {
    return this.child.pid;
  }

  /** True once the client process has exited. */
  get exited(): boolean {
    return this.#exited;
  }

  /** Its exit code, once exited. */
  get code(): number | null {
    return this.#code;
  }

  /** Bytes received on stdout so far. */
  get bytes(): number {
    return this.#hash.size;
  }

  /** Hex sha256 of all stdout; call once, at the end. */
  digest(): string {
    return this.#hash.digest();
  }

  #wake() {
    const size = this.#hash.size;
    this.#waiters = this.#waiters.filter((waiter) => {
      if (size < waiter.bytes) return true;
      waiter.resolve();
      return false;
    });
  }

  /** Resolves once `bytes` stdout bytes arrived (rejects after timeoutMs). */
  waitForBytes(bytes: number, timeoutMs = 60_000): Promise<void> {
    if (this.#hash.size >= bytes) return Promise.resolve();
    return withTimeout(
      new Promise<void>((resolve) => this.#waiters.push({ bytes, resolve })),
      timeoutMs,
      () =>
        `${bytes} stdout bytes (have ${this.#hash.size}); stderr: ${
          this.stderr.slice(-500)
        }`,
    );
  }

  /** Resolves once stderr holds `text` (rejects after timeoutMs). */
  waitForStderr(text: string, timeoutMs = 60_000): Promise<void> {
    if (this.stderr.includes(text)) return Promise.resolve();
    return withTimeout(
      new Promise<void>((resolve) =>
        this.#stderrWaiters.push({ text, resolve })
      ),
      timeoutMs,
      () => `"${text}" on stderr; stderr: ${this.stderr.slice(-500)}`,
    );
  }

  /** Writes to the client's stdin. */
  async write(data: Uint8Array | string): Promise<void> {
    await this.#stdin.write(
      typeof data === "string" ? new TextEncoder().encode(data) : data,
    );
  }

  /** Closes the client's stdin (EOF reaches the remote command). */
  async endInput(): Promise<void> {
    await this.#stdin.close().catch(() => {});
  }

  /** Waits for the exit (killing the client after timeoutMs); its code. */
  async exit(timeoutMs = 30_000): Promise<number> {
    const timer = setTimeout(() => this.kill(), timeoutMs);
    const status = await this.child.status;
    clearTimeout(timer);
    await this.#done;
    return status.code;
  }

  /** Kills the client. */
  kill(): void {
    try {
      this.child.kill("SIGKILL");
    } catch { /* gone */ }
  }

  /** Closes stdin, kills the client and waits for its streams. */
  async close(): Promise<void> {
    await this.#stdin.close().catch(() => {});
    this.kill();
    await this.child.status;
    await this.#done;
  }
}

/** Rejects naming `what` if `promise` is not settled within `ms`. */
export async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: () => string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new Error(`timed out after ${ms} ms waiting for ${what()}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
