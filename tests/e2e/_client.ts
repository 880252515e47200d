/**
 * Runs the `et` client as a child with piped stdio, for tests that need
 * every byte of its output (tmux only shows a screen).
 *
 * @module
 */

/** A running client with its output collected. */
export class PipedClient {
  readonly child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  /** All stdout bytes so far, as latin1 text (byte-exact). */
  stdout = "";
  /** All stderr text so far. */
  stderr = "";
  #stdoutBytes = 0;
  #done: Promise<void>;
  #chunks: Uint8Array[] = [];

  /** Starts `argv`; with `keepBytes` stdout bytes are kept for hashing. */
  constructor(argv: string[], keepBytes = false) {
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.child = child;
    this.#stdin = child.stdin.getWriter();
    const keep = keepBytes;
    const chunks = this.#chunks;
    const latin1 = new TextDecoder("latin1");
    const out = (async () => {
      for await (const chunk of child.stdout) {
        this.#stdoutBytes += chunk.length;
        if (keep) chunks.push(chunk);
        // Keep only a tail as text, so 50 MB do not turn into a huge string.
        this.stdout = (this.stdout + latin1.decode(chunk)).slice(-200_000);
      }
    })();
    const err = (async () => {
      for await (const chunk of child.stderr) {
        this.stderr += new TextDecoder().decode(chunk);
      }
    })();
    this.#done = Promise.all([out, err]).then(() => {});
  }

  /** Bytes received on stdout so far. */
  get stdoutBytes(): number {
    return this.#stdoutBytes;
  }

  /** Every stdout byte (only with keepBytes). */
  bytes(): Uint8Array {
    const all = new Uint8Array(this.#chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const chunk of this.#chunks) {
      all.set(chunk, at);
      at += chunk.length;
    }
    return all;
  }

  /** Types text (as keystrokes on a pipe). */
  async type(text: string | Uint8Array) {
    await this.#stdin.write(
      typeof text === "string" ? new TextEncoder().encode(text) : text,
    );
  }

  /** Waits until stdout's tail matches `pattern`. */
  async waitFor(pattern: RegExp | string, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const test = (text: string) =>
      typeof pattern === "string" ? text.includes(pattern) : pattern.test(text);
    while (!test(this.stdout)) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${pattern}; stdout tail: ${
            JSON.stringify(this.stdout.slice(-300))
          }; stderr: ${this.stderr}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Waits for exit; returns the status code. */
  async exit(timeoutMs = 20_000): Promise<number> {
    const timer = setTimeout(() => this.kill(), timeoutMs);
    const status = await this.child.status;
    clearTimeout(timer);
    await this.#done;
    return status.code;
  }

  /** Kills the client. */
  kill() {
    try {
      this.child.kill("SIGKILL");
    } catch { /* gone */ }
  }

  /** Closes stdin, kills the client and waits for its streams. */
  async close() {
    await this.#stdin.close().catch(() => {});
    this.kill();
    await this.child.status;
    await this.#done;
  }
}
