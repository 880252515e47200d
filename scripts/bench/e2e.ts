/**
 * End-to-end benchmarks of `et` beside `ssh -tt` (and ET 7.0 where it is
 * installed) against the same private sshd on this machine, in the same
 * run: bulk output, keystroke echo, connect time, resume after the path
 * returns, and process memory.
 *
 * Every client runs on a terminal of its own that this process reads, as a
 * person runs it, and reaches a login shell on a remote pty, so they do the
 * same work: the numbers differ only by what lies between the two ptys.
 *
 * @module
 */

import type { EtWorld } from "../../tests/e2e/_world.ts";
import type { EtCppServer } from "./et_cpp.ts";
import { FaultProxy } from "../../tests/helpers/fault_proxy.ts";
import { HOST_PROCESS_NAME } from "../../src/terminal/host_socket.ts";
import {
  findProcesses,
  mbPerSecond,
  peakRssOf,
  progress,
  rssOf,
  sleep,
} from "./util.ts";
import { type Hit, WatchedProcess } from "./watched.ts";
import { cpuSeconds, cpuSecondsOf, serverPids } from "./footprint.ts";

/** Which client a measurement is about; "et-cpp" is ET 7.0 (C++). */
export type ClientKind = "et" | "ssh" | "et-cpp";

/** The test world, plus ET 7.0's server when it runs here. */
export type BenchWorld = EtWorld & { etCpp?: EtCppServer };

/** Every process this module started, so a failure still cleans up. */
const running = new Set<WatchedProcess>();

/** Kills every client still running (for the benchmark's cleanup). */
export async function closeAllClients(): Promise<void> {
  await Promise.allSettled([...running].map((p) => p.close()));
  running.clear();
}

/** Starts a client and remembers it for cleanup. */
function spawn(argv: string[]): WatchedProcess {
  // On a terminal, as a person runs it (ET's client needs one).
  const client = new WatchedProcess(argv, "pty");
  running.add(client);
  client.status.then(() => running.delete(client));
  return client;
}

/**
 * argv of an interactive `et`, `ssh -tt` or ET session to the world's
 * sshd, as `user` (default: the sshd's own user, us); `env` goes to et's
 * terminals (launcher and host), e.g. `{ ET_HOST_LINGER: "0" }`.
 */
export function clientArgv(
  world: BenchWorld,
  kind: ClientKind,
  port?: number,
  user?: string,
  env?: Record<string, string>,
): string[] {
  if (kind === "et") {
    return world.client(EXTRA_CLIENT_ARGS, {
      ...(port ? { port } : {}),
      user,
      env,
    });
  }
  if (kind === "et-cpp") {
    if (!world.etCpp) throw new Error("ET 7.0 is not running");
    return world.etCpp.clientArgv(world.sshd, user);
  }
  // sshCommand is "ssh -F <path>" with a temp-dir path free of spaces.
  const target = user
    ? `${user}@${world.sshd.hostAlias}`
    : world.sshd.hostAlias;
  return [...world.sshd.sshCommand.split(" "), "-tt", target];
}

/**
 * `ET_BENCH_CLIENT_ARGS`: words added to every et client the benchmark
 * starts, e.g. `--predict never` to see what prediction's model costs.
 */
const EXTRA_CLIENT_ARGS = (Deno.env.get("ET_BENCH_CLIENT_ARGS") ?? "")
  .split(" ").filter((word) => word !== "");

let probes = 0;

/**
 * Types `echo P_$((<n>+0))_` (n counting from 1000) and resolves when the
 * shell's answer `P_<n>_` appears: proof that a line went to the remote shell and its
 * output came back. The pty's echo of the typed line shows the unexpanded
 * `$((...))`, so only the answer matches.
 */
export async function probe(
  client: WatchedProcess,
  timeoutMs = 30_000,
): Promise<Hit> {
  const n = 1000 + probes++;
  const answer = client.waitFor(`P_${n}_`, client.total, timeoutMs);
  answer.catch(() => {}); // awaited below; only typing may fail first
  await client.type(`echo P_$((${n}+0))_\n`);
  return await answer;
}

/**
 * The first answer to a line typed at once, for a client that keeps what
 * is typed before its session is up (et, ssh); ET 7.0's client drops it,
 * so for ET a probe is typed again every 50 ms until one is answered.
 */
export async function firstAnswer(
  client: WatchedProcess,
  kind: ClientKind,
  timeoutMs = 60_000,
): Promise<Hit> {
  if (kind !== "et-cpp") return await probe(client, timeoutMs);
  const deadline = performance.now() + timeoutMs;
  const answers: Promise<Hit>[] = [];
  let answered: Hit | undefined;
  while (!answered) {
    if (performance.now() > deadline) {
      throw new Error(`no answer within ${timeoutMs} ms: ${client.tail()}`);
    }
    const n = 1000 + probes++;
    const answer = client.watch(`P_${n}_`, client.total);
    answer.then((hit) => answered ??= hit);
    answers.push(answer);
    await client.type(`echo P_$((${n}+0))_\n`);
    await Promise.race([sleep(50), answer]);
  }
  // Let the answers to the other probes arrive before anything is timed.
  await sleep(300);
  return answered;
}

/** Starts an interactive session and waits until its shell answers. */
export async function startSession(
  world: BenchWorld,
  kind: ClientKind,
  port?: number,
): Promise<WatchedProcess> {
  const client = spawn(clientArgv(world, kind, port));
  try {
    await firstAnswer(client, kind);
  } catch (error) {
    await client.close();
    throw error;
  }
  return client;
}

/** Ends a session politely (`exit`), killing the client if it lingers. */
export async function endSession(client: WatchedProcess): Promise<void> {
  if (!client.exited) await client.type("exit\n").catch(() => {});
  await client.exit(10_000);
}

/**
 * Milliseconds from spawning the client to the shell's answer to a line
 * typed at once (the `et` client buffers keystrokes until connected; ssh
 * reads them once its channel is open), logged in as `user` (default: us);
 * `env` goes to et's terminals.
 */
export async function connectTime(
  world: BenchWorld,
  kind: ClientKind,
  user?: string,
  env?: Record<string, string>,
): Promise<number> {
  const client = spawn(clientArgv(world, kind, undefined, user, env));
  try {
    const hit = await firstAnswer(client, kind);
    return hit.at - client.spawnedAt;
  } finally {
    await endSession(client);
  }
}

/**
 * Keystroke echo latencies in ms: `keys` single letters, one at a time,
 * each at least `gapMs` after the previous, timed from the write to the
 * arrival of its echo. The line is cleared with Ctrl-U every 20 letters so
 * the shell never wraps or redraws a long line.
 */
export async function echoLatencies(
  client: WatchedProcess,
  keys: number,
  gapMs = 20,
  sentAt?: number[],
): Promise<number[]> {
  const letters = "abcdefghijklmnopqrstuvwxyz";
  const samples: number[] = [];
  await probe(client);
  await sleep(300); // let the prompt settle: no output in flight
  for (let i = 0; i < keys; i++) {
    if (i > 0 && i % 20 === 0) {
      await client.type("\x15"); // Ctrl-U: erase the line typed so far
      await sleep(150);
    }
    const letter = letters[i % 20];
    const from = client.total;
    const echoed = client.waitFor(letter, from, 5000);
    echoed.catch(() => {}); // awaited below; only typing may fail first
    const sent = performance.now();
    sentAt?.push(performance.timeOrigin + sent);
    await client.type(letter);
    const hit = await echoed;
    samples.push(hit.at - sent);
    const rest = sent + gapMs - performance.now();
    if (rest > 0) await sleep(rest);
  }
  await client.type("\x15");
  await sleep(150);
  return samples;
}

/** A temp file of `bytes` bytes of base64 text (76-column lines). */
export async function makeDataFile(
  dir: string,
  bytes: number,
): Promise<string> {
  const path = `${dir}/bulk.b64`;
  // base64 turns 3 bytes into 4 chars plus a newline per 76: read enough.
  const raw = Math.ceil(bytes * 0.76) + 4096;
  const made = await new Deno.Command("sh", {
    args: [
      "-c",
      'head -c "$1" /dev/urandom | base64 -w 76 | head -c "$2" > "$3"',
      "sh",
      String(raw),
      String(bytes),
      path,
    ],
    stdin: "null",
  }).output();
  const size = (await Deno.stat(path)).size;
  if (!made.success || size !== bytes) {
    throw new Error(`could not make a ${bytes}-byte data file (got ${size})`);
  }
  return path;
}

let bulkRuns = 0;

/**
 * `cat`s `file` in the session's shell with the pty in raw mode (so the
 * bytes arrive unchanged) between two markers, and returns MB/s timed from
 * the chunk carrying the start marker (which comes right before the file's
 * first byte) to the chunk carrying the end marker. Checks that exactly the
 * file's size arrived in between.
 */
export async function bulkThroughput(
  client: WatchedProcess,
  file: string,
  bytes: number,
): Promise<number> {
  const { first, last } = await bulkSpan(client, file, bytes);
  return mbPerSecond(bytes, last - first);
}

/**
 * {@link bulkThroughput}'s run: when the chunks carrying the start and the
 * end marker arrived (`performance.now()`).
 */
async function bulkSpan(
  client: WatchedProcess,
  file: string,
  bytes: number,
): Promise<{ first: number; last: number }> {
  const n = bulkRuns++;
  // Markers contain "_" and "@", which base64 never does, and are typed
  // split by quotes so the pty's echo of the command line cannot match.
  const start = `@@B${n}_S@@`;
  const end = `@@B${n}_E@@`;
  const from = client.total;
  const startHit = client.waitFor(start, from, 60_000);
  const endHit = client.waitFor(end, from, 60_000 + bytes / 1000);
  await client.type(
    `stty raw -echo; printf '%s' '@@B${n}''_S@@'; cat ${file}; ` +
      `printf '%s' '@@B${n}''_E@@'; stty sane\n`,
  );
  const first = await startHit;
  const last = await endHit;
  const received = last.offset - (first.offset + start.length);
  if (received !== bytes) {
    throw new Error(`bulk: ${received} bytes arrived, expected ${bytes}`);
  }
  // The prompt must be back before anything else is timed.
  await probe(client);
  return { first: first.at, last: last.at };
}

/** One aggregate run: the rate, and where the CPU went meanwhile. */
export interface AggregateRun {
  /** MB/s of all sessions together, first start marker to last end marker. */
  mbPerSecond: number;
  /** Wall seconds of the run. */
  seconds: number;
  /** CPU seconds of this benchmark process (it reads every client's terminal). */
  harness: number;
  /** CPU seconds of the client processes. */
  clients: number;
  /** CPU seconds of the server side (et: host and daemon; ssh: sshd). */
  servers: number;
  /** Busy CPU seconds of the whole machine (shells, cats, kernel, others). */
  machine: number;
  /** Times the clients' main threads blocked and woke again (summed). */
  clientWakes: number;
  /**
   * Longest time, in ms, that one session's terminal got no output while
   * its `cat` ran (sampled every 50 ms): a stalled session shows here.
   */
  longestSilenceMs: number;
}

/**
 * Watches `client`'s output until `done` settles; resolves with the
 * longest time (ms) between two arrivals, counted from the first output
 * after the call (sampled every `everyMs`).
 */
async function longestSilence(
  client: WatchedProcess,
  done: Promise<unknown>,
  everyMs = 50,
): Promise<number> {
  const from = client.total;
  let total = from;
  let last = NaN;
  let longest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    if (client.total !== total) {
      total = client.total;
      last = now;
    } else if (!Number.isNaN(last)) longest = Math.max(longest, now - last);
  }, everyMs);
  try {
    await done;
  } catch {
    /* the run reports its own failure */
  } finally {
    clearInterval(timer);
  }
  return longest;
}

/** Voluntary context switches of the main thread of each of `pids`, summed. */
async function wakesOf(pids: number[]): Promise<number> {
  let sum = 0;
  for (const pid of pids) {
    try {
      const status = await Deno.readTextFile(`/proc/${pid}/status`);
      sum += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return sum;
}

/** Busy CPU seconds of the whole machine so far (all cores, /proc/stat). */
async function machineBusySeconds(): Promise<number> {
  const line = (await Deno.readTextFile("/proc/stat")).split("\n")[0];
  const ticks = line.split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: all but idle and iowait.
  const busy = ticks.slice(0, 8).reduce((sum, t) => sum + t, 0) - ticks[3] -
    ticks[4];
  return busy / 100;
}

/**
 * Aggregate MB/s of `sessions` sessions of `kind` that each `cat` a
 * `bytes`-byte file at the same time, from the first start marker to the
 * last end marker; every session's byte count is checked. Also the CPU
 * seconds each party spent meanwhile, to tell a saturated harness from a
 * saturated server.
 */
export async function aggregateThroughput(
  world: BenchWorld,
  sessions: number,
  bytes: number,
  kind: ClientKind = "et",
): Promise<AggregateRun> {
  const dir = await Deno.makeTempDir({ prefix: "et-bench-aggregate-" });
  const clients: WatchedProcess[] = [];
  try {
    const file = await makeDataFile(dir, bytes);
    for (let i = 0; i < sessions; i++) {
      clients.push(await startSession(world, kind));
    }
    const servers = await serverPids(world, kind);
    const pids = clients.map((client) => client.pid);
    // CPU of each party, the machine's busy time and the clients' wakes.
    const sample = async () => ({
      harness: await cpuSecondsOf(Deno.pid),
      clients: await cpuSeconds(pids),
      servers: await cpuSeconds(servers),
      machine: await machineBusySeconds(),
      wakes: await wakesOf(pids),
      at: performance.now(),
    });
    const before = await sample();
    const running = clients.map((client) => bulkSpan(client, file, bytes));
    const silences = clients.map((client, i) =>
      longestSilence(client, running[i])
    );
    const spans = await Promise.all(running);
    const after = await sample();
    const first = Math.min(...spans.map((s) => s.first));
    const last = Math.max(...spans.map((s) => s.last));
    return {
      mbPerSecond: mbPerSecond(bytes * sessions, last - first),
      seconds: (after.at - before.at) / 1000,
      harness: after.harness - before.harness,
      clients: after.clients - before.clients,
      servers: after.servers - before.servers,
      machine: after.machine - before.machine,
      clientWakes: after.wakes - before.wakes,
      longestSilenceMs: Math.max(...await Promise.all(silences)),
    };
  } finally {
    await Promise.allSettled(clients.map(endSession));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Pid of the world's `et server` daemon. */
export async function daemonPid(world: EtWorld): Promise<number> {
  const pids = await findProcesses(({ argv }) =>
    argv.includes("server") && argv.includes(world.routerPath)
  );
  if (pids.length !== 1) throw new Error(`found ${pids.length} daemons`);
  return pids[0];
}

/** Pids of the world's host processes (`et-host`, one per user). */
export function terminalPids(world: EtWorld): Promise<number[]> {
  return findProcesses(({ env, name }) =>
    name === HOST_PROCESS_NAME &&
    env.includes(`ET_ROUTER_SOCKET=${world.routerPath}`)
  );
}

/** Pids of the world's host processes of the user `user` (default: us). */
export async function hostPidsOf(
  world: EtWorld,
  user?: string,
): Promise<number[]> {
  const uid = user === undefined ? Deno.uid() : await uidOf(user);
  const pids: number[] = [];
  for (const pid of await terminalPids(world)) {
    const status = await Deno.readTextFile(`/proc/${pid}/status`)
      .catch(() => "");
    if (Number(status.match(/^Uid:\s+(\d+)/m)?.[1]) === uid) pids.push(pid);
  }
  return pids;
}

async function uidOf(user: string): Promise<number> {
  const out = await new Deno.Command("id", { args: ["-u", user] }).output();
  return Number(new TextDecoder().decode(out.stdout).trim());
}

/** Resume times of one kind of outage, in ms. */
export interface ResumeResults {
  /** Path refused (every connect reset) for a while, then back. */
  refused: number[];
  /** Path silently dropping everything for a while, then back. */
  blackholed: number[];
  /** One cut (RST) with the path working at once. */
  cut: number[];
}

/** Outage lengths and how often each is tried. */
export interface ResumeOptions {
  runs: number;
  refuseMs: number;
  blackholeMs: number;
}

/**
 * An `et` session through the fault proxy: after each outage, the time from
 * the path's return until a line typed at that moment is answered. The
 * line is typed while still disconnected: the client buffers it.
 */
export async function resumeTimes(
  world: EtWorld,
  options: ResumeOptions,
): Promise<ResumeResults> {
  const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
  const results: ResumeResults = { refused: [], blackholed: [], cut: [] };
  let client: WatchedProcess | undefined;
  try {
    client = await startSession(world, "et", proxy.port);
    const answered = async () => {
      const back = performance.now();
      const hit = await probe(client!, 30_000);
      return hit.at - back;
    };
    for (let i = 0; i < options.runs; i++) {
      proxy.cut();
      results.cut.push(await answered());
      progress(`resume after a cut: ${results.cut.at(-1)!.toFixed(0)} ms`);
      await sleep(500);
    }
    for (let i = 0; i < options.runs; i++) {
      proxy.setRefuse(true);
      proxy.cut();
      await sleep(options.refuseMs);
      proxy.setRefuse(false);
      results.refused.push(await answered());
      progress(
        `resume after ${options.refuseMs} ms refused: ${
          results.refused.at(-1)!.toFixed(0)
        } ms`,
      );
      await sleep(500);
    }
    for (let i = 0; i < options.runs; i++) {
      proxy.setBlackhole(true);
      await sleep(options.blackholeMs);
      proxy.setBlackhole(false);
      results.blackholed.push(await answered());
      progress(
        `resume after a ${options.blackholeMs} ms blackhole: ${
          results.blackholed.at(-1)!.toFixed(0)
        } ms`,
      );
      await sleep(500);
    }
    return results;
  } finally {
    if (client) await endSession(client);
    await proxy.close();
  }
}

/** Current and peak RSS of one process, in bytes (NaN if it is gone). */
export interface Rss {
  now: number;
  peak: number;
}

/** Memory of the processes of one `et` session. */
export interface SessionMemory {
  daemon: Rss;
  terminal: Rss;
  client: Rss;
}

/** RSS now and at peak of the daemon, a terminal and a client. */
export async function sessionMemory(
  daemon: number,
  terminal: number,
  client: number,
): Promise<SessionMemory> {
  const read = async (pid: number): Promise<Rss> => ({
    now: await rssOf(pid),
    peak: await peakRssOf(pid),
  });
  const [d, t, c] = await Promise.all([
    read(daemon),
    read(terminal),
    read(client),
  ]);
  return { daemon: d, terminal: t, client: c };
}
