/**
 * Network attacks on a live daemon while a real session streams through
 * it: `et --no-pty host cat` runs through the fault proxy (the attacker's
 * place on the path) with a paced stream whose every chunk's echo is
 * timed, and meanwhile, one kind at a time:
 *
 * - **replay**: the client's first frames, recorded on the path (HELLO,
 *   AUTH, DATA), replayed on new connections to the daemon;
 * - **replay into the live connection**: recorded DATA frames inserted
 *   between the live connection's frames;
 * - **bit flip**: one bit flipped inside a sealed packet of the live
 *   connection, up or down;
 * - **wrong passkey**: a client process with the live session's id and a
 *   fresh random passkey runs the real handshake again and again;
 * - **guessing**: HELLOs naming random session ids, from many sources.
 *
 * Each must be refused (and logged where the protocol says), the session's
 * output must stay hash-exact and its echo under a second, and the
 * daemon's memory bounded. Used by tests/reliability/attacks_test.ts.
 *
 * @module
 */

import { FaultProxy } from "../helpers/fault_proxy.ts";
import { patternBytes, StreamHash } from "../helpers/session_pair.ts";
import { sleep } from "../e2e/_client.ts";
import type { EtWorld } from "../e2e/_world.ts";
import {
  FRAME,
  FRAME_HEADER_BYTES,
  FrameCutter,
  PACKET_HEADER_BYTES,
  PairWatch,
} from "./_frames.ts";
import { clientLog, countLines, daemonLog, terminalLogs } from "./_logs.ts";
import { daemonPidOf, rssOf, RssSampler } from "./_proc.ts";
import { StreamClient } from "./_stream_client.ts";
import { answerName, helloFrame, RawConnection } from "./_wire.ts";

const WRONG_KEY_CLIENT = new URL("./_wrong_key_client.ts", import.meta.url)
  .pathname;

/** Options of {@linkcode runAttacks}: how much of each attack. */
export interface AttackOptions {
  /** Recorded handshakes replayed on new connections. */
  replays: number;
  /** Recorded DATA frames inserted into the live connection. */
  injected: number;
  /** Bit flips in the live connection's sealed packets (half each way). */
  flips: number;
  /** Handshakes of the wrong-passkey client. */
  wrongKey: number;
  /** HELLOs with random session ids. */
  guesses: number;
  /**
   * Connections at once, for replays, wrong keys and guesses.
   * @default {16}
   */
  parallel?: number;
  /**
   * Longest wait after the attacks for the daemon's memory to come back
   * within {@linkcode RETURNED_WITHIN} of where it was, in ms.
   * @default {RETURN_WAIT_MS}
   */
  returnWaitMs?: number;
  /** Progress lines. */
  progress?: (line: string) => void;
}

/** What one attack did and what it got. */
export interface PhaseReport {
  name: string;
  /** Attempts made. */
  count: number;
  /** What the attacker got back, counted. */
  outcomes: Record<string, number>;
  /** Lines the session's ends or the daemon logged about it. */
  logged: number;
  /** Disconnects of the live session it caused (new connections). */
  reconnects: number;
  ms: number;
  /** Longest echo of the live stream during it, in ms. */
  echoMaxMs: number;
  /** Daemon RSS at its end, in bytes. */
  daemonRss: number;
}

/** What a run measured. */
export interface AttackReport {
  phases: PhaseReport[];
  /** Echo of the stream's chunks from the first attack to the end, in ms. */
  echo: { samples: number; p50: number; p99: number; max: number };
  stream: { bytes: number; sentHash: string; receivedHash: string };
  exitCode: number;
  /**
   * RSS in bytes: before the attacks (stream running), the peak, and after
   * them, once back within {@linkcode RETURNED_WITHIN} of before or
   * `returnWaitMs` passed (`returnedAfterMs`: how long that took).
   */
  daemonRss: {
    before: number;
    peak: number;
    after: number;
    returnedAfterMs: number;
  };
  terminalRss: { before: number; peak: number; after: number };
  /** Bytes the terminal's and the daemon's logs grew by during the attacks. */
  logGrowth: { terminal: number; daemon: number };
}

/** How close to its RSS before the attacks the daemon must come back. */
export const RETURNED_WITHIN = 16e6;
/** Longest wait for that after the attacks, in ms. */
export const RETURN_WAIT_MS = 40_000;

/** Bytes per echo chunk and its period. */
const ECHO_CHUNK = 16 * 1024;
const ECHO_EVERY_MS = 50;

/** Times the echo of a paced stream through `cat`. */
class EchoPump {
  readonly samples: number[] = [];
  readonly hash = new StreamHash();
  #client: StreamClient;
  #stopped = false;
  #running: Promise<void>;
  #pending = new Set<Promise<void>>();
  #error: unknown;

  constructor(client: StreamClient) {
    this.#client = client;
    this.#running = this.#run();
  }

  async #run() {
    let sent = 0;
    for (let i = 1; !this.#stopped; i++) {
      const chunk = patternBytes(ECHO_CHUNK, i);
      const at = performance.now();
      await this.#client.write(chunk);
      this.hash.update(chunk);
      sent += chunk.length;
      const back = this.#client.waitForBytes(sent, 60_000).then(
        () => void this.samples.push(performance.now() - at),
        (error) => void (this.#error ??= error),
      );
      this.#pending.add(back);
      back.finally(() => this.#pending.delete(back));
      const rest = at + ECHO_EVERY_MS - performance.now();
      if (rest > 0) await sleep(rest);
    }
  }

  /** The longest echo since sample `from`. */
  maxSince(from: number): number {
    return Math.max(0, ...this.samples.slice(from));
  }

  /** Stops sending and waits for every chunk's echo. */
  async stop() {
    this.#stopped = true;
    await this.#running;
    await Promise.all([...this.#pending]);
    if (this.#error) throw this.#error;
  }
}

/** A pending change to the live connection's next sealed packet. */
interface Action {
  up: boolean;
  apply: (frame: Uint8Array) => Uint8Array[];
  done: () => void;
}

/**
 * The attacker on the path: cuts the live connection's bytes into frames
 * and applies queued actions to the next sealed packet of a direction.
 */
class OnPath {
  #cutters = new Map<string, FrameCutter>();
  #actions: Action[] = [];
  /** Highest DATA sequence number forwarded, per direction. */
  #highest = { up: -1n, down: -1n };

  /** For FaultProxy.setRewrite. */
  rewrite = (chunk: Uint8Array, up: boolean, pair: number): Uint8Array => {
    const key = `${pair}${up ? "u" : "d"}`;
    let cutter = this.#cutters.get(key);
    if (!cutter) this.#cutters.set(key, cutter = new FrameCutter());
    const { frames, raw } = cutter.push(chunk);
    const out: Uint8Array[] = [];
    for (const frame of frames) {
      const type = frame[FRAME_HEADER_BYTES];
      // A DATA packet at or below the highest forwarded is a resend the
      // receiver may hold already (and drop unopened): not a fresh one.
      let fresh = type === FRAME.control;
      if (type === FRAME.data) {
        const seq = new DataView(frame.buffer, frame.byteOffset + 5, 8)
          .getBigUint64(0);
        const direction = up ? "up" : "down";
        fresh = seq > this.#highest[direction];
        if (fresh) this.#highest[direction] = seq;
      }
      const index = fresh ? this.#actions.findIndex((a) => a.up === up) : -1;
      if (index >= 0) {
        const [action] = this.#actions.splice(index, 1);
        out.push(...action.apply(frame));
        action.done();
      } else {
        out.push(frame);
      }
    }
    if (raw) out.push(raw);
    return concat(out);
  };

  /**
   * Applies `apply` to the next fresh sealed packet going `up` (or down):
   * a CONTROL, or a DATA never forwarded before.
   */
  next(
    up: boolean,
    apply: (frame: Uint8Array) => Uint8Array[],
  ): Promise<void> {
    return new Promise((done) => this.#actions.push({ up, apply, done }));
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Runs `task` `count` times, `parallel` at a time; outcomes counted. */
async function repeat(
  count: number,
  parallel: number,
  task: (i: number) => Promise<string>,
): Promise<Record<string, number>> {
  const outcomes: Record<string, number> = {};
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(parallel, count) }, async () => {
      while (next < count) {
        const outcome = await task(next++);
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      }
    }),
  );
  return outcomes;
}

/**
 * Lines of a rate-limited refusal log (the daemon's, a terminal's) for
 * `reason`, each counted with the ones it says were left out.
 */
export function refusalsLogged(log: string, reason: string): number {
  let total = 0;
  for (const line of log.split("\n")) {
    if (!line.includes(`refused ${reason}`)) continue;
    const more = line.match(/\(and (\d+) more "/);
    total += 1 + (more ? Number(more[1]) : 0);
  }
  return total;
}

/** Runs the attacks on a fresh session in `world` (privateRuntime). */
export async function runAttacks(
  world: EtWorld,
  options: AttackOptions,
): Promise<AttackReport> {
  const say = options.progress ?? (() => {});
  const parallel = options.parallel ?? 16;
  const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
  const watch = new PairWatch(proxy, { record: 16 });
  const onPath = new OnPath();
  proxy.setRewrite(onPath.rewrite);
  const daemonPid = await daemonPidOf(world);
  const client = new StreamClient([
    ...world.client(["--no-pty"], { port: proxy.port }),
    "cat",
  ]);
  let pump: EchoPump | undefined;
  let sampler: RssSampler | undefined;
  try {
    pump = new EchoPump(client);
    await client.waitForBytes(ECHO_CHUNK * 10, 60_000);
    const live = watch.newestAccepted()!;
    const sessionId = live.sessionId!;
    const recorded = watch.view(live.id).upFrames;
    const terminals = await world.sessionProcesses();
    if (terminals.length !== 1) {
      throw new Error(`${terminals.length} session processes`);
    }
    const terminalPid = terminals[0].pid;
    await sleep(2000);
    const before = {
      daemon: await rssOf(daemonPid),
      terminal: await rssOf(terminalPid),
    };
    const logSizes = async () => ({
      terminal: (await terminalLogs(world)).join("").length,
      daemon: (await daemonLog(world)).length,
    });
    const logsBefore = await logSizes();
    sampler = new RssSampler(() => [daemonPid, terminalPid], 50);
    const terminalLog = async () => (await terminalLogs(world)).join("");
    const phases: PhaseReport[] = [];
    const attackEchoFrom = pump.samples.length;

    /** Runs one attack and records its phase. */
    const phase = async (
      name: string,
      count: number,
      attack: () => Promise<Record<string, number>>,
      logged: () => Promise<number>,
    ) => {
      if (count === 0) {
        // Nothing to run, so nothing to wait for (its log reads alone
        // cost seconds): an empty phase.
        const report: PhaseReport = {
          name,
          count,
          outcomes: {},
          logged: 0,
          reconnects: 0,
          ms: 0,
          echoMaxMs: 0,
          daemonRss: await rssOf(daemonPid),
        };
        phases.push(report);
        say(`${name}: ${JSON.stringify(report)}`);
        return;
      }
      const echoFrom = pump!.samples.length;
      const pairsFrom = watch.newestAccepted()!.id;
      const loggedBefore = await logged();
      const started = performance.now();
      const outcomes = await attack();
      const ms = performance.now() - started;
      // Refusals are logged as they happen; give the last ones a moment.
      await sleep(1200);
      const report: PhaseReport = {
        name,
        count,
        outcomes,
        logged: (await logged()) - loggedBefore,
        reconnects: [...watch.views.values()].filter((v) =>
          v.id > pairsFrom && v.acceptedAt !== undefined &&
          v.sessionId === sessionId
        ).length,
        ms,
        echoMaxMs: pump!.maxSince(echoFrom),
        daemonRss: await rssOf(daemonPid),
      };
      phases.push(report);
      say(`${name}: ${JSON.stringify(report)}`);
    };

    // Replayed handshakes (and the data after them) on new connections.
    const hello = recorded[0];
    const rest = concat(recorded.slice(1));
    const replay = async () => {
      const conn = new RawConnection(world.daemonPort);
      await conn.send(hello);
      await conn.frames(1); // the CHALLENGE, fresh: the replay is stale
      await conn.send(rest);
      return answerName(await conn.answer());
    };
    // The terminal logs refusals of one kind at most once a second, the
    // next such line counting those left out: one more refusal after the
    // interval carries the count. The bad proofs logged so far, less the
    // refusals made here to read the count.
    let flushes = 0;
    const badProofsLogged = async () => {
      await sleep(1100);
      await replay();
      flushes++;
      return refusalsLogged(await terminalLog(), "bad proof") - flushes;
    };
    await phase(
      "replayed handshake and data on new connections",
      options.replays,
      () =>
        repeat(options.replays, parallel, replay),
      badProofsLogged,
    );

    // Recorded DATA frames slipped into the live connection.
    const oldData = recorded.filter((f) =>
      f[FRAME_HEADER_BYTES] === FRAME.data
    );
    await phase(
      "recorded DATA injected into the live connection",
      options.injected,
      async () => {
        for (let i = 0; i < options.injected; i++) {
          const frame = oldData[i % oldData.length];
          await onPath.next(true, (next) => [frame, next]);
          await sleep(20);
        }
        return { injected: options.injected };
      },
      // Dropped as duplicates: by design nothing to log.
      async () => countLines(await terminalLog(), /refused frame/),
    );

    // One bit flipped in a sealed packet, alternately up and down; each
    // time the next attempt waits for the client to be back.
    const flipped: Record<string, number> = {};
    await phase(
      "one bit flipped in a live sealed packet",
      options.flips,
      async () => {
        for (let i = 0; i < options.flips; i++) {
          const up = i % 2 === 0;
          const liveId = watch.newestAccepted()!.id;
          await onPath.next(up, (frame) => {
            const sealed = FRAME_HEADER_BYTES + PACKET_HEADER_BYTES;
            const at = sealed +
              Math.floor(Math.random() * (frame.length - sealed));
            frame[at] ^= 1 << Math.floor(Math.random() * 8);
            const kind = frame[FRAME_HEADER_BYTES] === FRAME.data
              ? "DATA"
              : "CONTROL";
            const key = `${up ? "up" : "down"} ${kind}`;
            flipped[key] = (flipped[key] ?? 0) + 1;
            return [frame];
          });
          const deadline = performance.now() + 5000;
          while (
            watch.newestAccepted()!.id === liveId &&
            performance.now() < deadline
          ) {
            await watch.changed(100);
          }
          // Let the resend after the resume pass before the next flip.
          await sleep(300);
        }
        return flipped;
      },
      async () =>
        countLines(
          await terminalLog(),
          /refused frame: .*failed authentication/,
        ) +
        countLines(
          await clientLog(world),
          /refused frame: .*failed authentication/,
        ),
    );

    // A client with the live id and a fresh random passkey.
    await phase(
      "wrong passkey for the live session id",
      options.wrongKey,
      async () => {
        const output = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            WRONG_KEY_CLIENT,
            String(world.daemonPort),
            sessionId,
            String(options.wrongKey),
            String(Math.min(parallel, 8)),
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(output.stdout).trim();
        if (!output.success) {
          throw new Error(
            `wrong-key client failed: ${
              new TextDecoder().decode(output.stderr)
            }`,
          );
        }
        return JSON.parse(text.split("\n").at(-1)!).outcomes;
      },
      badProofsLogged,
    );

    // Random session ids, from 50 source addresses.
    await phase(
      "HELLOs with random session ids",
      options.guesses,
      () =>
        repeat(options.guesses, parallel * 4, async (i) => {
          const id = Array.from(
            crypto.getRandomValues(new Uint8Array(16)),
            (b) => b.toString(16).padStart(2, "0"),
          ).join("");
          const conn = new RawConnection(
            world.daemonPort,
            `127.0.7.${i % 50 + 1}`,
          );
          await conn.send(helloFrame(id));
          return answerName(await conn.answer());
        }),
      // The daemon's log is read once it is flushed, below.
      () => Promise.resolve(0),
    );

    // V8 gives memory back after a quiet spell: wait (bounded) for it.
    const quietFrom = performance.now();
    await sleep(1000);
    while (
      (await rssOf(daemonPid)) > before.daemon + RETURNED_WITHIN &&
      performance.now() - quietFrom < (options.returnWaitMs ?? RETURN_WAIT_MS)
    ) {
      await sleep(500);
    }
    const returnedAfterMs = performance.now() - quietFrom;
    sampler.stop();
    const after = {
      daemon: await rssOf(daemonPid),
      terminal: await rssOf(terminalPid),
    };
    // The daemon logs refusals of unknown ids at most once a second,
    // counting the rest on its next such line: one more refusal after the
    // interval carries the count. Its log (a pipe into a file) is complete
    // once it exits: restart it (the session, handed over, is not touched).
    const flush = new RawConnection(world.daemonPort);
    await flush.send(helloFrame("00".repeat(16)));
    await flush.answer();
    await world.restartDaemon("SIGTERM");
    const guessing = phases.find((p) => p.name.startsWith("HELLOs"))!;
    guessing.logged =
      refusalsLogged(await daemonLog(world), "unknown session") -
      1;
    const logsAfter = await logSizes();
    await pump.stop();
    const sent = pump.hash.size;
    const sentHash = pump.hash.digest();
    await client.endInput();
    const exitCode = await client.exit(30_000);
    // The echo from the first attack on (before it: the session's start).
    const sorted = pump.samples.slice(attackEchoFrom).sort((a, b) => a - b);
    const at = (p: number) =>
      sorted[
        Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)
      ];
    return {
      phases,
      echo: {
        samples: sorted.length,
        p50: at(50),
        p99: at(99),
        max: sorted.at(-1)!,
      },
      stream: { bytes: sent, sentHash, receivedHash: client.digest() },
      exitCode,
      daemonRss: {
        before: before.daemon,
        peak: sampler.peak(daemonPid),
        after: after.daemon,
        returnedAfterMs,
      },
      terminalRss: {
        before: before.terminal,
        peak: sampler.peak(terminalPid),
        after: after.terminal,
      },
      logGrowth: {
        terminal: logsAfter.terminal - logsBefore.terminal,
        daemon: logsAfter.daemon - logsBefore.daemon,
      },
    };
  } finally {
    sampler?.stop();
    watch.stop();
    proxy.setRewrite(null);
    await client.close();
    await proxy.close();
  }
}
