/**
 * Which keystrokes are the slow ones: per-key echo times of one `et` and one
 * `ssh -tt` session in one world (rounds alternate), then the slowest keys
 * with their place in the run (the first key after a Ctrl-U pause is marked),
 * and the context switches (thread wake-ups, mostly) per keystroke of this
 * checkout's `et` processes (client, terminal, daemon) while et's keys run.
 * With `json-out`, the per-key times are written there (to pool runs).
 *
 * ```
 * deno run -A scripts/bench/echo_tail.ts [rounds=2] [keys=200] [json-out]
 * ```
 *
 * @module
 */
import { ROOT, startWorld } from "../../tests/e2e/_world.ts";
import {
  type BenchWorld,
  clientArgv,
  closeAllClients,
  echoLatencies,
  endSession,
  firstAnswer,
  startSession,
} from "./e2e.ts";
import { WatchedProcess } from "./watched.ts";
import { fixed, percentile } from "./util.ts";

const rounds = Number(Deno.args[0] ?? 2);
const keys = Number(Deno.args[1] ?? 200);
const out = Deno.args[2];

/** "p50 1.23 p99 4.56" of `samples` (ms). */
function line(samples: number[]): string {
  return `p50 ${fixed(percentile(samples, 50), 2)} p90 ${
    fixed(percentile(samples, 90), 2)
  } p99 ${fixed(percentile(samples, 99), 2)}`;
}

/** ET_SWITCH_DETAIL=1: context switches per thread name too. */
const DETAIL = Deno.env.get("ET_SWITCH_DETAIL") === "1";

/** Context switches of every thread of every process running our main.ts. */
async function contextSwitches(): Promise<Record<string, number>> {
  const totals: Record<string, number> = {};
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`);
      if (!cmdline.includes(`${ROOT}/main.ts`)) continue;
      const role = cmdline.split("\0").includes("terminal")
        ? "terminal"
        : cmdline.split("\0").includes("server")
        ? "daemon"
        : "client";
      for await (const task of Deno.readDir(`/proc/${entry.name}/task`)) {
        const status = await Deno.readTextFile(
          `/proc/${entry.name}/task/${task.name}/status`,
        );
        const thread = task.name === entry.name
          ? "main"
          : status.match(/^Name:\s+(.*)$/m)?.[1] ?? "?";
        for (const match of status.matchAll(/ctxt_switches:\s+(\d+)/g)) {
          totals[role] = (totals[role] ?? 0) + Number(match[1]);
          if (DETAIL) {
            const key = `${role}/${thread}`;
            totals[key] = (totals[key] ?? 0) + Number(match[1]);
          }
        }
      }
    } catch {
      // gone meanwhile
    }
  }
  return totals;
}

const world: BenchWorld = await startWorld();
const all: Record<string, number[][]> = { et: [], ssh: [] };
try {
  const trace = Deno.env.get("ET_ECHO_TRACE");
  let et: WatchedProcess;
  if (trace) {
    et = new WatchedProcess(
      clientArgv(world, "et", undefined, undefined, { ET_ECHO_TRACE: trace }),
      "pty",
    );
    await firstAnswer(et, "et");
  } else {
    et = await startSession(world, "et");
  }
  const ssh = await startSession(world, "ssh");
  const switches: Record<string, number> = {};
  for (let round = 1; round <= rounds; round++) {
    const before = await contextSwitches();
    const sent: number[] = [];
    const e = await echoLatencies(et, keys, 20, trace ? sent : undefined);
    const after = await contextSwitches();
    for (const role in after) {
      switches[role] = (switches[role] ?? 0) + after[role] -
        (before[role] ?? 0);
    }
    if (trace) {
      await Deno.writeTextFile(
        `${trace}.bench`,
        sent.map((at, i) => `${at.toFixed(3)} ${e[i].toFixed(3)} ${i}`)
          .join("\n") + "\n",
        { append: true },
      );
    }
    const s = await echoLatencies(ssh, keys);
    all.et.push(e);
    all.ssh.push(s);
    console.log(`round ${round}: et ${line(e)}, ssh ${line(s)}`);
  }
  for (const kind of ["et", "ssh"]) {
    const flat = all[kind].flatMap((r, round) =>
      r.map((ms, i) => ({ ms, i, round }))
    );
    flat.sort((a, b) => b.ms - a.ms);
    const slow = flat.slice(0, Math.ceil(flat.length * 0.03));
    console.log(
      `${kind} slowest: ${
        slow.map((k) =>
          `${fixed(k.ms, 2)}@${k.round}:${k.i}${k.i % 20 === 0 ? "*" : ""}`
        ).join(" ")
      }`,
    );
    const pause = flat.filter((k) => k.i % 20 === 0).map((k) => k.ms);
    const rest = flat.filter((k) => k.i % 20 !== 0).map((k) => k.ms);
    console.log(
      `${kind} after pause (${pause.length}): ${line(pause)}; others: ${
        line(rest)
      }`,
    );
  }
  console.log(
    `et context switches per key: ${
      Object.entries(switches).map(([role, n]) =>
        `${role} ${fixed(n / (rounds * keys), 1)}`
      ).join(", ")
    }`,
  );
  const load = (await Deno.readTextFile("/proc/loadavg")).trim();
  console.log(`load ${load}`);
  if (out) await Deno.writeTextFile(out, JSON.stringify(all));
  await endSession(et);
  await endSession(ssh);
} finally {
  await closeAllClients();
  await world.close();
}
