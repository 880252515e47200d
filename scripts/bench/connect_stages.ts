/**
 * Splits `et`'s start to prompt into stages, against the same private sshd
 * and `et server` the benchmark uses: the pieces timed alone (a local Deno
 * start, `ssh -G`, an ssh login running `true`, a remote Deno start, a
 * launcher answering `list`), then whole sessions with the client's `-vv`
 * stage marks (`connect stage … at N ms`, ms since the client's start) and
 * the host's log, each as ms from spawning the client.
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

const world = await startWorld();
try {
  const ssh = world.sshd.sshCommand.split(" ");
  const host = user ? `${user}@${world.sshd.hostAlias}` : world.sshd.hostAlias;
  const terminalPath = world.client().at(
    world.client().indexOf("--terminal-path") + 1,
  )!;
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
  for (const second of [false, true]) {
    stages.clear();
    const holder = second
      ? new WatchedProcess(world.client([], { user }), "pty")
      : undefined;
    if (holder) {
      const up = holder.waitFor("H_3_", 0, 30_000);
      await holder.type("echo H_$((1+2))_\n");
      await up;
    }
    for (let i = 0; i < runs; i++) {
      await Deno.writeTextFile(clientLog, "");
      const wall = Date.now();
      const client = new WatchedProcess(
        world.client(["-v", ...extra], { user }),
        "pty",
      );
      const answer = client.waitFor("P_9_", 0, 30_000);
      await client.type("echo P_$((4+5))_\n");
      add(
        "answer to a line typed at once",
        (await answer).at - client.spawnedAt,
      );
      for (const line of (await Deno.readTextFile(clientLog)).split("\n")) {
        const mark = line.match(
          /(connect stage .*|ready line|ssh exited) at ([\d.]+) ms/,
        );
        if (mark) add(`client: ${mark[1]}`, Number(mark[2]));
      }
      const seen = new Set<string>();
      for (const log of await hostLogs(world.runtimeDir)) {
        for (const line of log.split("\n")) {
          const at = Date.parse(line.slice(0, 24)) - wall;
          if (!(at >= 0)) continue;
          if (/session \w+ ready/.test(line)) add("host: session ready", at);
          if (/starting -> connected/.test(line)) add("host: connected", at);
          const trace = line.match(/TMPTRACE (\w+)/);
          if (trace && !seen.has(trace[1])) {
            seen.add(trace[1]);
            add(`host: first ${trace[1]}`, at);
          }
        }
      }
      await client.type("exit\n");
      await client.exit(10_000);
      await sleep(300);
    }
    if (holder) {
      await holder.type("exit\n");
      await holder.exit(10_000);
    }
    console.log(second ? "\nwith a session open:" : "\nfirst session:");
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

async function hostLogs(dir: string): Promise<string[]> {
  const texts: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (/^terminal-.*\.log$/.test(entry.name)) {
      texts.push(await Deno.readTextFile(`${dir}/${entry.name}`));
    }
  }
  return texts;
}
