/**
 * `deno task bench`: measures `et` beside raw TCP and `ssh -tt` on this
 * machine, in one run, and prints one result line per measurement on stdout
 * (progress goes to stderr):
 *
 * ```
 * transport: <et> MB/s, raw tcp: <raw> MB/s, ratio <r>
 * transport idle memory: <bytes> bytes per connection (rss), heap <bytes> ...
 * bulk: et <x> MB/s, ssh <y> MB/s, ratio <r>
 * echo latency: et p50 <a> ms p99 <b> ms, ssh p50 <c> ms p99 <d> ms
 * connect: et <a> ms, ssh <b> ms
 * resume: <ms> ms after the path returns (...)
 * echo as seen: at 100 ms each way, et p50 <a> ms p99 <b> ms, ...
 * model cost: pty bulk et <x> MB/s, --predict never <y> MB/s, cost <c> %
 * memory: daemon idle <x> MB, after bulk <y> MB; terminal idle ...
 * ```
 *
 * MB is 10^6 bytes everywhere. `--quick` shrinks every size for a smoke run.
 * The end-to-end part runs a private sshd and an `et server` from source
 * (tests/e2e/_world.ts); everything started is stopped before exit.
 *
 * @module
 */

import { configureLog } from "../src/log.ts";
import { type EtWorld, startWorld } from "../tests/e2e/_world.ts";
import {
  bulkThroughput,
  closeAllClients,
  connectTime,
  daemonPid,
  echoLatencies,
  endSession,
  makeDataFile,
  resumeTimes,
  sessionMemory,
  startSession,
  terminalPids,
} from "./bench/e2e.ts";
import {
  eternalThroughput,
  idleMemory,
  rawTcpThroughput,
} from "./bench/transport.ts";
import {
  fixed,
  median,
  megabytes,
  percentile,
  progress,
  sleep,
} from "./bench/util.ts";
import type { WatchedProcess } from "./bench/watched.ts";
import {
  echoAsSeen,
  type PtyBulk,
  ptyBulk,
  type SeenKind,
} from "./bench/predict.ts";

/** Sizes and counts of one run. */
interface Plan {
  transportBytes: number;
  transportRuns: number;
  idlePairs: number;
  bulkBytes: number;
  bulkRuns: number;
  echoKeys: number;
  connectRuns: number;
  resumeRuns: number;
  /** Command lines of 40 keys typed per client for "echo as seen". */
  seenLines: number;
  /** Runs of each pty bulk for "model cost". */
  modelRuns: number;
  refuseMs: number;
  blackholeMs: number;
}

const FULL: Plan = {
  transportBytes: 500e6,
  transportRuns: 3,
  idlePairs: 200,
  bulkBytes: 200e6,
  bulkRuns: 3,
  echoKeys: 200,
  connectRuns: 5,
  resumeRuns: 3,
  seenLines: 3,
  modelRuns: 3,
  refuseMs: 2000,
  // Longer than the 6 s after which a silent pipe is declared dead, so both
  // ends really give the old path up and the client must dial anew.
  blackholeMs: 8000,
};

const QUICK: Plan = {
  transportBytes: 20e6,
  transportRuns: 3,
  idlePairs: 50,
  bulkBytes: 20e6,
  bulkRuns: 3,
  echoKeys: 40,
  connectRuns: 2,
  resumeRuns: 1,
  seenLines: 1,
  modelRuns: 2,
  refuseMs: 2000,
  blackholeMs: 8000,
};

/** The result lines, in the order they are printed. */
const ORDER = [
  "transport",
  "transport idle memory",
  "bulk",
  "echo latency",
  "connect",
  "resume",
  "memory",
  "echo as seen",
  "model cost",
] as const;
type Line = typeof ORDER[number];

const results = new Map<Line, string>();
const failures: string[] = [];

/** Runs one measurement; a failure is recorded and the others still run. */
async function measure(line: Line, run: () => Promise<string>): Promise<void> {
  try {
    const text = await run();
    results.set(line, `${line}: ${text}`);
    progress(`${line}: ${text}`);
  } catch (error) {
    const message = (error as Error).message ?? String(error);
    results.set(line, `${line}: FAILED (${message.split("\n")[0]})`);
    failures.push(`${line}: ${message}`);
    progress(`${line} FAILED: ${message}`);
  }
}

function mb(bytes: number): string {
  return fixed(megabytes(bytes), 1);
}

function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
  } catch {
    return "?";
  }
}

/** What must be stopped before exit, whatever happened. */
const cleanup: {
  world?: EtWorld;
  dataDir?: string;
} = {};

async function cleanUp(): Promise<void> {
  await closeAllClients();
  if (cleanup.world) await cleanup.world.close().catch(() => {});
  cleanup.world = undefined;
  if (cleanup.dataDir) {
    await Deno.remove(cleanup.dataDir, { recursive: true }).catch(() => {});
  }
  cleanup.dataDir = undefined;
}

async function transportSection(plan: Plan): Promise<void> {
  await measure("transport", async () => {
    const raw: number[] = [];
    const et: number[] = [];
    // Interleaved so drift in machine load hits both alike.
    for (let i = 0; i < plan.transportRuns; i++) {
      raw.push(await rawTcpThroughput(plan.transportBytes));
      et.push(await eternalThroughput(plan.transportBytes));
      progress(
        `transport run ${i + 1}: et ${fixed(et[i])} MB/s, raw ${
          fixed(raw[i])
        } MB/s`,
      );
    }
    const e = median(et);
    const r = median(raw);
    return `${fixed(e)} MB/s, raw tcp: ${fixed(r)} MB/s, ratio ${
      fixed(e / r, 3)
    }`;
  });
  await measure("transport idle memory", async () => {
    const m = await idleMemory(plan.idlePairs);
    return `${fixed(m.rssPerEnd, 0)} bytes per connection (rss), heap ${
      fixed(m.heapPerEnd, 0)
    } bytes per connection (${m.pairs} pairs in one process = ${
      2 * m.pairs
    } ends; rss ${mb(m.rssBefore)} -> ${mb(m.rssAfter)} MB)`;
  });
}

async function endToEndSections(plan: Plan): Promise<void> {
  progress("starting sshd and et server");
  const world = cleanup.world = await startWorld();
  cleanup.dataDir = await Deno.makeTempDir({ prefix: "et-bench-" });
  const file = await makeDataFile(cleanup.dataDir, plan.bulkBytes);
  const daemon = await daemonPid(world);

  await measure("connect", async () => {
    const et: number[] = [];
    const ssh: number[] = [];
    for (let i = 0; i < plan.connectRuns; i++) {
      et.push(await connectTime(world, "et"));
      ssh.push(await connectTime(world, "ssh"));
      progress(
        `connect run ${i + 1}: et ${fixed(et[i], 0)} ms, ssh ${
          fixed(ssh[i], 0)
        } ms`,
      );
    }
    return `et ${fixed(median(et), 0)} ms, ssh ${fixed(median(ssh), 0)} ms`;
  });

  // One interactive session of each for echo, bulk and memory, so the
  // terminal's memory after bulk is measured in a session still alive.
  progress("interactive sessions: et and ssh");
  // The settle pause lets terminals of the connect runs finish exiting.
  await sleep(1000);
  const before = new Set(await terminalPids(world));
  let et: WatchedProcess | undefined;
  let ssh: WatchedProcess | undefined;
  try {
    et = await startSession(world, "et");
    ssh = await startSession(world, "ssh");
    const terminals = (await terminalPids(world)).filter((pid) =>
      !before.has(pid)
    );
    if (terminals.length !== 1) {
      throw new Error(`found ${terminals.length} new terminal processes`);
    }
    const terminal = terminals[0];
    const etSession = et;
    const sshSession = ssh;

    await measure("echo latency", async () => {
      const e = await echoLatencies(etSession, plan.echoKeys);
      const s = await echoLatencies(sshSession, plan.echoKeys);
      return `et p50 ${fixed(percentile(e, 50), 2)} ms p99 ${
        fixed(percentile(e, 99), 2)
      } ms, ssh p50 ${fixed(percentile(s, 50), 2)} ms p99 ${
        fixed(percentile(s, 99), 2)
      } ms (${plan.echoKeys} keys each)`;
    });

    await sleep(1000);
    const idle = await sessionMemory(daemon, terminal, etSession.pid);

    await measure("bulk", async () => {
      const e: number[] = [];
      const s: number[] = [];
      for (let i = 0; i < plan.bulkRuns; i++) {
        e.push(await bulkThroughput(etSession, file, plan.bulkBytes));
        s.push(await bulkThroughput(sshSession, file, plan.bulkBytes));
        progress(
          `bulk run ${i + 1}: et ${fixed(e[i])} MB/s, ssh ${fixed(s[i])} MB/s`,
        );
      }
      return `et ${fixed(median(e))} MB/s, ssh ${fixed(median(s))} MB/s, ` +
        `ratio ${fixed(median(e) / median(s), 2)} (${
          fixed(plan.bulkBytes / 1e6, 0)
        } MB cat, timed from the first file byte to the end marker)`;
    });

    await measure("memory", async () => {
      const after = await sessionMemory(daemon, terminal, etSession.pid);
      // Read again after a quiet spell: memory V8 merely has not collected
      // yet differs from memory the session keeps.
      await sleep(5000);
      const later = await sessionMemory(daemon, terminal, etSession.pid);
      return `daemon idle ${mb(idle.daemon.now)} MB, after bulk ${
        mb(after.daemon.now)
      } MB; terminal idle ${mb(idle.terminal.now)} MB, after bulk ${
        mb(after.terminal.now)
      } MB; client after bulk ${mb(after.client.now)} MB (peaks: daemon ${
        mb(after.daemon.peak)
      }, terminal ${mb(after.terminal.peak)}, client ${
        mb(after.client.peak)
      } MB; 5 s later: daemon ${mb(later.daemon.now)}, terminal ${
        mb(later.terminal.now)
      }, client ${mb(later.client.now)} MB)`;
    });
  } catch (error) {
    failures.push(`sessions: ${(error as Error).message}`);
    progress(`interactive sessions FAILED: ${(error as Error).message}`);
  } finally {
    await Promise.allSettled(
      [et, ssh].filter((c) => c !== undefined).map((c) => endSession(c!)),
    );
  }

  await predictionSection(plan, world, file);

  await measure("resume", async () => {
    const r = await resumeTimes(world, {
      runs: plan.resumeRuns,
      refuseMs: plan.refuseMs,
      blackholeMs: plan.blackholeMs,
    });
    return `${fixed(median(r.refused), 0)} ms after the path returns (${
      plan.refuseMs / 1000
    } s of refused connections); ${fixed(median(r.blackholed), 0)} ms after a ${
      plan.blackholeMs / 1000
    } s blackhole; ${fixed(median(r.cut), 0)} ms after a plain cut`;
  });
}

/** One-way delay of the slow link "echo as seen" is measured on. */
const SLOW_LINK_MS = 100;

/** Predictive echo: as the person sees it on a slow link; its bulk cost. */
async function predictionSection(
  plan: Plan,
  world: EtWorld,
  file: string,
): Promise<void> {
  await measure("echo as seen", async () => {
    const kinds: SeenKind[] = ["et", "et --predict never", "ssh"];
    const parts: string[] = [];
    for (const kind of kinds) {
      const seen = await echoAsSeen(world, kind, {
        delayMs: SLOW_LINK_MS,
        lines: plan.seenLines,
      });
      const text = `${kind} p50 ${fixed(percentile(seen.all, 50), 1)} ms p99 ${
        fixed(percentile(seen.all, 99), 1)
      } ms`;
      progress(
        `echo as seen: ${text} (first key of each line: ${
          seen.firstOfLine.map((ms) => fixed(ms, 0)).join(", ")
        } ms)`,
      );
      parts.push(text);
    }
    return `at ${SLOW_LINK_MS} ms each way, ${parts.join(", ")} (${
      plan.seenLines * 40
    } keys each, 70 ms apart, on a pty; et shows the first key after Enter only with its echo)`;
  });
  await measure("model cost", async () => {
    const on: PtyBulk[] = [];
    const off: PtyBulk[] = [];
    for (let i = 0; i < plan.modelRuns; i++) {
      on.push(await ptyBulk(world, [], file, plan.bulkBytes));
      off.push(
        await ptyBulk(world, ["--predict", "never"], file, plan.bulkBytes),
      );
      progress(
        `model cost run ${i + 1}: et ${fixed(on[i].mbPerSecond)} MB/s ${
          fixed(on[i].cpuMsPerMb, 2)
        } CPU ms/MB, --predict never ${fixed(off[i].mbPerSecond)} MB/s ${
          fixed(off[i].cpuMsPerMb, 2)
        } CPU ms/MB`,
      );
    }
    const rate = (runs: PtyBulk[]) => median(runs.map((r) => r.mbPerSecond));
    const cpu = (runs: PtyBulk[]) => median(runs.map((r) => r.cpuMsPerMb));
    return `pty bulk et (model on) ${fixed(rate(on))} MB/s, --predict never ${
      fixed(rate(off))
    } MB/s (${
      fixed((1 - rate(on) / rate(off)) * 100, 1)
    } % slower); client CPU ${fixed(cpu(on), 2)} vs ${
      fixed(cpu(off), 2)
    } ms/MB (${fixed((cpu(on) / cpu(off) - 1) * 100, 1)} % more) (${
      fixed(plan.bulkBytes / 1e6, 0)
    } MB cat, fast link)`;
  });
}

/** Runs everything; resolves with the exit code. */
async function main(): Promise<number> {
  const quick = Deno.args.includes("--quick");
  const plan = quick ? QUICK : FULL;
  // The in-process transport must not chatter on stderr.
  configureLog({ level: "silent" });
  const began = performance.now();
  progress(
    `et benchmark${
      quick ? " (quick)" : ""
    }; load average ${loadAverage()} on ${navigator.hardwareConcurrency} cores`,
  );
  const interrupted = async () => {
    progress("interrupted: cleaning up");
    await cleanUp();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  Deno.addSignalListener("SIGTERM", interrupted);
  try {
    await transportSection(plan);
    await endToEndSections(plan);
  } catch (error) {
    failures.push((error as Error).message);
    progress(`FAILED: ${(error as Error).message}`);
  } finally {
    await cleanUp();
  }
  for (const line of ORDER) {
    console.log(results.get(line) ?? `${line}: not measured`);
  }
  progress(
    `done in ${
      fixed((performance.now() - began) / 1000, 0)
    } s; load average ${loadAverage()}${
      failures.length ? `; ${failures.length} failure(s)` : ""
    }`,
  );
  return failures.length === 0 ? 0 : 1;
}

if (import.meta.main) {
  // Exit explicitly: a child's stream read that cannot be cancelled must
  // not keep the benchmark alive once everything is stopped.
  Deno.exit(await main());
}
