/**
 * Keystroke echo alone, with more keys than `deno task bench --only echo`:
 * one world, one `et` and one `ssh -tt` session, `rounds` rounds of `keys`
 * keystrokes each (et then ssh, alternating, so load drift hits both), and
 * p50/p99 per round and pooled, with the load average. Arguments after
 * `--` go to `et` (e.g. `-- --predict never`).
 *
 * ```
 * deno run -A scripts/bench/echo_runs.ts [rounds=3] [keys=100] [-- et args]
 * ```
 *
 * @module
 */
import { startWorld } from "../../tests/e2e/_world.ts";
import {
  type BenchWorld,
  closeAllClients,
  echoLatencies,
  endSession,
  firstAnswer,
  startSession,
} from "./e2e.ts";
import { WatchedProcess } from "./watched.ts";
import { fixed, percentile } from "./util.ts";

const dash = Deno.args.indexOf("--");
const positional = dash >= 0 ? Deno.args.slice(0, dash) : Deno.args;
const rounds = Number(positional[0] ?? 3);
const keys = Number(positional[1] ?? 100);
const etArgs = dash >= 0 ? Deno.args.slice(dash + 1) : [];

/** "p50 1.23 p99 4.56" of `samples` (ms). */
function line(samples: number[]): string {
  return `p50 ${fixed(percentile(samples, 50), 2)} p99 ${
    fixed(percentile(samples, 99), 2)
  }`;
}

const world: BenchWorld = await startWorld({ commandRcFiles: true });
const started: WatchedProcess[] = [];
try {
  let et: WatchedProcess;
  if (etArgs.length === 0) {
    et = await startSession(world, "et");
  } else {
    et = new WatchedProcess(world.client(etArgs), "pty");
    started.push(et);
    await firstAnswer(et, "et");
  }
  const ssh = await startSession(world, "ssh");
  const pooled = { et: [] as number[], ssh: [] as number[] };
  for (let round = 1; round <= rounds; round++) {
    const etSamples = await echoLatencies(et, keys);
    const sshSamples = await echoLatencies(ssh, keys);
    pooled.et.push(...etSamples);
    pooled.ssh.push(...sshSamples);
    console.log(
      `round ${round}: et ${line(etSamples)}, ssh ${line(sshSamples)}`,
    );
  }
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
  console.log(
    `pooled (${pooled.et.length} keys each): et ${line(pooled.et)}, ssh ${
      line(pooled.ssh)
    }; load ${load}`,
  );
  await endSession(et);
  await endSession(ssh);
} finally {
  await Promise.allSettled(started.map((process) => process.close()));
  await closeAllClients();
  await world.close();
}
