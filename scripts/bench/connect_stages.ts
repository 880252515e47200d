/**
 * Splits `et`'s start to prompt into stages, against the same private sshd
 * and `et server` the benchmark uses: the pieces timed alone (a local Deno
 * start, `ssh -G`, an ssh login running `true`, a remote Deno start, a
 * launcher answering `list`), then whole sessions with the client's `-vv`
 * stage marks (`connect stage …`) and the host's `host stage` marks (its
 * log at debug level), each by its log line's time, as ms from spawning
 * the client: with a cold host (none running,
 * `ET_HOST_LINGER=0`), a warm one (the last session ended, its host
 * lingers), and with a session open (session sharing).
 *
 * Run: `deno run -A scripts/bench/connect_stages.ts [runs]` (default 5;
 * medians, each stage's on its own, so a noisy run can order them
 * oddly). `ET_STAGES_USER=name` logs in as that local user (e.g.
 * `etstock`, the benchmark's user with /etc/skel's rc files),
 * `ET_STAGES_ARGS="--predict never"` adds client arguments. Prints the
 * tables; writes nothing.
 *
 * @module
 */

import { ET, startWorld } from "../../tests/e2e/_world.ts";
import { encodeBootstrap } from "../../src/session/mod.ts";
import { hostPaths } from "../../src/terminal/host_socket.ts";
import { WatchedProcess } from "./watched.ts";
import { sleep } from "./util.ts";

const runs = Number(Deno.args[0] ?? 5);
/** Another local user to log in as (`ET_STAGES_USER`), e.g. one whose ~/.bashrc differs. */
const user = Deno.env.get("ET_STAGES_USER");
/** More client arguments (`ET_STAGES_ARGS`, space-separated). */
const extra = Deno.env.get("ET_STAGES_ARGS")?.split(" ").filter(Boolean) ?? [];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Median wall time of running `argv` to its end, `stdin` written first. */
async function timed(argv: string[], stdin?: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      stdin: stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (stdin !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(stdin));
      await writer.close();
    }
    const out = await child.output();
    if (!out.success) {
      throw new Error(
        `${argv.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
      );
    }
    times.push(performance.now() - start);
  }
  return median(times);
}

const world = await startWorld({ commandRcFiles: true });
try {
  const ssh = world.sshd.sshCommand.split(" ");
  const host = user ? `${user}@${world.sshd.hostAlias}` : world.sshd.hostAlias;
  // The user's own: its runtime directory is one that user may write.
  const argv = world.client([], { user });
  const terminalPath = argv.at(argv.indexOf("--terminal-path") + 1)!;
  const rows: [string, number][] = [];
  rows.push([
    "local: deno run main.ts --version",
    await timed([
      ...ET,
      "--version",
    ]),
  ]);
  rows.push(["ssh -G", await timed([...ssh, "-G", host])]);
  rows.push(["ssh login running true", await timed([...ssh, host, "true"])]);
  rows.push([
    "ssh + remote deno run main.ts --version",
    await timed([...ssh, host, `${terminalPath} --version`]),
  ]);
  rows.push([
    "ssh + launcher answering list",
    await timed(
      [...ssh, host, `${terminalPath} terminal`],
      encodeBootstrap({ op: "list" }),
    ),
  ]);
  for (const [name, ms] of rows) {
    console.log(`${name.padEnd(44)} ${ms.toFixed(0).padStart(5)} ms`);
  }

  // Whole sessions: client stage marks and the host's log, in ms from spawn.
  const stages = new Map<string, number[]>();
  const add = (name: string, ms: number) => {
    if (!stages.has(name)) stages.set(name, []);
    stages.get(name)!.push(ms);
  };
  const clientLog = `${world.dir}/client.log`;
  const { log: hostLog } = await hostPaths(
    world.runtimeDirOf(user),
    world.routerPath,
  );
  const debug = { ET_LOG_LEVEL: "debug" };
  for (const phase of ["cold", "warm", "open"] as const) {
    stages.clear();
    // cold: each host exits with its session (ET_HOST_LINGER=0), and none
    // runs before a run; warm: the default linger, one untimed session
    // first; open: a session stays open (session sharing).
    const env = phase === "cold" ? { ...debug, ET_HOST_LINGER: "0" } : debug;
    if (phase === "warm") await session(env);
    const holder = phase === "open"
      ? new WatchedProcess(world.client([], { user, env }), "pty")
      : undefined;
    if (holder) {
      const up = holder.waitFor("H_3_", 0, 30_000);
      await holder.type("echo H_$((1+2))_\n");
      await up;
    }
    for (let i = 0; i < runs; i++) {
      if (phase === "cold") await noHost(hostLog);
      await Deno.writeTextFile(clientLog, "");
      const logged = (await Deno.readTextFile(hostLog).catch(() => "")).length;
      const wall = Date.now();
      await session(env, (at) => add("answer to a line typed at once", at));
      for (const line of (await Deno.readTextFile(clientLog)).split("\n")) {
        const mark = line.match(
          /(connect stage .*|ready line|ssh exited) at ([\d.]+) ms/,
        );
        // By the line's wall clock, as the host's: the client's own
        // "at N ms" counts from its runtime's start, ~15-20 ms after spawn.
        if (mark) {
          add(`client: ${mark[1]}`, Date.parse(line.slice(0, 24)) - wall);
        }
      }
      const text = (await Deno.readTextFile(hostLog).catch(() => ""))
        .slice(logged);
      for (const line of text.split("\n")) {
        const at = Date.parse(line.slice(0, 24)) - wall;
        const mark = line.match(/host stage (.*) at [\d.]+ ms/);
        if (mark && at >= 0) add(`host: ${mark[1]}`, at);
        if (/starting -> connected/.test(line)) add("host: connected", at);
      }
      await sleep(300);
    }
    if (holder) {
      await holder.type("exit\n");
      await holder.exit(10_000);
    }
    console.log(
      phase === "cold"
        ? "\nfirst session, cold host (none running):"
        : phase === "warm"
        ? "\nfirst session, warm host (the last session ended, its host lingers):"
        : "\nwith a session open (session sharing):",
    );
    const ordered = [...stages].map(([name, ms]) => [name, median(ms)] as const)
      .sort((a, b) => a[1] - b[1]);
    for (const [name, ms] of ordered) {
      console.log(`${name.padEnd(44)} ${ms.toFixed(0).padStart(5)} ms`);
    }
    await sleep(1000);
  }
} finally {
  await world.close();
}

/**
 * One session on a pty: spawned, a line typed at once, its answer, exit.
 * Calls `answered` with the answer's ms from spawn.
 */
async function session(
  env: Record<string, string>,
  answered?: (ms: number) => void,
): Promise<void> {
  const client = new WatchedProcess(
    world.client(["-v", ...extra], { user, env }),
    "pty",
  );
  const answer = client.waitFor("P_9_", 0, 30_000);
  await client.type("echo P_$((4+5))_\n");
  answered?.((await answer).at - client.spawnedAt);
  await client.type("exit\n");
  await client.exit(10_000);
}

/** Waits until the world's host of our user left (its log says it exits). */
async function noHost(log: string) {
  for (let i = 0; i < 300; i++) {
    const text = await Deno.readTextFile(log).catch(() => "");
    const listening = text.lastIndexOf(" listening on ");
    if (listening < 0 || text.lastIndexOf(" exits: ") > listening) return;
    await sleep(20);
  }
  throw new Error("the host did not exit");
}
