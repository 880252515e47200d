/**
 * What the reliability runs read about processes from /proc: resident
 * memory, CPU time, and which process is a world's daemon.
 *
 * @module
 */

import type { EtWorld } from "../e2e/_world.ts";

/** Clock ticks per second of /proc/<pid>/stat times (`getconf CLK_TCK`). */
let ticksPerSecond: number | undefined;

async function clockTicks(): Promise<number> {
  if (ticksPerSecond === undefined) {
    try {
      const out = await new Deno.Command("getconf", { args: ["CLK_TCK"] })
        .output();
      ticksPerSecond = Number(new TextDecoder().decode(out.stdout).trim()) ||
        100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** Resident set size of `pid` in bytes (VmRSS), NaN if it is gone. */
export async function rssOf(pid: number): Promise<number> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const match = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
    return match ? Number(match[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** CPU seconds `pid` has used (utime + stime), NaN if it is gone. */
export async function cpuSecondsOf(pid: number): Promise<number> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // The command name (field 2) may hold spaces: count from after it.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 (utime, stime) are 12 and 13 after the name.
    return (Number(fields[11]) + Number(fields[12])) / await clockTicks();
  } catch {
    return NaN;
  }
}

/** Pid of the world's `et server` (argv names its router socket). */
export async function daemonPidOf(world: EtWorld): Promise<number> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const argv = await Deno.readTextFile(`/proc/${entry.name}/cmdline`)
      .then((text) => text.split("\0"), (): string[] => []);
    if (argv.includes("server") && argv.includes(world.routerPath)) {
      found.push(Number(entry.name));
    }
  }
  // setpriv (a daemon run as another user) execs: one process either way.
  if (found.length !== 1) throw new Error(`found ${found.length} daemons`);
  return found[0];
}

/** Megabytes (10^6 bytes) with one decimal, for reports. */
export function mb(bytes: number): string {
  return Number.isFinite(bytes) ? (bytes / 1e6).toFixed(1) : "n/a";
}

/** Samples the RSS of `pids()` every `intervalMs`, keeping each one's peak. */
export class RssSampler {
  /** Highest RSS seen per pid, in bytes. */
  readonly peaks = new Map<number, number>();
  #timer: ReturnType<typeof setInterval>;
  #busy = false;

  /** Starts sampling. */
  constructor(pids: () => number[], intervalMs = 100) {
    this.#timer = setInterval(async () => {
      if (this.#busy) return;
      this.#busy = true;
      try {
        for (const pid of pids()) {
          const rss = await rssOf(pid);
          if (rss > (this.peaks.get(pid) ?? 0)) this.peaks.set(pid, rss);
        }
      } finally {
        this.#busy = false;
      }
    }, intervalMs);
  }

  /** The highest RSS seen of `pid` (0 if never sampled). */
  peak(pid: number): number {
    return this.peaks.get(pid) ?? 0;
  }

  /** Stops sampling. */
  stop(): void {
    clearInterval(this.#timer);
  }
}
