/**
 * Runs the `et` client as a child with piped stdio, for tests that need
 * every byte of its output (tmux only shows a screen); the session
 * fixtures ({@linkcode withSession}, {@linkcode withProxiedSession},
 * {@linkcode withProxiedTerminal}); and the waiting, hashing and parsing
 * helpers the end-to-end tests share.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  chaos,
  type ChaosOptions,
  FaultProxy,
} from "../helpers/fault_proxy.ts";
import { patternBytes } from "../helpers/session_pair.ts";
import { DeadlineError, withDeadline } from "../../src/deadline.ts";
import { type PtyMatch, PtyProcess } from "../helpers/pty_process.ts";
import type { TmuxTerminal } from "../helpers/tmux.ts";
import { type EtWorld, withWorld, type WorldOptions } from "./_world.ts";

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
    if (!await this.#streamsEnd(STREAMS_AFTER_EXIT_MS)) {
      throw new Error(
        `the client exited, but its stdout or stderr is still open ${
          STREAMS_AFTER_EXIT_MS / 1000
        } s later: a process it left behind (an ssh?) holds them`,
      );
    }
    return status.code;
  }

  /**
   * Whether the client's stdout and stderr end within `ms`: a process it
   * left behind holds them open, which fails a test instead of hanging it.
   */
  async #streamsEnd(ms: number): Promise<boolean> {
    return await withDeadline(this.#done, ms, "streams still open").then(
      () => true,
      (error) => {
        if (error instanceof DeadlineError) return false;
        throw error;
      },
    );
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

  /**
   * Closes stdin, kills the client and waits for its streams (for a
   * while: in a test's cleanup a left-behind process must not hang it).
   */
  async close() {
    await this.#stdin.close().catch(() => {});
    this.kill();
    await this.child.status;
    await this.#streamsEnd(STREAMS_AFTER_EXIT_MS);
  }
}

/** How long a client's output may stay open after it exited. */
const STREAMS_AFTER_EXIT_MS = 5000;

/** What the tests type to see a shell answer; its echo does not hold the answer. */
const MARK_COMMAND = "echo MARK-$((6*7))";
/** The shell's answer to {@linkcode MARK_COMMAND}. */
const MARK = "MARK-42";

/**
 * Types `echo MARK-$((6*7))` into the shell of `client` and waits up to
 * `timeoutMs` until it prints `MARK-42`: the session is up and its shell
 * answers.
 */
export async function shellAnswers(
  client: PipedClient,
  timeoutMs = 30_000,
): Promise<void> {
  await client.type(`${MARK_COMMAND}\n`);
  await client.waitFor(MARK, timeoutMs);
}

/**
 * {@linkcode shellAnswers} for a client on a real terminal (Enter is
 * `\r`); returns where `MARK-42` stands in its output.
 */
export async function ptyShellAnswers(
  client: PtyProcess,
  timeoutMs = 30_000,
): Promise<PtyMatch> {
  await client.type(`${MARK_COMMAND}\r`);
  return await client.waitFor(MARK, { timeoutMs });
}

/**
 * {@linkcode shellAnswers} for a client in tmux: types the line, presses
 * Enter and waits for a screen line that starts with `MARK-42`.
 */
export async function tmuxShellAnswers(
  term: TmuxTerminal,
  timeoutMs = 30_000,
): Promise<void> {
  await term.type(MARK_COMMAND);
  await term.sendKeys("Enter");
  await term.waitFor(/^MARK-42/m, timeoutMs);
}

/**
 * Has the shell of `client` write its pid to `file` (a path on this
 * machine: the remote is local), waits up to 10 s for the line after it
 * and returns that pid.
 */
export async function remoteShellPid(
  client: PipedClient,
  file: string,
): Promise<number> {
  await client.type(`echo $$ > ${file}; echo PID-WRITTEN\n`);
  await client.waitFor("PID-WRITTEN\r\n", 10_000);
  return Number(await Deno.readTextFile(file));
}

/** Options of {@linkcode withSession} and {@linkcode withProxiedSession}. */
export interface SessionOptions extends WorldOptions {
  /**
   * Client arguments before the destination (see {@linkcode EtWorld.client}).
   * @default {[]}
   */
  extra?: string[];
  /**
   * A remote command after the destination (`et host cmd`).
   * @default {none: the login shell}
   */
  command?: string;
  /**
   * The ssh user to log in as.
   * @default {the current user}
   */
  user?: string;
  /**
   * Keep every stdout byte (see {@linkcode PipedClient.bytes}).
   * @default {false}
   */
  keepBytes?: boolean;
  /**
   * Wait until the shell answers ({@linkcode shellAnswers}, 30 s) before
   * the body runs.
   * @default {true}
   */
  waitForShell?: boolean;
}

/** The pieces of a session run by {@linkcode withSession}. */
export interface Session {
  world: EtWorld;
  client: PipedClient;
}

/** Starts the piped client that `options` describe, on `port` if given. */
function startPipedClient(
  world: EtWorld,
  options: SessionOptions,
  port?: number,
): PipedClient {
  return new PipedClient(
    [
      ...world.client(options.extra ?? [], { port, user: options.user }),
      ...(options.command === undefined ? [] : [options.command]),
    ],
    options.keepBytes ?? false,
  );
}

/**
 * Runs `body` with a piped client connected straight to a fresh world's
 * daemon and (unless `waitForShell` is false) its shell answering; always
 * closes the client, then the world.
 */
export async function withSession(
  options: SessionOptions,
  body: (session: Session) => Promise<void>,
): Promise<void> {
  await withWorld(options, async (world) => {
    const client = startPipedClient(world, options);
    try {
      if (options.waitForShell ?? true) await shellAnswers(client);
      await body({ world, client });
    } finally {
      await client.close();
    }
  });
}

/**
 * Starts `chaos` on the fixture's proxy and returns its stop function,
 * which does its work once however often it is called; the fixture calls
 * it when it tears down, before it closes the client.
 */
export type StartChaos = (options: ChaosOptions) => () => Promise<void>;

/** How the proxied fixtures prepare their {@linkcode FaultProxy}. */
export interface ProxyOptions {
  /**
   * Runs before the client starts, e.g. to refuse every connection, or to
   * start faults from before the first handshake on.
   */
  prepare?: (proxy: FaultProxy, startChaos: StartChaos) => void;
}

/** What every proxied fixture hands its body (`C`: its kind of client). */
export interface ProxiedParts<C> {
  world: EtWorld;
  proxy: FaultProxy;
  client: C;
  /** Starts faults that the fixture stops at teardown at the latest. */
  startChaos: StartChaos;
}

/**
 * Starts a world, a fault proxy in front of its daemon and the client that
 * `start` makes for the proxy's port, runs `body`, and always tears down:
 * the faults still running, the client, the proxy, the world.
 */
async function throughProxy<C extends { close(): Promise<void> }>(
  options: WorldOptions & ProxyOptions,
  start: (world: EtWorld, port: number) => C,
  body: (parts: ProxiedParts<C>) => Promise<void>,
): Promise<void> {
  await withWorld(options, async (world) => {
    const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
    const stops: (() => Promise<void>)[] = [];
    const startChaos: StartChaos = (chaosOptions) => {
      const stop = chaos(proxy, chaosOptions);
      let stopping: Promise<void> | undefined;
      const stopOnce = () => stopping ??= stop();
      stops.push(stopOnce);
      return stopOnce;
    };
    let client: C | undefined;
    try {
      options.prepare?.(proxy, startChaos);
      client = start(world, proxy.port);
      await body({ world, proxy, client, startChaos });
    } finally {
      for (const stop of stops) await stop();
      await client?.close();
      await proxy.close();
    }
  });
}

/** Options of {@linkcode withProxiedSession}. */
export interface ProxiedSessionOptions extends SessionOptions, ProxyOptions {}

/** The pieces of a session that runs through the fault proxy. */
export type ProxiedSession = ProxiedParts<PipedClient>;

/**
 * Runs `body` with a piped client connected through a fault proxy to a
 * fresh world's daemon and (unless `waitForShell` is false) its shell
 * answering; always tears everything down.
 *
 * @example
 * ```ts
 * await withProxiedSession({ keepBytes: true }, async ({ proxy, client }) => {
 *   proxy.cut();
 *   await client.type("echo AFTER-$((2+3))\n");
 *   await client.waitFor("AFTER-5");
 * });
 * ```
 */
export async function withProxiedSession(
  options: ProxiedSessionOptions,
  body: (session: ProxiedSession) => Promise<void>,
): Promise<void> {
  await throughProxy(
    options,
    (world, port) => startPipedClient(world, options, port),
    async (session) => {
      if (options.waitForShell ?? true) await shellAnswers(session.client);
      await body(session);
    },
  );
}

/** Options of {@linkcode withProxiedTerminal}. */
export interface ProxiedTerminalOptions extends WorldOptions, ProxyOptions {
  /**
   * Client arguments before the destination.
   * @default {[]}
   */
  extra?: string[];
  /**
   * Longest wait for the shell's answer, in ms.
   * @default {30_000}
   */
  shellTimeoutMs?: number;
}

/** The pieces of a session on a real terminal through the fault proxy. */
export interface ProxiedTerminal extends ProxiedParts<PtyProcess> {
  /** The terminal's attributes before the client could touch them. */
  termios: Uint8Array;
  /** Where the shell's answer `MARK-42` stands in the output. */
  mark: PtyMatch;
}

/**
 * Runs `body` with the client on a real terminal (a pty), connected
 * through a fault proxy to a fresh world's daemon, once its shell answers
 * ({@linkcode ptyShellAnswers}); always tears everything down.
 */
export async function withProxiedTerminal(
  options: ProxiedTerminalOptions,
  body: (session: ProxiedTerminal) => Promise<void>,
): Promise<void> {
  await throughProxy(
    options,
    (world, port) =>
      PtyProcess.spawn(world.client(options.extra ?? [], { port })),
    async (session) => {
      // Read at once, before the client (still starting) can change them.
      const termios = session.client.termios();
      const mark = await ptyShellAnswers(
        session.client,
        options.shellTimeoutMs,
      );
      await body({ ...session, termios, mark });
    },
  );
}

/** Resolves after `ms`. */
/** True while process `pid` exists (and is not a zombie). */
export async function alive(pid: number): Promise<boolean> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

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

/**
 * Types {@linkcode counterCommand} (with `file`) into the shell of `client`
 * and waits up to 10 s until it has printed 10 values; a timeout names
 * `what`.
 */
export async function startCounter(
  client: PipedClient,
  options: { file?: string; what?: string } = {},
): Promise<void> {
  await client.type(counterCommand(options.file) + "\n");
  await waitUntil(
    () => counterValues(client.stdout).length >= 10,
    10_000,
    options.what ?? "the counter",
  );
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

/** Base64 of `bytes` in 76-character lines: printable, newline-ended. */
export function base64Lines(bytes: Uint8Array): Uint8Array {
  const lines: string[] = [];
  for (let i = 0; i < bytes.length; i += 57) {
    lines.push(btoa(String.fromCharCode(...bytes.subarray(i, i + 57))));
  }
  return new TextEncoder().encode(lines.join("\n") + "\n");
}

/** Where {@linkcode markedSection} found the marked output. */
export interface MarkedSection {
  /** The client's stdout from the given byte on, as latin1 text. */
  text: string;
  /** Where the output after `<<<BEGIN>>>` starts, in `text`. */
  start: number;
  /** Where `<<<DONE>>>` starts, in `text`. */
  end: number;
  /** The bytes between the markers. */
  section: Uint8Array;
}

/**
 * Finds, in the stdout of `client` (made with keepBytes) from byte `from`
 * on, the output between `<<<BEGIN>>>` and `<<<DONE>>>` (which a remote
 * `printf '<<<%s>>>' BEGIN` … `DONE` prints, and its echo does not hold).
 */
export function markedSection(
  client: PipedClient,
  from: number,
): MarkedSection {
  const all = client.bytes().subarray(from);
  const text = new TextDecoder("latin1").decode(all);
  const start = text.indexOf("<<<BEGIN>>>") + "<<<BEGIN>>>".length;
  const end = text.indexOf("<<<DONE>>>");
  return { text, start, end, section: all.subarray(start, end) };
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
