/**
 * Small helpers shared by the benchmark: statistics, progress output, and
 * reading other processes' memory from /proc.
 *
 * @module
 */

/** Writes a progress line to stderr (stdout carries only result lines). */
export function progress(message: string): void {
  const seconds = (performance.now() / 1000).toFixed(1).padStart(6);
  Deno.stderr.writeSync(new TextEncoder().encode(`[${seconds}s] ${message}\n`));
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The median of `values` (mean of the middle two for an even count). */
export function median(values: number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? sorted[mid]
    : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * The `p`-th percentile (0..100) of `values`, nearest-rank: with 200
 * samples p99 is the second-largest, a sample that really happened.
 */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** Formats `value` with `digits` decimals. */
export function fixed(value: number, digits = 1): string {
  return Number.isFinite(value) ? value.toFixed(digits) : "n/a";
}

/** Megabytes (10^6 bytes) per second for `bytes` moved in `ms`. */
export function mbPerSecond(bytes: number, ms: number): number {
  return bytes / 1e6 / (ms / 1000);
}

/** Bytes as megabytes (10^6), for memory lines. */
export function megabytes(bytes: number): number {
  return bytes / 1e6;
}

/** Resident set size of `pid` in bytes (VmRSS), or NaN if it is gone. */
export function rssOf(pid: number): Promise<number> {
  return statusField(pid, "VmRSS");
}

/** Peak resident set size of `pid` in bytes (VmHWM), or NaN if it is gone. */
export function peakRssOf(pid: number): Promise<number> {
  return statusField(pid, "VmHWM");
}

/**
 * Memory only `pid` holds, in bytes (USS: its private pages, from
 * smaps_rollup), or NaN if it is gone. RSS also counts the pages of the
 * executable and libraries that every process running them shares (a Deno
 * process: ~37 MB of its ~54 MB idle RSS), so USS is what one more process
 * or session really costs the machine.
 */
export async function ussOf(pid: number): Promise<number> {
  try {
    const rollup = await Deno.readTextFile(`/proc/${pid}/smaps_rollup`);
    const field = (name: string) =>
      Number(
        rollup.match(new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, "m"))?.[1] ?? 0,
      );
    return (field("Private_Clean") + field("Private_Dirty")) * 1024;
  } catch {
    return NaN;
  }
}

async function statusField(pid: number, field: string): Promise<number> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const match = status.match(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m"));
    return match ? Number(match[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** What {@link findProcesses} hands its predicate for each process. */
export interface ProcessInfo {
  pid: number;
  /** argv, split on NUL. */
  argv: string[];
  /** Environment entries `NAME=value` (empty if unreadable). */
  env: string[];
  /** Its name (`/proc/<pid>/comm`), e.g. `et-host` for et's user host. */
  name: string;
}

/** Pids of the processes for which `match` holds, read from /proc. */
export async function findProcesses(
  match: (info: ProcessInfo) => boolean,
): Promise<number[]> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const pid = Number(entry.name);
    try {
      const argv = (await Deno.readTextFile(`/proc/${pid}/cmdline`))
        .split("\0").filter((arg) => arg !== "");
      const env = await Deno.readTextFile(`/proc/${pid}/environ`)
        .then((text) => text.split("\0"), () => []);
      const name = (await Deno.readTextFile(`/proc/${pid}/comm`)).trim();
      if (match({ pid, argv, env, name })) found.push(pid);
    } catch {
      // Exited while we looked, or not ours to read.
    }
  }
  return found;
}

/** Rejects with `what` timed out if `promise` takes longer than `ms`. */
export async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what}: timed out after ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
