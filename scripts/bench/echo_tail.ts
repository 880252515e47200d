/**
 * Which keystrokes are the slow ones: per-key echo times of one `et` and one
 * `ssh -tt` session in one world (rounds alternate), then the slowest keys
 * with their place in the run (the first key after a Ctrl-U pause is marked).
 *
 * ```
 * deno run -A scripts/bench/echo_tail.ts [rounds=2] [keys=200] [json-out]
 * ```
 *
 * @module
 */
import { startWorld } from "../../tests/e2e/_world.ts";
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
  for (let round = 1; round <= rounds; round++) {
    const sent: number[] = [];
    const e = await echoLatencies(et, keys, 20, sent);
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
  const load = (await Deno.readTextFile("/proc/loadavg")).trim();
  console.log(`load ${load}`);
  if (out) await Deno.writeTextFile(out, JSON.stringify(all));
  await endSession(et);
  await endSession(ssh);
} finally {
  await closeAllClients();
  await world.close();
}
