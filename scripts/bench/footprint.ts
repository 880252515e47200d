/**
 * What a session costs the machines, per client kind: CPU seconds of the
 * client and of the server side, memory of the server side for 1, 2 and
 * 10 sessions, and CPU while idle. "Server side" is every process that
 * serves the sessions and is not the shell itself: et's terminal processes
 * (or its per-user host) and daemon; sshd's session processes; ET 7.0's
 * etterminal processes and etserver.
 *
 * @module
 */

import type { BenchWorld, ClientKind } from "./e2e.ts";
import { findProcesses, rssOf, ussOf } from "./util.ts";
import { HOST_PROCESS_NAME } from "../../src/terminal/host_socket.ts";

/** Linux's USER_HZ: the unit of the CPU times in /proc/<pid>/stat. */
const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds (user + system) `pid` has used so far; 0 if it is gone. */
export async function cpuSecondsOf(pid: number): Promise<number> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // The command name (field 2) may hold spaces: count from its ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of the whole line.
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

/** Summed CPU seconds of `pids`. */
export async function cpuSeconds(pids: number[]): Promise<number> {
  const each = await Promise.all(pids.map(cpuSecondsOf));
  return each.reduce((sum, s) => sum + s, 0);
}

/** Memory of a set of processes, in bytes (processes gone count 0). */
export interface MemorySum {
  /** Summed RSS (shared pages counted once per process). */
  rss: number;
  /** Summed private memory (USS): what these processes alone hold. */
  uss: number;
}

/** Summed RSS and USS of `pids`. */
export async function memorySum(pids: number[]): Promise<MemorySum> {
  const sum = (values: number[]) =>
    values.reduce((total, b) => total + (Number.isNaN(b) ? 0 : b), 0);
  return {
    rss: sum(await Promise.all(pids.map(rssOf))),
    uss: sum(await Promise.all(pids.map(ussOf))),
  };
}

/** The live server-side processes of one client kind in this world. */
export async function serverPids(
  world: BenchWorld,
  kind: ClientKind,
): Promise<number[]> {
  switch (kind) {
    case "et":
      // The session processes (or per-user host) and the daemon.
      return await findProcesses(({ argv, env, name }) =>
        (name === HOST_PROCESS_NAME &&
          env.includes(`ET_ROUTER_SOCKET=${world.routerPath}`)) ||
        (argv.includes("server") && argv.includes(world.routerPath))
      );
    case "ssh": {
      // sshd's per-connection processes ("sshd: user [priv]", "sshd:
      // user@pts/N") under this world's listener, which every kind shares.
      const listener = await findProcesses(({ argv }) =>
        argv.some((arg) => arg.includes(`${world.sshd.dir}/sshd_config`))
      );
      const under = await descendants(listener);
      return await findProcesses(({ pid, argv }) =>
        under.has(pid) && argv.length === 1 && /^sshd: \S+/.test(argv[0])
      );
    }
    case "et-cpp":
      return await findProcesses(({ argv }) =>
        /(^|\/)(etterminal|etserver)$/.test(argv[0] ?? "") &&
        argv.some((arg) => arg.includes("et-cpp-bench-"))
      );
  }
}

/** Every process below `roots` in the process tree. */
async function descendants(roots: number[]): Promise<Set<number>> {
  const children = new Map<number, number[]>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      const parent = Number(
        stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1],
      );
      children.set(parent, [...children.get(parent) ?? [], Number(entry.name)]);
    } catch {
      // Gone meanwhile.
    }
  }
  const found = new Set<number>();
  const queue = [...roots];
  while (queue.length > 0) {
    for (const child of children.get(queue.pop()!) ?? []) {
      if (!found.has(child)) {
        found.add(child);
        queue.push(child);
      }
    }
  }
  return found;
}
