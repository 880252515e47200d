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
 * connect: et <a> ms, ssh <b> ms (cold host ...); goal ...: met|not met
 * connect, warm host: et <a> ms, ssh <b> ms (...); goal ...
 * connect, stock rc files: et <a> ms, ssh <b> ms (as etstock, ...)
 * connect, stock rc files, warm host: et <a> ms, ssh <b> ms (...)
 * resume: <ms> ms after the path returns (...)
 * echo as seen: at 100 ms each way, et p50 <a> ms p99 <b> ms, ...
 * model cost: pty bulk et <x> MB/s, --predict never <y> MB/s, cost <c> %
 * memory: daemon idle <x> MB, after bulk <y> MB; terminal idle ...
 * tunnel: et -t <x> MB/s, ssh -L <y> MB/s, ratio <r>; cpu s ...
 * ```
 *
 * MB is 10^6 bytes everywhere. `--quick` shrinks every size for a smoke run;
 * `--tunnel` runs only the tunnel line. `--only echo,bulk` measures only the
 * lines that start with one of those words (sessions are still started; the
 * report is not written). `--aggregate-sessions 20` sets how many sessions
 * stream at once in the aggregate line (quick: 4; the full run's 20 with
 * `--quick` shows the load of the full run in a shorter one).
 * The end-to-end part runs a private sshd and an `et server` from source
 * (tests/e2e/_world.ts); everything started is stopped before exit.
 *
 * To see where time goes: `ET_PROFILE_DIR=<dir>` makes every et process
 * write a V8 CPU profile there (summed by role by
 * `scripts/bench/profile_summary.ts <dir>`), and
 * `ET_BENCH_CLIENT_ARGS="--predict never"` adds words to every et client.
 *
 * @module
 */

import { configureLog } from "../src/log.ts";
import { type EtWorld, startWorld, stockRcUser } from "../tests/e2e/_world.ts";
import {
  aggregateThroughput,
  type BenchWorld,
  bulkThroughput,
  type ClientKind,
  closeAllClients,
  connectTime,
  daemonPid,
  echoLatencies,
  endSession,
  hostPidsOf,
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
  ussOf,
} from "./bench/util.ts";
import type { WatchedProcess } from "./bench/watched.ts";
import { emptyFigures, writeReport } from "./bench/report.ts";
import {
  cpuSeconds,
  cpuSecondsOf,
  type MemorySum,
  memorySum,
  serverPids,
} from "./bench/footprint.ts";
import {
  type EtCppServer,
  etCppUnavailable,
  startEtCppServer,
} from "./bench/et_cpp.ts";
import { type TunnelRun, tunnelThroughput } from "./bench/tunnel.ts";
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
  /** Sessions of each kind for the memory line (1, 2, then this many). */
  manySessions: number;
  idleMs: number;
  /** Quiet before the idle window: keepalives back off to 15 s by then. */
  idleSettleMs: number;
  /** Concurrent et sessions streaming for the aggregate line. */
  aggregateSessions: number;
  aggregateBytes: number;
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
  seenLines: 3,
  modelRuns: 3,
  refuseMs: 2000,
  // Longer than the 6 s after which a silent pipe is declared dead, so both
  // ends really give the old path up and the client must dial anew.
  blackholeMs: 8000,
  manySessions: 10,
  idleMs: 30_000,
  idleSettleMs: 20_000,
  aggregateSessions: 20,
  aggregateBytes: 20e6,
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
  seenLines: 1,
  modelRuns: 2,
  refuseMs: 2000,
  blackholeMs: 8000,
  manySessions: 3,
  idleMs: 3000,
  idleSettleMs: 1000,
  aggregateSessions: 4,
  aggregateBytes: 5e6,
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
  "connect, warm host",
  "connect, stock rc files",
  "connect, stock rc files, warm host",
  "connect with a session open",
  "cpu per 100 MB",
  "idle cpu",
  "server memory",
  "aggregate",
  "resume",
  "memory",
  "tunnel",
  "echo as seen",
  "model cost",
] as const;
type Line = typeof ORDER[number];

const results = new Map<Line, string>();
/** The numbers behind the result lines, for the report. */
const figures = emptyFigures();
const failures: string[] = [];

/** Runs one measurement; a failure is recorded and the others still run. */
async function measure(line: Line, run: () => Promise<string>): Promise<void> {
  if (only && !only.some((word) => line.startsWith(word))) return;
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

/** `--only a,b`: measure only lines starting with one of these words. */
const only: string[] | undefined = (() => {
  const at = Deno.args.indexOf("--only");
  return at < 0 ? undefined : (Deno.args[at + 1] ?? "").split(",");
})();

/** What must be stopped before exit, whatever happened. */
const cleanup: {
  world?: EtWorld;
  etCpp?: EtCppServer;
  dataDir?: string;
} = {};

async function cleanUp(): Promise<void> {
  await closeAllClients();
  if (cleanup.world) await cleanup.world.close().catch(() => {});
  cleanup.world = undefined;
  if (cleanup.etCpp) await cleanup.etCpp.close().catch(() => {});
  cleanup.etCpp = undefined;
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

/** How a client kind is named in result lines. */
const LABEL: Record<ClientKind, string> = {
  et: "et",
  ssh: "ssh",
  "et-cpp": "ET 7.0",
};

/** The client kinds this run measures (ET 7.0 joins where installed). */
const measuredKinds: ClientKind[] = ["et", "ssh"];

/** Which kind each extra session of the memory line is. */
const kindOf = new WeakMap<WatchedProcess, ClientKind>();

/** "et 12 ms, ssh 10 ms, ET 7.0 11 ms": one value per client kind. */
function perKind(
  kinds: ClientKind[],
  value: (kind: ClientKind) => string,
): string {
  return kinds.map((kind) => `${LABEL[kind]} ${value(kind)}`).join(", ");
}

/**
 * et's terminals for a cold start: the host exits with its session, so
 * the next one finds none running.
 */
const COLD_HOST = { ET_HOST_LINGER: "0" };

/** Waits until `user` has no host process in `world` (at most 15 s). */
async function noHost(world: BenchWorld, user?: string): Promise<void> {
  const deadline = performance.now() + 15_000;
  while ((await hostPidsOf(world, user)).length > 0) {
    if (performance.now() > deadline) {
      throw new Error(`a host of ${user ?? "ours"} did not exit`);
    }
    await sleep(50);
  }
}

/**
 * Start-to-prompt runs of every kind, interleaved so drift in machine
 * load hits every client alike, as `user`. `cold`: before each et run no
 * host of the user runs (each exits with its session, ET_HOST_LINGER=0).
 * `warm`: an untimed session first starts a host with the default
 * linger; it ends, and every timed et session must be served by that
 * same lingering host (checked by pid), as a user's next `et` is within
 * the linger time.
 */
async function connectRuns(
  world: BenchWorld,
  kinds: ClientKind[],
  plan: Plan,
  host: "cold" | "warm",
  user?: string,
): Promise<Map<ClientKind, number[]>> {
  const times = new Map<ClientKind, number[]>(kinds.map((k) => [k, []]));
  let warmPid: number | undefined;
  if (host === "warm") {
    await noHost(world, user);
    await connectTime(world, "et", user);
    const lingering = await hostPidsOf(world, user);
    if (lingering.length !== 1) {
      throw new Error(`${lingering.length} hosts linger, not one`);
    }
    warmPid = lingering[0];
  }
  for (let i = 0; i < plan.connectRuns; i++) {
    for (const kind of kinds) {
      if (kind === "et" && host === "cold") await noHost(world, user);
      times.get(kind)!.push(
        await connectTime(
          world,
          kind,
          user,
          kind === "et" && host === "cold" ? COLD_HOST : undefined,
        ),
      );
      if (kind === "et" && warmPid !== undefined) {
        const now = await hostPidsOf(world, user);
        if (now.length !== 1 || now[0] !== warmPid) {
          throw new Error(
            `the lingering host ${warmPid} did not serve the session (hosts now: ${now})`,
          );
        }
      }
    }
    progress(
      `connect (${host} host${user ? `, ${user}` : ""}) run ${i + 1}: ${
        perKind(kinds, (k) => `${fixed(times.get(k)![i], 0)} ms`)
      }`,
    );
  }
  return times;
}

/** Ends the world's lingering hosts (idle: they hold no session). */
async function endLingeringHosts(world: BenchWorld): Promise<void> {
  for (const pid of await terminalPids(world)) {
    try {
      Deno.kill(pid, "SIGTERM");
    } catch { /* gone */ }
  }
  const deadline = performance.now() + 10_000;
  while (
    (await terminalPids(world)).length > 0 && performance.now() < deadline
  ) await sleep(50);
}

async function endToEndSections(plan: Plan): Promise<void> {
  progress("starting sshd and et server");
  const world: BenchWorld = cleanup.world = await startWorld({
    commandRcFiles: true,
  });
  cleanup.dataDir = await Deno.makeTempDir({ prefix: "et-bench-" });
  const file = await makeDataFile(cleanup.dataDir, plan.bulkBytes);
  const daemon = await daemonPid(world);
  const kinds = measuredKinds;
  const etCppMissing = await etCppUnavailable();
  if (etCppMissing) {
    progress(`ET 7.0 not measured: ${etCppMissing}`);
  } else {
    world.etCpp = cleanup.etCpp = await startEtCppServer();
    kinds.push("et-cpp");
  }

  const connectLine = (
    times: Map<ClientKind, number[]>,
    what: string,
  ): string => {
    const et = median(times.get("et")!);
    const ssh = median(times.get("ssh")!);
    const over = et - ssh;
    return perKind(kinds, (k) => `${fixed(median(times.get(k)!), 0)} ms`) +
      ` (${what}); goal et ≤ ssh + 150 ms: ${
        over <= 150 ? "met" : "not met"
      } (et − ssh = ${over >= 0 ? "+" : ""}${fixed(over, 0)} ms)`;
  };
  await measure("connect", async () => {
    const times = await connectRuns(world, kinds, plan, "cold");
    for (const k of kinds) figures.connectFirst[k] = median(times.get(k)!);
    return connectLine(
      times,
      "cold host: none running, started by the bootstrap; ET_HOST_LINGER=0",
    );
  });
  await measure("connect, warm host", async () => {
    const times = await connectRuns(world, kinds, plan, "warm");
    for (const k of kinds) figures.connectWarm[k] = median(times.get(k)!);
    return connectLine(
      times,
      "warm host: the session before ended, its host lingered and served this one",
    );
  });

  // The same as a user with the distribution's stock rc files: this
  // machine's root ~/.bashrc runs pyenv, which bash sources for every
  // command run over ssh, so a bootstrap command pays it once more than
  // ssh's login does; a stock .bashrc returns at once when not interactive.
  if (Deno.uid() !== 0) {
    progress("connect, stock rc files not measured: useradd needs root");
  } else {
    const user = await stockRcUser();
    // Untimed: the user's first session warms their Deno code cache, as
    // the root lines before found root's warm.
    await connectTime(world, "et", user, COLD_HOST);
    const rc = `as ${user}, /etc/skel's .bashrc and .profile`;
    await measure("connect, stock rc files", async () => {
      const times = await connectRuns(world, kinds, plan, "cold", user);
      for (const k of kinds) figures.connectStockRc[k] = median(times.get(k)!);
      return connectLine(times, `cold host, ${rc}`);
    });
    await measure("connect, stock rc files, warm host", async () => {
      const times = await connectRuns(world, kinds, plan, "warm", user);
      for (const k of kinds) {
        figures.connectStockRcWarm[k] = median(times.get(k)!);
      }
      return connectLine(times, `warm host, ${rc}`);
    });
  }
  // Lingering hosts of the warm lines go (they hold no session): the
  // interactive sessions below start a host of their own, as before.
  await endLingeringHosts(world);

  // One interactive session of each for echo, bulk and memory, so the
  // terminal's memory after bulk is measured in a session still alive.
  progress(`interactive sessions: ${kinds.map((k) => LABEL[k]).join(", ")}`);
  // The settle pause lets terminals of the connect runs finish exiting.
  await sleep(1000);
  const before = new Set(await terminalPids(world));
  const sessions = new Map<ClientKind, WatchedProcess>();
  try {
    for (const kind of kinds) {
      sessions.set(kind, await startSession(world, kind));
    }
    const terminals = (await terminalPids(world)).filter((pid) =>
      !before.has(pid)
    );
    if (terminals.length !== 1) {
      throw new Error(`found ${terminals.length} new terminal processes`);
    }
    const terminal = terminals[0];
    const etSession = sessions.get("et")!;

    await measure("echo latency", async () => {
      const samples = new Map<ClientKind, number[]>();
      for (const kind of kinds) {
        samples.set(
          kind,
          await echoLatencies(sessions.get(kind)!, plan.echoKeys),
        );
        figures.echoP50[kind] = percentile(samples.get(kind)!, 50);
        figures.echoP99[kind] = percentile(samples.get(kind)!, 99);
      }
      return perKind(
        kinds,
        (k) =>
          `p50 ${fixed(percentile(samples.get(k)!, 50), 2)} ms p99 ${
            fixed(percentile(samples.get(k)!, 99), 2)
          } ms`,
      ) + ` (${plan.echoKeys} keys each)`;
    });

    await sleep(1000);
    const idle = await sessionMemory(daemon, terminal, etSession.pid);
    figures.daemonIdleMb = await ussOf(daemon) / 1e6;

    const cpu = new Map<ClientKind, { client: number; server: number }>(
      kinds.map((k) => [k, { client: 0, server: 0 }]),
    );
    await measure("bulk", async () => {
      const rates = new Map<ClientKind, number[]>(kinds.map((k) => [k, []]));
      for (let i = 0; i < plan.bulkRuns; i++) {
        for (const kind of kinds) {
          const session = sessions.get(kind)!;
          const servers = await serverPids(world, kind);
          const before = {
            client: await cpuSecondsOf(session.pid),
            server: await cpuSeconds(servers),
          };
          rates.get(kind)!.push(
            await bulkThroughput(session, file, plan.bulkBytes),
          );
          const spent = cpu.get(kind)!;
          spent.client += await cpuSecondsOf(session.pid) - before.client;
          spent.server += await cpuSeconds(servers) - before.server;
        }
        progress(
          `bulk run ${i + 1}: ${
            perKind(kinds, (k) => `${fixed(rates.get(k)![i])} MB/s`)
          }`,
        );
      }
      for (const k of kinds) figures.bulk[k] = median(rates.get(k)!);
      const ssh = median(rates.get("ssh")!);
      return perKind(kinds, (k) => `${fixed(median(rates.get(k)!))} MB/s`) +
        `, ratio ${fixed(median(rates.get("et")!) / ssh, 2)} (${
          fixed(plan.bulkBytes / 1e6, 0)
        } MB cat, timed from the first file byte to the end marker)`;
    });
    await measure("cpu per 100 MB", () => {
      const per100 = 100e6 / (plan.bulkBytes * plan.bulkRuns);
      for (const k of kinds) {
        figures.cpuClient[k] = cpu.get(k)!.client * per100;
        figures.cpuServer[k] = cpu.get(k)!.server * per100;
      }
      return Promise.resolve(
        perKind(
          kinds,
          (k) =>
            `client ${fixed(cpu.get(k)!.client * per100, 2)} s server ${
              fixed(cpu.get(k)!.server * per100, 2)
            } s`,
        ) + " (user + system, during the bulk runs)",
      );
    });

    await measure("connect with a session open", async () => {
      const times = new Map<ClientKind, number[]>(kinds.map((k) => [k, []]));
      for (let i = 0; i < plan.connectRuns; i++) {
        for (const kind of kinds) {
          times.get(kind)!.push(await connectTime(world, kind));
        }
      }
      for (const k of kinds) figures.connectSecond[k] = median(times.get(k)!);
      return perKind(kinds, (k) => `${fixed(median(times.get(k)!), 0)} ms`) +
        " (start to prompt while one session of the kind runs)";
    });

    await measure("idle cpu", async () => {
      // Idle as a session left alone is: the keepalive interval doubles
      // from 1 s to its 15 s cap within 15 s of quiet (PROTOCOL.md §7).
      await sleep(plan.idleSettleMs);
      const pids = new Map<ClientKind, number[]>();
      const before = new Map<ClientKind, number>();
      for (const kind of kinds) {
        pids.set(kind, [
          sessions.get(kind)!.pid,
          ...await serverPids(world, kind),
        ]);
        before.set(kind, await cpuSeconds(pids.get(kind)!));
      }
      await sleep(plan.idleMs);
      const percent = new Map<ClientKind, number>();
      for (const kind of kinds) {
        const spent = await cpuSeconds(pids.get(kind)!) - before.get(kind)!;
        percent.set(kind, 100 * spent / (plan.idleMs / 1000));
        figures.idleCpu[kind] = percent.get(kind)!;
      }
      return perKind(kinds, (k) => `${fixed(percent.get(k)!, 2)} %`) +
        ` (client and server side, one idle session, ${
          plan.idleMs / 1000
        } s after ${plan.idleSettleMs / 1000} s of quiet)`;
    });

    await measure("server memory", async () => {
      const sums = new Map<ClientKind, MemorySum[]>(kinds.map((k) => [k, []]));
      const extra: WatchedProcess[] = [];
      try {
        for (const target of [1, 2, plan.manySessions]) {
          for (const kind of kinds) {
            while (
              1 + extra.filter((c) => kindOf.get(c) === kind).length < target
            ) {
              const client = await startSession(world, kind);
              kindOf.set(client, kind);
              extra.push(client);
            }
          }
          await sleep(1500); // launchers and bootstrap sshds are gone
          for (const kind of kinds) {
            sums.get(kind)!.push(
              await memorySum(await serverPids(world, kind)),
            );
          }
        }
      } finally {
        await Promise.allSettled(extra.map(endSession));
      }
      figures.manySessions = plan.manySessions;
      for (const k of kinds) {
        const [one, two, many] = sums.get(k)!.map((m) => m.uss / 1e6);
        figures.memoryOne[k] = one;
        figures.memoryTwo[k] = two;
        figures.memoryMany[k] = many;
      }
      const perExtra = (a: number, b: number) =>
        mb((b - a) / (plan.manySessions - 1));
      return perKind(kinds, (k) => {
        const [one, two, many] = sums.get(k)!;
        return `private ${mb(one.uss)} / ${mb(two.uss)} / ${mb(many.uss)} MB (${
          perExtra(one.uss, many.uss)
        } MB per extra session), rss ${mb(one.rss)} / ${mb(two.rss)} / ${
          mb(many.rss)
        } MB (${perExtra(one.rss, many.rss)})`;
      }) + ` (server side, summed, for 1 / 2 / ${plan.manySessions} sessions)`;
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
    await Promise.allSettled([...sessions.values()].map(endSession));
  }

  await measure("aggregate", async () => {
    const n = plan.aggregateSessions;
    // One session's throughput is the ratio's yardstick: the median of
    // three runs (a single 20 MB run moved 42-64 MB/s between runs, and
    // the ratio with it).
    const ones = [];
    for (let i = 0; i < 3; i++) {
      ones.push(await aggregateThroughput(world, 1, plan.aggregateBytes));
    }
    ones.sort((a, b) => a.mbPerSecond - b.mbPerSecond);
    const one = ones[1];
    const many = await aggregateThroughput(world, n, plan.aggregateBytes);
    const ssh = await aggregateThroughput(world, n, plan.aggregateBytes, "ssh");
    figures.aggregate = {
      one: one.mbPerSecond,
      many: many.mbPerSecond,
      sessions: n,
      ssh: ssh.mbPerSecond,
    };
    // Where the CPU went, per 100 MB moved: the harness (this process
    // reads every client's terminal), the clients, the server side, and
    // the rest of the machine (shells, cats, ptys, kernel, other work).
    const split = (run: typeof one) => {
      const per = 100e6 / (plan.aggregateBytes * (run === one ? 1 : n));
      const rest = run.machine - run.harness - run.clients - run.servers;
      return `harness ${fixed(run.harness * per, 2)} clients ${
        fixed(run.clients * per, 2)
      } server ${fixed(run.servers * per, 2)} rest ${fixed(rest * per, 2)} s, ${
        fixed(run.clientWakes * per / 100, 0)
      } client wakes per MB, ${
        fixed(100 * run.machine / run.seconds / navigator.hardwareConcurrency)
      } % of the machine busy`;
    };
    return `et ${fixed(many.mbPerSecond)} MB/s with ${n} sessions, ${
      fixed(one.mbPerSecond)
    } MB/s with one (median of ${
      ones.map((run) => fixed(run.mbPerSecond)).join(", ")
    }), ratio ${fixed(many.mbPerSecond / one.mbPerSecond, 2)}; ` +
      `ssh ${fixed(ssh.mbPerSecond)} MB/s with ${n} (each cats ${
        fixed(plan.aggregateBytes / 1e6, 0)
      } MB, byte counts checked). CPU per 100 MB: one et: ${
        split(one)
      }; ${n} et: ${split(many)}; ${n} ssh: ${split(ssh)}. Longest silence ` +
      `of one session while it streamed: one et ${
        fixed(one.longestSilenceMs, 0)
      } ms, ${n} et ${fixed(many.longestSilenceMs, 0)} ms, ${n} ssh ${
        fixed(ssh.longestSilenceMs, 0)
      } ms`;
  });
  await predictionSection(plan, world, file);

  await measure("resume", async () => {
    const r = await resumeTimes(world, {
      runs: plan.resumeRuns,
      refuseMs: plan.refuseMs,
      blackholeMs: plan.blackholeMs,
    });
    figures.resume = {
      refused: median(r.refused),
      blackholed: median(r.blackholed),
      cut: median(r.cut),
    };
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
    figures.tunnel = { et: m(et, "mbPerSecond"), ssh: m(ssh, "mbPerSecond") };
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
      (figures.seen ??= {})[kind] = {
        p50: percentile(seen.all, 50),
        p99: percentile(seen.all, 99),
      };
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
    figures.modelCost = {
      slowerPercent: (1 - rate(on) / rate(off)) * 100,
      cpuPercent: (cpu(on) / cpu(off) - 1) * 100,
    };
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
  const plan = { ...(quick ? QUICK : FULL) };
  const sessions = Deno.args.indexOf("--aggregate-sessions");
  if (sessions >= 0) {
    const count = Number(Deno.args[sessions + 1]);
    if (!Number.isInteger(count) || count < 1) {
      console.error("--aggregate-sessions needs a whole number of sessions");
      return 2;
    }
    plan.aggregateSessions = count;
  }
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
      cleanup.world = await startWorld({ commandRcFiles: true });
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
    if (only && !results.has(line)) continue;
    console.log(results.get(line) ?? `${line}: not measured`);
  }
  if (!tunnelOnly && !only && (!quick || Deno.args.includes("--write"))) {
    const docs = new URL("../docs", import.meta.url).pathname;
    await writeReport(
      docs,
      figures,
      measuredKinds,
      `Run of ${
        new Date().toISOString().slice(0, 16)
      } UTC, ${navigator.hardwareConcurrency} cores, load average ${loadAverage()} at the end${
        quick ? " (--quick: small sizes)" : ""
      }. Reproduce: \`deno task bench\` (about 7 minutes).`,
    );
    progress("wrote docs/BENCHMARKS.md (latest run) and docs/bench.svg");
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
