/**
 * Load on one daemon: N real `et --no-pty` sessions at once, each streaming
 * a known output (`seq 1 ...` for T seconds) hash-checked at its client,
 * then some of them left idle and connected. Measures aggregate
 * throughput, memory per session and of the daemon, CPU seconds per role
 * while streaming, and idle CPU per process. Used by
 * tests/reliability/load_test.ts (20 sessions) and `deno task soak`
 * (100 sessions for 60 s).
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { sleep } from "../e2e/_client.ts";
import type { EtWorld } from "../e2e/_world.ts";
import { cpuSecondsOf, daemonPidOf, rssOf, RssSampler } from "./_proc.ts";
import { StreamClient } from "./_stream_client.ts";

/** Options of {@linkcode runLoad}. */
export interface LoadOptions {
  /** Sessions streaming at once. */
  sessions: number;
  /** How long each streams, in seconds. */
  seconds: number;
  /** Sessions kept connected and idle afterwards. */
  idleSessions: number;
  /** How long the idle ones are measured, in seconds. */
  idleSeconds: number;
  /**
   * Sessions started at once (each is an ssh login and two Deno starts).
   * @default {4}
   */
  startConcurrency?: number;
  /** Progress lines. */
  progress?: (line: string) => void;
}

/** A spread of per-process values. */
export interface Spread {
  min: number;
  median: number;
  max: number;
  sum: number;
}

/** What a load run measured. */
export interface LoadReport {
  sessions: number;
  seconds: number;
  /** Time to start every session (all waiting for the go), in ms. */
  startMs: number;
  /** Bytes received by all clients, and per session. */
  bytes: number;
  bytesPerSession: Spread;
  /** From the go to the last stream's end, in ms. */
  streamMs: number;
  /** Aggregate MB/s (10^6 bytes) over streamMs. */
  aggregateMBps: number;
  /** Sessions whose stdout hash matched the expected `seq` prefix. */
  hashesMatched: number;
  /** Sessions whose did not (their index and byte count). */
  mismatches: { session: number; bytes: number }[];
  /** Exit codes of the clients, counted. */
  exitCodes: Record<string, number>;
  /** RSS in bytes: daemon before the sessions, with them idle, peak, at the end. */
  daemonRss: { before: number; started: number; peak: number; after: number };
  /** RSS per terminal and per client after streaming, and their peaks. */
  terminalRss: Spread;
  terminalPeakRss: Spread;
  clientRss: Spread;
  /** CPU seconds used during the streaming window, per role. */
  cpu: { daemon: number; terminals: Spread; clients: Spread };
  /** Idle: % of one core per process over idleSeconds. */
  idle: {
    sessions: number;
    seconds: number;
    terminalsPct: Spread;
    clientsPct: Spread;
    daemonPct: number;
  };
}

/** The command each session runs: ready, wait for go, stream, idle. */
function sessionCommand(seconds: number): string {
  return `echo READY >&2; read go; timeout ${seconds} seq 1 1000000000000; ` +
    `echo STREAM-END >&2; read idle; echo BYE >&2`;
}

/** Spread of `values`. */
export function spread(values: number[]): Spread {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return { min: NaN, median: NaN, max: NaN, sum: 0 };
  const mid = Math.floor(sorted.length / 2);
  return {
    min: sorted[0],
    median: sorted.length % 2
      ? sorted[mid]
      : (sorted[mid - 1] + sorted[mid]) / 2,
    max: sorted[sorted.length - 1],
    sum: sorted.reduce((a, b) => a + b, 0),
  };
}

/**
 * sha256 of the first `lengths[i]` bytes of `seq 1 ...`'s output, for each
 * i: one pass over the longest prefix, the hash state copied at each
 * length.
 */
export function seqPrefixHashes(lengths: number[]): string[] {
  const order = lengths.map((length, i) => ({ length, i }))
    .sort((a, b) => a.length - b.length);
  const out: string[] = new Array(lengths.length);
  const hash: Hash = createHash("sha256");
  const encoder = new TextEncoder();
  let done = 0; // bytes of seq's output fed to hash
  let next = 1;
  let k = 0;
  while (k < order.length) {
    // A block of lines at a time.
    let text = "";
    for (let j = 0; j < 4096; j++) text += `${next++}\n`;
    const block = encoder.encode(text);
    const blockStart = done;
    let at = 0;
    while (k < order.length && order[k].length <= blockStart + block.length) {
      const cut = order[k].length - blockStart;
      hash.update(block.subarray(at, cut));
      at = cut;
      out[order[k].i] = hash.copy().digest("hex");
      k++;
    }
    hash.update(block.subarray(at));
    done = blockStart + block.length;
  }
  return out;
}

/** Resolves once no client got stdout for `ms`. */
async function waitQuiet(clients: StreamClient[], ms: number): Promise<void> {
  while (true) {
    const last = Math.max(...clients.map((c) => c.lastOutputAt));
    const quiet = performance.now() - last;
    if (quiet >= ms) return;
    await sleep(ms - quiet);
  }
}

/** Runs `task` over `items`, at most `limit` at a time. */
async function pool<T>(
  items: T[],
  limit: number,
  task: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await task(items[next++]);
    }),
  );
}

/** Runs the load in `world`; always ends every client it started. */
export async function runLoad(
  world: EtWorld,
  options: LoadOptions,
): Promise<LoadReport> {
  const say = options.progress ?? (() => {});
  const daemonPid = await daemonPidOf(world);
  const daemonBefore = await rssOf(daemonPid);
  const clients: StreamClient[] = [];
  let sampler: RssSampler | undefined;
  try {
    // Start every session, a few at a time; each says READY on stderr.
    const started = performance.now();
    await pool(
      Array.from({ length: options.sessions }, (_, i) => i),
      options.startConcurrency ?? 4,
      async (i) => {
        const client = new StreamClient([
          ...world.client(["--no-pty", "--connect-timeout", "120s"]),
          sessionCommand(options.seconds),
        ]);
        clients[i] = client;
        await client.waitForStderr("READY", 120_000);
        if ((i + 1) % 10 === 0) say(`${i + 1} sessions up`);
      },
    );
    const startMs = performance.now() - started;
    const sessions = await world.sessionProcesses();
    if (sessions.length !== options.sessions) {
      throw new Error(
        `${sessions.length} sessions found for ${options.sessions} started`,
      );
    }
    // The processes that hold them: the user's one host holds them all.
    const terminalPids = [...new Set(sessions.map((p) => p.pid))];
    say(
      `${options.sessions} sessions up in ${(startMs / 1000).toFixed(1)} s`,
    );
    await sleep(1000);
    const daemonStarted = await rssOf(daemonPid);
    const clientPids = clients.map((c) => c.pid);
    sampler = new RssSampler(
      () => [daemonPid, ...terminalPids, ...clientPids],
      500,
    );
    const cpuOf = (pids: number[]) => Promise.all(pids.map(cpuSecondsOf));
    const cpuBefore = {
      daemon: await cpuSecondsOf(daemonPid),
      terminals: await cpuOf(terminalPids),
      clients: await cpuOf(clientPids),
    };

    // Go: every session streams for `seconds`.
    const go = performance.now();
    await Promise.all(clients.map((c) => c.write("\n")));
    await Promise.all(
      clients.map((c) =>
        c.waitForStderr("STREAM-END", options.seconds * 1000 + 120_000)
      ),
    );
    const cpuAfter = {
      daemon: await cpuSecondsOf(daemonPid),
      terminals: await cpuOf(terminalPids),
      clients: await cpuOf(clientPids),
    };
    // The marker travels on stderr's channel, stdout's last bytes may be
    // behind it: wait until stdout has been quiet for a second.
    await waitQuiet(clients, 1000);
    const streamMs = Math.max(...clients.map((c) => c.lastOutputAt)) - go;
    say(`streamed in ${(streamMs / 1000).toFixed(1)} s`);
    const terminalRss = await Promise.all(terminalPids.map(rssOf));
    const clientRss = await Promise.all(clientPids.map(rssOf));

    // Idle: all but idleSessions end; the rest stay connected, silent.
    const ending = clients.slice(options.idleSessions);
    const idle = clients.slice(0, options.idleSessions);
    await Promise.all(ending.map((c) => c.write("\n")));
    const endCodes = await Promise.all(ending.map((c) => c.exit(60_000)));
    await sleep(2000);
    const idleTerminals = [
      ...new Set((await world.sessionProcesses()).map((p) => p.pid)),
    ];
    const idleClients = idle.map((c) => c.pid);
    const idleBefore = {
      daemon: await cpuSecondsOf(daemonPid),
      terminals: await cpuOf(idleTerminals),
      clients: await cpuOf(idleClients),
    };
    await sleep(options.idleSeconds * 1000);
    const idleAfter = {
      daemon: await cpuSecondsOf(daemonPid),
      terminals: await cpuOf(idleTerminals),
      clients: await cpuOf(idleClients),
    };
    const pct = (after: number[], before: number[]) =>
      after.map((a, i) => (a - before[i]) / options.idleSeconds * 100);
    await Promise.all(idle.map((c) => c.write("\n")));
    const idleCodes = await Promise.all(idle.map((c) => c.exit(60_000)));
    sampler.stop();
    const daemonAfter = await rssOf(daemonPid);

    // Each client's stdout must be exactly a prefix of seq's output.
    const byteCounts = clients.map((c) => c.bytes);
    const bytes = byteCounts.reduce((a, b) => a + b, 0);
    const expected = seqPrefixHashes(byteCounts);
    const mismatches: { session: number; bytes: number }[] = [];
    let hashesMatched = 0;
    clients.forEach((c, i) => {
      if (c.digest() === expected[i]) hashesMatched++;
      else mismatches.push({ session: i, bytes: byteCounts[i] });
    });
    const exitCodes: Record<string, number> = {};
    for (const code of [...endCodes, ...idleCodes]) {
      exitCodes[code] = (exitCodes[code] ?? 0) + 1;
    }
    const delta = (after: number[], before: number[]) =>
      after.map((a, i) => a - before[i]);
    return {
      sessions: options.sessions,
      seconds: options.seconds,
      startMs,
      bytes,
      bytesPerSession: spread(byteCounts),
      streamMs,
      aggregateMBps: bytes / 1e6 / (streamMs / 1000),
      hashesMatched,
      mismatches,
      exitCodes,
      daemonRss: {
        before: daemonBefore,
        started: daemonStarted,
        peak: sampler.peak(daemonPid),
        after: daemonAfter,
      },
      terminalRss: spread(terminalRss),
      terminalPeakRss: spread(terminalPids.map((pid) => sampler!.peak(pid))),
      clientRss: spread(clientRss),
      cpu: {
        daemon: cpuAfter.daemon - cpuBefore.daemon,
        terminals: spread(delta(cpuAfter.terminals, cpuBefore.terminals)),
        clients: spread(delta(cpuAfter.clients, cpuBefore.clients)),
      },
      idle: {
        sessions: idle.length,
        seconds: options.idleSeconds,
        terminalsPct: spread(pct(idleAfter.terminals, idleBefore.terminals)),
        clientsPct: spread(pct(idleAfter.clients, idleBefore.clients)),
        daemonPct: (idleAfter.daemon - idleBefore.daemon) /
          options.idleSeconds * 100,
      },
    };
  } finally {
    sampler?.stop();
    await Promise.all(clients.filter(Boolean).map((c) => c.close()));
  }
}

/** A report's lines for people (the test prints them, the soak too). */
export function describeLoad(r: LoadReport): string[] {
  const m = (bytes: number) => (bytes / 1e6).toFixed(1);
  const s = (x: Spread, f: (n: number) => string) =>
    `median ${f(x.median)}, min ${f(x.min)}, max ${f(x.max)}`;
  return [
    `${r.sessions} sessions started in ${(r.startMs / 1000).toFixed(1)} s`,
    `streamed ${m(r.bytes)} MB in ${(r.streamMs / 1000).toFixed(1)} s: ` +
    `${r.aggregateMBps.toFixed(1)} MB/s aggregate; per session ${
      s(r.bytesPerSession, m)
    } MB`,
    `hashes matched ${r.hashesMatched}/${r.sessions}; exit codes ${
      JSON.stringify(r.exitCodes)
    }`,
    `RSS daemon: before ${m(r.daemonRss.before)}, with sessions ${
      m(r.daemonRss.started)
    }, peak ${m(r.daemonRss.peak)}, after ${m(r.daemonRss.after)} MB`,
    `RSS per terminal after streaming: ${s(r.terminalRss, m)} MB (peak ${
      s(r.terminalPeakRss, m)
    } MB); per client: ${s(r.clientRss, m)} MB`,
    `CPU while streaming: daemon ${r.cpu.daemon.toFixed(2)} s; terminals ${
      r.cpu.terminals.sum.toFixed(1)
    } s in all (${s(r.cpu.terminals, (n) => n.toFixed(2))} s each); clients ${
      r.cpu.clients.sum.toFixed(1)
    } s in all (${s(r.cpu.clients, (n) => n.toFixed(2))} s each)`,
    `idle (${r.idle.sessions} sessions, ${r.idle.seconds} s): terminal ${
      s(r.idle.terminalsPct, (n) => n.toFixed(2))
    } % of a core; client ${
      s(r.idle.clientsPct, (n) => n.toFixed(2))
    } %; daemon ${r.idle.daemonPct.toFixed(2)} %`,
  ];
}
