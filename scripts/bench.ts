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
 * memory: daemon idle <x> MB, after bulk <y> MB; terminal idle ...
 * tunnel: et -t <x> MB/s, ssh -L <y> MB/s, ratio <r>; cpu s ...
 * ```
 *
 * MB is 10^6 bytes everywhere. `--quick` shrinks every size for a smoke run;
 * `--tunnel` runs only the tunnel line.
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
import { type TunnelRun, tunnelThroughput } from "./bench/tunnel.ts";

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
  refuseMs: number;
  blackholeMs: number;
  tunnelBytes: number;
  tunnelRuns: number;
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
  refuseMs: 2000,
  // Longer than the 6 s after which a silent pipe is declared dead, so both
  // ends really give the old path up and the client must dial anew.
  blackholeMs: 8000,
  tunnelBytes: 200e6,
  tunnelRuns: 3,
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
  refuseMs: 2000,
  blackholeMs: 8000,
  tunnelBytes: 20e6,
  tunnelRuns: 1,
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
  "tunnel",
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

/** et -t beside ssh -L: throughput and CPU, interleaved runs, medians. */
async function tunnelSection(plan: Plan, world: EtWorld): Promise<void> {
  await measure("tunnel", async () => {
    const et: TunnelRun[] = [];
    const ssh: TunnelRun[] = [];
    for (let i = 0; i < plan.tunnelRuns; i++) {
      et.push(await tunnelThroughput(world, "et", plan.tunnelBytes));
      ssh.push(await tunnelThroughput(world, "ssh", plan.tunnelBytes));
      progress(
        `tunnel run ${i + 1}: et ${fixed(et[i].mbPerSecond)} MB/s (cpu client ${
          fixed(et[i].clientCpu, 2)
        } s, server ${fixed(et[i].serverCpu, 2)} s), ssh ${
          fixed(ssh[i].mbPerSecond)
        } MB/s (cpu client ${fixed(ssh[i].clientCpu, 2)} s, server ${
          fixed(ssh[i].serverCpu, 2)
        } s)`,
      );
    }
    const m = (runs: TunnelRun[], key: keyof TunnelRun) =>
      median(runs.map((run) => run[key]));
    return `et -t ${fixed(m(et, "mbPerSecond"))} MB/s, ssh -L ${
      fixed(m(ssh, "mbPerSecond"))
    } MB/s, ratio ${
      fixed(m(et, "mbPerSecond") / m(ssh, "mbPerSecond"), 2)
    }; cpu s per push: et client ${fixed(m(et, "clientCpu"), 2)}, server ${
      fixed(m(et, "serverCpu"), 2)
    }; ssh client ${fixed(m(ssh, "clientCpu"), 2)}, sshd ${
      fixed(m(ssh, "serverCpu"), 2)
    } (${
      fixed(plan.tunnelBytes / 1e6, 0)
    } MB pushed, medians of ${plan.tunnelRuns})`;
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
  const tunnelOnly = Deno.args.includes("--tunnel");
  try {
    if (tunnelOnly) {
      progress("starting sshd and et server");
      cleanup.world = await startWorld();
    } else {
      await transportSection(plan);
      await endToEndSections(plan);
    }
    await tunnelSection(plan, cleanup.world!);
  } catch (error) {
    failures.push((error as Error).message);
    progress(`FAILED: ${(error as Error).message}`);
  } finally {
    await cleanUp();
  }
  for (const line of tunnelOnly ? ["tunnel" as const] : ORDER) {
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
