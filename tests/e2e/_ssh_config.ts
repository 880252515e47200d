/**
 * ssh client configs for end-to-end tests that need more than the test
 * sshd's own (`Host et-test`): other host names for the same server,
 * `Include`, `Match`, `SetEnv`, a wrong `User` for `-u` to fix.
 *
 * @module
 */

import type { EtWorld } from "./_world.ts";

/**
 * The settings of the test sshd's `Host et-test` block, without its
 * `Host`, `HostName` and any key named in `without` (lower case): what a
 * block for another name of the same server repeats.
 */
export async function serverSettings(
  world: EtWorld,
  without: string[] = [],
): Promise<string[]> {
  const text = await Deno.readTextFile(world.sshd.configPath);
  const drop = new Set(["host", "hostname", ...without]);
  return text.split("\n").map((line) => line.trim()).filter((line) =>
    line !== "" && !drop.has(line.split(/\s+/)[0].toLowerCase())
  );
}

/**
 * Writes `lines` as an ssh config in the world's dir (plus the files of
 * `includes`, by name) and returns the client argv of `world.client` with
 * `--ssh` pointing at it, `extra` options and `destination` instead of the
 * world's.
 */
export async function clientWithConfig(
  world: EtWorld,
  config: { lines: string[]; includes?: Record<string, string[]> },
  extra: string[],
  destination: string,
): Promise<string[]> {
  for (const [name, lines] of Object.entries(config.includes ?? {})) {
    await Deno.writeTextFile(`${world.dir}/${name}`, lines.join("\n") + "\n");
  }
  const path = `${world.dir}/ssh_config_${crypto.randomUUID().slice(0, 8)}`;
  await Deno.writeTextFile(path, config.lines.join("\n") + "\n");
  const argv = world.client(extra);
  argv[argv.indexOf("--ssh") + 1] = `ssh -F ${path}`;
  argv[argv.length - 1] = destination;
  return argv;
}
