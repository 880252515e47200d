/**
 * Runs the `et` client as a child with piped stdio, for tests that need
 * every byte of its output (tmux only shows a screen), and the waiting,
 * hashing and parsing helpers the end-to-end tests share.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { patternBytes } from "../helpers/session_pair.ts";
import type { PtyProcess } from "../helpers/pty_process.ts";

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
  #running = true;

  /** Starts `argv`; with `keepBytes` stdout bytes are kept for hashing. */
  constructor(argv: string[], keepBytes = false) {
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.child = child;
    child.status.then(() => this.#running = false);
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

  /** True until the client process has exited. */
  get running(): boolean {
    return this.#running;
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

  /** Closes the client's stdin (end of input). */
  async endInput() {
    await this.#stdin.close().catch(() => {});
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

  /** Sends `signal` to the client (SIGSTOP, SIGCONT, SIGKILL…). */
  signal(signal: Deno.Signal) {
    this.child.kill(signal);
  }

  /** Waits until stderr matches `pattern`. */
  async waitForStderr(pattern: RegExp | string, timeoutMs = 20_000) {
    await waitUntil(
      () =>
        typeof pattern === "string"
          ? this.stderr.includes(pattern)
          : pattern.test(this.stderr),
      timeoutMs,
      () =>
        `stderr matching ${pattern}; stderr: ${JSON.stringify(this.stderr)}`,
    );
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

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Hex sha256 of `bytes`. */
export function sha256(bytes: Uint8Array | string): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/**
 * Polls `condition` every `intervalMs` until it holds; throws after
 * `timeoutMs` naming `what` (a function is asked only then, so it can
 * describe the state at the timeout).
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string | (() => string | Promise<string>),
  intervalMs = 20,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await condition())) {
    if (performance.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${
          typeof what === "string" ? what : await what()
        }`,
      );
    }
    await sleep(intervalMs);
  }
}

/** A finished command: exit code and its whole output. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `argv` to its end with stdin closed (e.g. `et --list`). */
export async function runToEnd(
  argv: string[],
  timeoutMs = 30_000,
): Promise<RunResult> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, timeoutMs);
  try {
    const output = await child.output();
    return {
      code: output.code,
      stdout: new TextDecoder().decode(output.stdout),
      stderr: new TextDecoder().decode(output.stderr),
    };
  } finally {
    clearTimeout(timer);
  }
}

/** One row of `et --list`. */
export interface ListedSession {
  id8: string;
  state: string;
  age: string;
  lastSeen: string;
  command: string;
}

/**
 * Parses `et --list` output: the header must name ID, STATE, AGE, LAST
 * SEEN and COMMAND; "no et sessions" gives an empty list.
 */
export function parseSessionList(stdout: string): ListedSession[] {
  const lines = stdout.split("\n").filter((line) => line.trim() !== "");
  if (lines.length > 0 && /^no et sessions on /.test(lines[0])) return [];
  assert.match(
    lines[0] ?? "",
    /^ID\s+STATE\s+AGE\s+LAST SEEN\s+COMMAND$/,
    `--list header; output: ${stdout}`,
  );
  const rows: ListedSession[] = [];
  for (const line of lines.slice(1)) {
    const match = line.match(
      /^([0-9a-f]{8})\s+(\S+)\s+(\S+)\s+(now|\S+ ago)\s+(.*)$/,
    );
    if (match) {
      rows.push({
        id8: match[1],
        state: match[2],
        age: match[3],
        lastSeen: match[4],
        command: match[5],
      });
    }
  }
  return rows;
}

/**
 * A shell command line that prints `<n:1>`, `<n:2>`, … every 100 ms (its
 * own echo shows `<n:$i>`, which {@linkcode counterValues} does not
 * count); with `file`, each value is also written there, so a test can
 * read how far the remote has counted.
 */
export function counterCommand(file?: string): string {
  const record = file ? `; echo $i > ${file}` : "";
  return `i=0; while :; do i=$((i+1)); echo "<n:$i>"${record}; sleep 0.1; done`;
}

/** The counter values in `text`, in order of appearance. */
export function counterValues(text: string): number[] {
  return [...text.matchAll(/<n:(\d+)>/g)].map((m) => Number(m[1]));
}

/**
 * Asserts that the values seen form 1..max with no value missing (values
 * seen twice are allowed, e.g. resent to a new client); returns max.
 */
export function assertNoGap(values: number[], what = "counter"): number {
  assert.ok(values.length > 0, `${what}: no values`);
  const seen = new Set(values);
  const max = Math.max(...values);
  const missing: number[] = [];
  for (let n = 1; n <= max; n++) if (!seen.has(n)) missing.push(n);
  assert.deepEqual(
    missing,
    [],
    `${what}: values missing up to ${max} (${missing.length} of them)`,
  );
  return max;
}

/**
 * Asserts that the values run 1, 2, 3, … max in order, each exactly once
 * (one client that saw the whole stream); returns max.
 */
export function assertConsecutive(values: number[], what = "counter"): number {
  assert.ok(values.length > 0, `${what}: no values`);
  const wrong = values.findIndex((value, i) => value !== i + 1);
  assert.equal(
    wrong,
    -1,
    `${what}: value #${wrong + 1} is ${values[wrong]} (before it: ${
      values.slice(Math.max(0, wrong - 3), wrong)
    })`,
  );
  return values.length;
}

/** Printable characters of the generated text: no `<`, `>` or `[`. */
const ALPHABET = new TextEncoder().encode(
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_=+*/",
);
const LINE_ENDS = [[0x0a], [0x0d, 0x0a], [0x0d]];

/**
 * Deterministic text of exactly `length` bytes: lines of ~30 printable
 * characters, each ended by a bare `\n`, a `\r\n` or a bare `\r`.
 */
export function textLines(length: number, seed: number): Uint8Array {
  const pattern = patternBytes(length, seed);
  const out = new Uint8Array(length);
  let at = 0;
  for (let i = 0; at < length; i++) {
    const byte = pattern[i];
    if (byte < 8) {
      for (const end of LINE_ENDS[byte % 3]) if (at < length) out[at++] = end;
    } else {
      out[at++] = ALPHABET[byte % ALPHABET.length];
    }
  }
  return out;
}

/** Options of {@linkcode streamExact}. */
export interface StreamExactOptions {
  /** Where to write the data file (the world's dir). */
  dir: string;
  /** Search for the markers from this byte of the client's output on. */
  from: number;
  /** Bytes of remote output. */
  bytes: number;
  /** Bytes per paced chunk. */
  chunkBytes: number;
  /** Seed of {@linkcode textLines}. */
  seed: number;
  /** Pause after each chunk, in seconds (so that many faults hit it). */
  pauseS?: number;
  /** Longest wait for the end marker, in ms. */
  timeoutMs?: number;
}

/**
 * Has the interactive remote shell of `client` (the real client on a real
 * terminal) print text full of bare `\n`, `\r\n` and `\r` under
 * `stty -onlcr`, paced in chunks, and asserts that its terminal received
 * exactly those bytes (count and sha256), with no `[et:` notice inside.
 * Returns where the stream ended in the client's output.
 */
export async function streamExact(
  client: PtyProcess,
  options: StreamExactOptions,
): Promise<{ end: number; bytes: number }> {
  const data = textLines(options.bytes, options.seed);
  const dataFile = `${options.dir}/stream-${options.seed}.txt`;
  await Deno.writeFile(dataFile, data);
  const chunks = Math.ceil(options.bytes / options.chunkBytes);
  // The echo of this line holds neither marker: printf glues them.
  await client.type(
    `stty -onlcr; printf '<<STREAM-''START>>'; ` +
      `for i in $(seq 0 ${chunks - 1}); do ` +
      `dd if=${dataFile} bs=${options.chunkBytes} skip=$i count=1 2>/dev/null; ` +
      `sleep ${options.pauseS ?? 0.2}; done; printf '<<STREAM-''END>>'; ` +
      `stty onlcr\r`,
  );
  const start = await client.waitFor("<<STREAM-START>>", {
    from: options.from,
    timeoutMs: 60_000,
  });
  const end = await client.waitFor("<<STREAM-END>>", {
    from: start.end,
    timeoutMs: options.timeoutMs ?? 180_000,
  });
  const section = client.text.slice(start.end, end.start);
  assert.ok(
    !section.includes("[et:"),
    "no notice inside the stream (outages must stay below its delay)",
  );
  const crlf = (text: string) => text.split("\r\n").length - 1;
  assert.equal(
    end.start - start.end,
    data.length,
    `byte count (\\r\\n in the output: ${crlf(section)}, ` +
      `in the file: ${crlf(new TextDecoder("latin1").decode(data))})`,
  );
  assert.equal(client.sha256(start.end, end.start), sha256(data));
  return { end: end.end, bytes: data.length };
}
