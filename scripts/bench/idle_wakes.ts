/**
 * Where an idle session's CPU goes: starts the test world, one `et` and one
 * `ssh -tt` session, waits, then reads for each process (client, per-user
 * host, daemon; ssh and its sshd processes) the CPU time of all its threads
 * in nanoseconds (/proc/<pid>/task/<tid>/schedstat) and its context
 * switches over `seconds` (a wake is roughly one voluntary switch), after
 * `settle` seconds of idleness. The world's runtime directory is private,
 * so other runs on the machine listing their sessions do not wake this
 * one's host. Usage:
 * `deno run -A scripts/bench/idle_wakes.ts [seconds] [settle]`.
 *
 * @module
 */

import { startWorld } from "../../tests/e2e/_world.ts";
import { daemonPid, endSession, startSession, terminalPids } from "./e2e.ts";
import { serverPids } from "./footprint.ts";
import { sleep } from "./util.ts";

/** CPU ns and voluntary context switches summed over a process's threads. */
async function threadStats(
  pid: number,
): Promise<{ ns: number; switches: number; threads: number }> {
  let ns = 0, switches = 0, threads = 0;
  try {
    for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
      try {
        const sched = await Deno.readTextFile(
          `/proc/${pid}/task/${task.name}/schedstat`,
        );
        ns += Number(sched.split(" ")[0]);
        const status = await Deno.readTextFile(
          `/proc/${pid}/task/${task.name}/status`,
        );
        const match = /voluntary_ctxt_switches:\s+(\d+)/.exec(status);
        switches += Number(match?.[1] ?? 0);
        threads++;
      } catch {
        // thread gone
      }
    }
  } catch {
    // process gone
  }
  return { ns, switches, threads };
}

const seconds = Number(Deno.args[0] ?? 10);
const settle = Number(Deno.args[1] ?? 2);
const world = await startWorld({ privateRuntime: true });
try {
  const et = await startSession(world, "et");
  const ssh = await startSession(world, "ssh");
  await sleep(settle * 1000);
  const daemon = await daemonPid(world);
  const hosts = await terminalPids(world);
  const roles: Array<[string, number]> = [
    ["et client", et.pid],
    ...hosts.map((pid): [string, number] => ["et host", pid]),
    ["et daemon", daemon],
    ["ssh client", ssh.pid],
    ...(await serverPids(world, "ssh")).map((pid): [string, number] => [
      "sshd",
      pid,
    ]),
  ];
  const before = await Promise.all(roles.map(([, pid]) => threadStats(pid)));
  await sleep(seconds * 1000);
  const after = await Promise.all(roles.map(([, pid]) => threadStats(pid)));
  let total = 0;
  roles.forEach(([role, pid], i) => {
    const ms = (after[i].ns - before[i].ns) / 1e6;
    if (role.startsWith("et")) total += ms;
    const wakes = after[i].switches - before[i].switches;
    console.log(
      `${role.padEnd(11)} pid ${pid}: ${(ms / seconds).toFixed(2)} ms CPU/s (${
        (ms / seconds / 10).toFixed(3)
      } %), ${(wakes / seconds).toFixed(1)} wakes/s, ${
        wakes ? (ms * 1000 / wakes).toFixed(0) : "-"
      } µs/wake, ${after[i].threads} threads`,
    );
  });
  console.log(
    `et total: ${(total / seconds / 10).toFixed(3)} % over ${seconds} s`,
  );
  await endSession(et);
  await endSession(ssh);
} finally {
  await world.close();
}
