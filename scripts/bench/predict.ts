/**
 * Predictive echo in the benchmark: keystroke to glyph as the person sees
 * it on a slow link (et predicting, et with `--predict never`, ssh through
 * the same delay), and what keeping the model costs in bulk throughput on
 * a fast link (et's default against `--predict never`).
 *
 * Prediction only runs between two terminals, so these clients run on a
 * pty of their own (the other end-to-end benchmarks pipe them). A headless
 * xterm stands in for the person's terminal while keys are timed (it also
 * answers the client's question where the cursor is); during bulk output
 * the harness only counts bytes, so its own cost stays out of the figure.
 *
 * @module
 */

import { ScreenModel } from "../../src/client/prediction/mod.ts";
import { Pty } from "../../src/pty/mod.ts";
import type { EtWorld } from "../../tests/e2e/_world.ts";
import { FaultProxy } from "../../tests/helpers/fault_proxy.ts";
import { mbPerSecond, sleep } from "./util.ts";

const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();

/** A client on its own pty, its output counted and (while asked) modeled. */
class PtyClient {
  readonly pty: Pty;
  readonly screen: ScreenModel;
  /** Feed the harness's screen (off during bulk output). */
  watching = true;
  total = 0;
  #tail = "";
  #wake: (() => void)[] = [];
  #markers = new Map<string, (at: number) => void>();
  #done: Promise<void>;

  private constructor(pty: Pty, screen: ScreenModel) {
    this.pty = pty;
    this.screen = screen;
    screen.onReply((data) => pty.write(encoder.encode(data)).catch(() => {}));
    this.#done = this.#pump();
  }

  static async start(argv: string[]): Promise<PtyClient> {
    const pty = Pty.spawn({
      command: argv[0],
      args: argv.slice(1),
      cols: 80,
      rows: 24,
    });
    return new PtyClient(pty, await ScreenModel.create(80, 24));
  }

  async #pump(): Promise<void> {
    try {
      for (let chunk; (chunk = await this.pty.read()) !== null;) {
        this.total += chunk.length;
        if (this.watching) {
          this.screen.feed(chunk);
          this.screen.settle();
        }
        if (this.#markers.size > 0) {
          const text = this.#tail + latin1.decode(chunk);
          const at = performance.now();
          for (const [marker, found] of this.#markers) {
            if (text.includes(marker)) {
              this.#markers.delete(marker);
              found(at);
            }
          }
          this.#tail = text.slice(-64);
        }
        for (const wake of this.#wake.splice(0)) wake();
      }
    } catch {
      // the client is gone
    }
  }

  type(text: string): Promise<void> {
    return this.pty.write(encoder.encode(text));
  }

  /** Resolves with the time `test` first held after new output. */
  async until(test: () => boolean, timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    while (!test()) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error("timed out waiting for the screen");
      await Promise.race([
        new Promise<void>((resolve) => this.#wake.push(resolve)),
        sleep(Math.min(left, 50)),
      ]);
    }
    return performance.now();
  }

  /**
   * Resolves with the time the chunk completing `marker` arrived; watch
   * before the output that holds it can come.
   */
  marker(marker: string, timeoutMs: number): Promise<number> {
    this.#tail = "";
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#markers.delete(marker);
        reject(new Error(`timed out waiting for ${marker}`));
      }, timeoutMs);
      this.#markers.set(marker, (at) => {
        clearTimeout(timer);
        resolve(at);
      });
    });
  }

  /** The screen's text (rows joined by newlines). */
  text(): string {
    const rows = [];
    for (let row = 0; row < this.screen.rows; row++) {
      let line = "";
      for (let col = 0; col < this.screen.cols; col++) {
        line += this.screen.cellText(row, col) || " ";
      }
      rows.push(line.trimEnd());
    }
    return rows.join("\n");
  }

  async close(): Promise<void> {
    await this.type("exit\r").catch(() => {});
    await Promise.race([this.pty.exited, sleep(5000)]);
    await this.pty.close();
    await this.#done;
    this.screen.close();
  }
}

let answers = 0;

/** Types a line whose answer shows only once the shell ran it; waits. */
async function shellAnswers(client: PtyClient, timeoutMs = 60_000) {
  const n = 500 + answers++;
  const answered = client.marker(`Q_${n}_`, timeoutMs);
  await client.type(`echo Q_$((${n}+0))_\r`);
  await answered;
  await sleep(600); // the prompt, and any echo in flight, has arrived
}

/** What {@linkcode echoAsSeen} measures. */
export type SeenKind = "et" | "et --predict never" | "ssh";

/**
 * Keystroke-to-glyph times (ms) on a pty client reaching the world through
 * a proxy that adds `delayMs` each way: `lines` command lines of 40 keys
 * typed `gapMs` apart (a fast typist), each key timed until its glyph
 * stands on the harness's screen where it belongs.
 */
export async function echoAsSeen(
  world: EtWorld,
  kind: SeenKind,
  options: { delayMs: number; lines: number; gapMs?: number },
): Promise<{ all: number[]; firstOfLine: number[] }> {
  const target = kind === "ssh" ? world.sshd.port : world.daemonPort;
  const proxy = await FaultProxy.start({ targetPort: target });
  proxy.setDelay(options.delayMs);
  const argv = kind === "ssh"
    ? [
      ...world.sshd.sshCommand.split(" "),
      "-tt",
      "-p",
      String(proxy.port),
      world.sshd.hostAlias,
    ]
    : world.client(
      kind === "et" ? [] : ["--predict", "never"],
      { port: proxy.port },
    );
  const client = await PtyClient.start(argv);
  const all: number[] = [];
  const firstOfLine: number[] = [];
  try {
    await shellAnswers(client);
    await shellAnswers(client); // et learns the round trip from its echo
    for (let line = 0; line < options.lines; line++) {
      await client.type("clear\r");
      await client.until(
        () => /^[^\n]*[#$] *$/.test(client.text().trimEnd()),
        10_000,
      );
      await sleep(200);
      const { row, col } = client.screen.cursor();
      const keys = `: line ${line} abcdefghijklnopqrstuvwxyz-0123`.slice(0, 40);
      for (let i = 0; i < keys.length; i++) {
        const glyph = keys[i] === " " ? "" : keys[i];
        const typed = performance.now();
        await client.type(keys[i]);
        const shown = await client.until(
          () => client.screen.cellText(row, col + i) === glyph,
          10_000,
        );
        (i === 0 ? firstOfLine : all).push(shown - typed);
        const rest = typed + (options.gapMs ?? 70) - performance.now();
        if (rest > 0) await sleep(rest);
      }
      await client.type("\r");
      await sleep(4 * options.delayMs);
    }
  } finally {
    await client.close();
    await proxy.close();
  }
  return { all: [...firstOfLine, ...all], firstOfLine };
}

/** CPU time (user + system) a process has used so far, in ms. */
async function cpuMs(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 (1-based), in clock ticks (100/s).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** What {@linkcode ptyBulk} measured. */
export interface PtyBulk {
  /** MB/s from the first file byte to the end marker. */
  mbPerSecond: number;
  /** CPU the client used meanwhile, ms per MB (load-independent cost). */
  cpuMsPerMb: number;
}

/**
 * Bulk throughput of `cat file` to a pty client connected straight to the
 * daemon, with `extra` client arguments (timed from the first file byte to
 * the end marker, like the piped bulk benchmark), and the client's CPU time
 * per MB over the same stretch.
 */
export async function ptyBulk(
  world: EtWorld,
  extra: string[],
  file: string,
  bytes: number,
): Promise<PtyBulk> {
  const client = await PtyClient.start(world.client(extra));
  try {
    await shellAnswers(client);
    client.watching = false; // the harness only counts from here on
    const n = answers++;
    const start = client.marker(`@@P${n}_S@@`, 60_000);
    const end = client.marker(`@@P${n}_E@@`, 60_000 + bytes / 1000);
    const before = client.total;
    const cpuBefore = await cpuMs(client.pty.pid);
    await client.type(
      `stty raw -echo; printf '%s' '@@P${n}''_S@@'; cat ${file}; ` +
        `printf '%s' '@@P${n}''_E@@'; stty sane\r`,
    );
    const started = await start;
    const ended = await end;
    const cpu = await cpuMs(client.pty.pid) - cpuBefore;
    if (client.total - before < bytes) {
      throw new Error(`pty bulk: only ${client.total - before} bytes arrived`);
    }
    return {
      mbPerSecond: mbPerSecond(bytes, ended - started),
      cpuMsPerMb: cpu / (bytes / 1e6),
    };
  } finally {
    await client.close();
  }
}
