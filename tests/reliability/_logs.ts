/**
 * The logs of a world, for diagnoses and for counting what was refused:
 * the client's, the daemon's and each terminal's.
 *
 * @module
 */

import type { EtWorld } from "../e2e/_world.ts";

/** The text of every `terminal-*.log` in the world's runtime dir. */
export async function terminalLogs(world: EtWorld): Promise<string[]> {
  const logs: string[] = [];
  try {
    for await (const entry of Deno.readDir(world.runtimeDir)) {
      if (/^terminal-.*\.log$/.test(entry.name)) {
        logs.push(
          await Deno.readTextFile(`${world.runtimeDir}/${entry.name}`),
        );
      }
    }
  } catch { /* no runtime dir yet */ }
  return logs;
}

/** The daemon's log (its stderr) so far. */
export function daemonLog(world: EtWorld): Promise<string> {
  return Deno.readTextFile(`${world.dir}/daemon.log`).catch(() => "");
}

/** The client's log so far. */
export function clientLog(world: EtWorld): Promise<string> {
  return Deno.readTextFile(`${world.dir}/client.log`).catch(() => "");
}

/** The last `lines` lines of `text`. */
export function logTail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** How many lines of `text` match `pattern`. */
export function countLines(text: string, pattern: RegExp): number {
  return text.split("\n").filter((line) => pattern.test(line)).length;
}
