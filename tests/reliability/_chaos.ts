/**
 * Chaos through a real session: `et --no-pty <host> cat` through the fault
 * proxy, a known stream written to the client's stdin and read back from
 * its stdout (what went up equals what came back down), while the proxy
 * forces disconnects of the live, authenticated connection: TCP resets,
 * silent blackholes of 0.1–10 s, and half-open paths (one direction dead,
 * the other flowing). Used by tests/reliability/chaos_test.ts (a bounded
 * subset) and `deno task chaos` (1000 disconnects on 100 MB).
 *
 * Each fault waits until the connection the client uses has finished its
 * handshake and carried data, so every fault is a disconnect of a live
 * session in the middle of the stream, never a blow at a path already down.
 *
 * @module
 */

import { FaultProxy, type HalfOpenDirection } from "../helpers/fault_proxy.ts";
import { patternBytes } from "../helpers/session_pair.ts";
import { sha256, sleep } from "../e2e/_client.ts";
import type { EtWorld } from "../e2e/_world.ts";
import { PairWatch } from "./_frames.ts";
import { daemonPidOf, rssOf, RssSampler } from "./_proc.ts";
import { StreamClient } from "./_stream_client.ts";
import { logTail, terminalLogs } from "./_logs.ts";
import { seeded } from "../helpers/seeded.ts";

/** How many disconnects of each kind a run forces. */
export interface ChaosMix {
  /** TCP resets of both ends (`FaultProxy.cut`). */
  cut: number;
  /**
   * Silent paths: every byte of the live pair dropped for good, new
   * connections silent for a duration drawn from `blackholeMs`; the ends
   * must notice by themselves (6 s without a byte).
   */
  blackhole: number;
  /** One direction of the live pair dropped for good, the other flowing. */
  halfOpen: number;
}

/** Options of {@linkcode runChaos}. */
export interface ChaosRunOptions {
  /** Bytes of the stream (each way). */
  bytes: number;
  mix: ChaosMix;
  /** Shortest and longest blackhole for new connections, in ms. */
  blackholeMs: [number, number];
  /** Seed of the data and of the order of the faults. */
  seed: number;
  /** Longest time without a new authenticated connection, in ms. */
  stallMs?: number;
  /**
   * Longest wait after the stream for the memory to come back near its
   * earlier level before it is read, in ms.
   * @default {25_000}
   */
  settleMs?: number;
  /** Progress lines. */
  progress?: (line: string) => void;
}

/** What a run measured. */
export interface ChaosReport {
  bytes: number;
  /** Bytes back on the client's stdout (must equal bytes + the alive probe). */
  received: number;
  /** sha256 of what went up and of what came down. */
  sentHash: string;
  receivedHash: string;
  /** Disconnects forced, by kind (half-open split by dead direction). */
  forced: Record<string, number>;
  /** Disconnect reasons the client logged, counted. */
  clientSaw: Record<string, number>;
  /** TCP connections the client made through the proxy. */
  connections: number;
  /** Blackhole durations used, in ms. */
  blackholeMs: number[];
  durationMs: number;
  /** How long after the stream the memory was read (see settleMs). */
  settledAfterMs: number;
  /**
   * RSS in bytes: before the faults (after the first piece came back),
   * warm (after a tenth of the faults: buffers and heap grown to the
   * stream), the peak during, and at the end (once within SETTLED_WITHIN
   * of before, for the terminal of warm, or settleMs after).
   */
  daemonRss: Rss;
  terminalRss: Rss;
  /** The session answered after the run, and exited 0 at its stdin's EOF. */
  aliveAfter: boolean;
  exitCode: number;
}

/** RSS of one process at the points of a run, in bytes. */
export interface Rss {
  before: number;
  warm: number;
  peak: number;
  after: number;
}

type Fault =
  | { kind: "cut" }
  | { kind: "blackhole"; ms: number }
  | { kind: "half-open"; direction: HalfOpenDirection };

/**
 * The faults of a run in a seeded order: the kinds shuffled, blackhole
 * durations spread evenly over the range (its ends included), half-open
 * directions alternating.
 */
export function faultSchedule(
  mix: ChaosMix,
  blackholeMs: [number, number],
  seed: number,
): Fault[] {
  const random = seeded(seed);
  const faults: Fault[] = [];
  for (let i = 0; i < mix.cut; i++) faults.push({ kind: "cut" });
  const [min, max] = blackholeMs;
  for (let i = 0; i < mix.blackhole; i++) {
    const ms = mix.blackhole === 1
      ? max
      : min + (max - min) * i / (mix.blackhole - 1);
    faults.push({ kind: "blackhole", ms: Math.round(ms) });
  }
  for (let i = 0; i < mix.halfOpen; i++) {
    faults.push({ kind: "half-open", direction: i % 2 === 0 ? "up" : "down" });
  }
  for (let i = faults.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [faults[i], faults[j]] = [faults[j], faults[i]];
  }
  return faults;
}

/** Name of a fault in the report. */
function faultName(fault: Fault): string {
  return fault.kind === "half-open"
    ? `half-open (${fault.direction} dead)`
    : fault.kind;
}

/** Bytes written ahead of the faults (pieces released before they are due). */
const LEAD_PIECES = 3;
/** Bytes of DATA the live connection carries down before the next fault. */
const DATA_BEFORE_FAULT = 16 * 1024;
/** Longest wait for that data, in ms (the stream may be between pieces). */
const DATA_WAIT_MS = 300;
/** How near its earlier RSS a process must come back after the stream. */
const SETTLED_WITHIN = 8e6;
/** Longest wait for that, in ms (V8 shrinks after ~10-20 s of quiet). */
const SETTLE_WAIT_MS = 25_000;
/** Bytes of the probe that shows the session alive after the run. */
const PROBE_BYTES = 64 * 1024;

/**
 * Runs the chaos on a fresh `et --no-pty <host> cat` session in `world`,
 * through a fault proxy of its own; always tears the client and proxy down.
 */
export async function runChaos(
  world: EtWorld,
  options: ChaosRunOptions,
): Promise<ChaosReport> {
  const say = options.progress ?? (() => {});
  const schedule = faultSchedule(
    options.mix,
    options.blackholeMs,
    options.seed,
  );
  const pieces = schedule.length;
  const pieceBytes = Math.ceil(options.bytes / pieces);
  const up = patternBytes(options.bytes + PROBE_BYTES, options.seed);
  const sentHash = sha256(up);
  const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
  const watch = new PairWatch(proxy);
  const daemonPid = await daemonPidOf(world);
  const client = new StreamClient([
    ...world.client(["--no-pty"], { port: proxy.port }),
    "cat",
  ]);
  const forced: Record<string, number> = {};
  const blackholes: number[] = [];
  let faultsDone = 0;
  let sampler: RssSampler | undefined;
  const started = performance.now();
  try {
    // The first piece back: the session is up (its terminal exists).
    await client.write(up.subarray(0, pieceBytes));
    await client.waitForBytes(pieceBytes, 60_000);
    const terminals = await world.sessionProcesses();
    if (terminals.length !== 1) {
      throw new Error(`${terminals.length} session processes`);
    }
    const terminalPid = terminals[0].pid;
    const before = {
      daemon: await rssOf(daemonPid),
      terminal: await rssOf(terminalPid),
    };
    sampler = new RssSampler(() => [daemonPid, terminalPid], 200);

    // The writer: piece i goes once i - LEAD_PIECES faults are done.
    let writeError: unknown;
    const writing = (async () => {
      for (let i = 1; i < pieces; i++) {
        while (faultsDone < i - LEAD_PIECES) await sleep(5);
        const end = Math.min(options.bytes, (i + 1) * pieceBytes);
        if (i * pieceBytes >= end) break;
        await client.write(up.subarray(i * pieceBytes, end));
      }
    })().catch((error) => writeError = error);

    const warmAt = Math.ceil(pieces / 10);
    const warm = { daemon: NaN, terminal: NaN };
    let lastPair = 0;
    for (const fault of schedule) {
      if (faultsDone === warmAt) {
        warm.daemon = await rssOf(daemonPid);
        warm.terminal = await rssOf(terminalPid);
      }
      if (writeError) throw writeError;
      // Wait for a connection newer than the last one hit to be
      // authenticated, then for it to carry some of the stream.
      const waitedFrom = performance.now();
      let live = watch.newestAccepted();
      while (!live || live.id <= lastPair) {
        if (performance.now() - waitedFrom > (options.stallMs ?? 45_000)) {
          throw new Error(
            `no new connection within ${
              options.stallMs ?? 45_000
            } ms after ${faultsDone} faults (last: ${
              faultName(schedule[faultsDone - 1])
            }); ${await describe(world, client, proxy)}`,
          );
        }
        await watch.changed(200);
        live = watch.newestAccepted();
      }
      const dataFrom = live.dataBytesDown;
      const dataDeadline = performance.now() + DATA_WAIT_MS;
      while (
        live.dataBytesDown - dataFrom < DATA_BEFORE_FAULT &&
        performance.now() < dataDeadline
      ) {
        await watch.changed(50);
      }
      lastPair = live.id;
      const name = faultName(fault);
      forced[name] = (forced[name] ?? 0) + 1;
      if (fault.kind === "cut") {
        proxy.cut();
      } else if (fault.kind === "half-open") {
        // Only the pairs open now: the client's next dial finds a path.
        proxy.setHalfOpen(fault.direction);
        proxy.setHalfOpen(null);
      } else {
        blackholes.push(fault.ms);
        proxy.setBlackhole(true);
        await sleep(fault.ms);
        proxy.setBlackhole(false);
      }
      faultsDone++;
      if (faultsDone % 50 === 0 || fault.kind !== "cut") {
        say(
          `${faultsDone}/${pieces} faults (${name}), ${client.bytes} of ${options.bytes} bytes back, ${
            ((performance.now() - started) / 1000).toFixed(0)
          } s`,
        );
      }
    }
    await writing;
    if (writeError) throw writeError;
    await client.waitForBytes(options.bytes, 120_000).catch(async (error) => {
      throw new Error(
        `${(error as Error).message}; ${await describe(world, client, proxy)}`,
      );
    });
    const durationMs = performance.now() - started;
    // Memory once the stream is over: V8 gives memory back after a quiet
    // spell, so wait (bounded) until both are back near where they were.
    const quietFrom = performance.now();
    let after = { daemon: NaN, terminal: NaN };
    do {
      await sleep(1000);
      after = {
        daemon: await rssOf(daemonPid),
        terminal: await rssOf(terminalPid),
      };
    } while (
      (after.daemon > before.daemon + SETTLED_WITHIN ||
        after.terminal > warm.terminal + SETTLED_WITHIN) &&
      performance.now() - quietFrom < (options.settleMs ?? SETTLE_WAIT_MS)
    );
    const settledAfterMs = performance.now() - quietFrom;
    sampler.stop();
    // Alive: one more piece goes up and comes back at once.
    await client.write(up.subarray(options.bytes));
    let aliveAfter = true;
    await client.waitForBytes(options.bytes + PROBE_BYTES, 10_000).catch(
      () => aliveAfter = false,
    );
    await client.endInput();
    const exitCode = await client.exit(30_000);
    const clientLog = await Deno.readTextFile(`${world.dir}/client.log`)
      .catch(() => "");
    return {
      bytes: options.bytes,
      received: client.bytes,
      sentHash,
      receivedHash: client.digest(),
      forced,
      clientSaw: disconnectReasons(clientLog),
      connections: proxy.stats.accepted,
      blackholeMs: blackholes,
      durationMs,
      settledAfterMs,
      daemonRss: {
        before: before.daemon,
        warm: warm.daemon,
        peak: sampler.peak(daemonPid),
        after: after.daemon,
      },
      terminalRss: {
        before: before.terminal,
        warm: warm.terminal,
        peak: sampler.peak(terminalPid),
        after: after.terminal,
      },
      aliveAfter,
      exitCode,
    };
  } finally {
    sampler?.stop();
    watch.stop();
    await client.close();
    await proxy.close();
  }
}

/**
 * The client log's `disconnected: <reason>` lines, counted by reason
 * (numbers replaced by N).
 */
export function disconnectReasons(log: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const match of log.matchAll(/disconnected: (.*)$/gm)) {
    const reason = match[1].replace(/\d+(\.\d+)?/g, "N");
    counts[reason] = (counts[reason] ?? 0) + 1;
  }
  return counts;
}

/** The state of a stuck run, for its error message. */
async function describe(
  world: EtWorld,
  client: StreamClient,
  proxy: FaultProxy,
): Promise<string> {
  const terminal = (await terminalLogs(world)).map((log) => logTail(log, 15))
    .join("\n");
  const clientLog = await Deno.readTextFile(`${world.dir}/client.log`)
    .catch(() => "");
  return `client: ${client.bytes} bytes back, exited ${client.exited} (${client.code}); ` +
    `proxy: ${JSON.stringify(proxy.stats)} pairs ${proxy.pairs.length}; ` +
    `client stderr: ${client.stderr.slice(-300)}\n` +
    `client log tail:\n${
      logTail(clientLog, 15)
    }\nterminal log tail:\n${terminal}`;
}
