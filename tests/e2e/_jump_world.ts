/**
 * A world with jumphosts for `--jumphost` tests: besides the world's own
 * sshd and daemon (the destination, `et-test`), each hop is another "host"
 * on this machine: its own sshd (so the terminal role can tell the hosts
 * apart by the port ssh reached, `$SSH_CONNECTION`), its own daemon (or
 * none: no-root mode), router socket and runtime directory. One ssh config
 * names them all; an ssh wrapper keeps a copy of each bootstrap line so a
 * test learns the passkey the way the client hands it over.
 *
 * @module
 */

import { type Sshd, startSshd } from "../helpers/sshd.ts";
import {
  type DaemonProcess,
  ET,
  type EtWorld,
  findTerminals,
  spawnDaemon,
  stopDaemon,
  type TerminalProcess,
  withWorld,
} from "./_world.ts";

/** What a hop should be. */
export interface HopSpec {
  /** Its ssh host alias, e.g. `et-jump`. */
  alias: string;
  /** Run an `et server` there. @default {true} */
  daemon?: boolean;
}

/** One jumphost of the world. */
export interface Hop {
  alias: string;
  sshd: Sshd;
  /** Its daemon, or null (no-root mode). */
  daemon: DaemonProcess | null;
  routerPath: string;
  /** Where its relays keep their control sockets and logs. */
  runtimeDir: string;
  /** Its live jump relays (`et terminal --relay`). */
  relays(): Promise<TerminalProcess[]>;
}

/** A world with jumphosts. */
export interface JumpWorld {
  world: EtWorld;
  hops: Hop[];
  /**
   * Client argv for the destination `et-test:<port>` (the world daemon's
   * port unless given) through `jumphost` (the `--jumphost` value), plus
   * `extra`.
   */
  client(jumphost: string, extra?: string[], port?: number): string[];
  /** The bootstrap lines the client sent so far, parsed. */
  bootstrapLines(): Promise<Record<string, unknown>[]>;
  /** The ssh arguments of each bootstrap so far, in the same order. */
  bootstrapArgs(): Promise<string[]>;
}

/**
 * Starts a world ({@linkcode withWorld}, private runtime; the destination
 * without a daemon if `destination.daemon` is false) and a hop per spec,
 * runs `body`, and always tears everything down (relays included).
 */
export async function withJumpWorld(
  specs: HopSpec[],
  body: (jw: JumpWorld) => Promise<void>,
  destination: { daemon?: boolean } = {},
): Promise<void> {
  await withWorld({ privateRuntime: true, ...destination }, async (world) => {
    const hops: Hop[] = [];
    try {
      for (const spec of specs) {
        const dir = `${world.dir}/hop-${spec.alias}`;
        await Deno.mkdir(dir, { mode: 0o755 });
        await Deno.mkdir(`${dir}/run`, { mode: 0o700 });
        const routerPath = `${dir}/router.sock`;
        const sshd = await startSshd();
        const daemon = spec.daemon === false
          ? null
          : await spawnDaemon(dir, routerPath, 0);
        hops.push({
          alias: spec.alias,
          sshd,
          daemon,
          routerPath,
          runtimeDir: `${dir}/run/et`,
          relays: async () =>
            (await findTerminals(routerPath)).filter((p) =>
              / terminal --relay$/.test(p.cmdline)
            ),
        });
      }
      // One config: the destination as the world has it, each hop under
      // its alias.
      const configs = [await Deno.readTextFile(world.sshd.configPath)];
      for (const hop of hops) {
        configs.push(
          (await Deno.readTextFile(hop.sshd.configPath)).replace(
            /^Host \S+$/m,
            `Host ${hop.alias}`,
          ),
        );
      }
      const configPath = `${world.dir}/jump_ssh_config`;
      await Deno.writeTextFile(configPath, configs.join("\n"));
      // The terminal role as each host runs it: its own router and
      // runtime directory, told apart by the sshd port ssh reached.
      const cases = hops.map((hop) =>
        `  ${hop.sshd.port}) export ET_ROUTER_SOCKET=${hop.routerPath} ET_RUNTIME_DIR=${
          hop.runtimeDir.replace(/\/et$/, "")
        } ;;`
      );
      const terminalScript = `${world.dir}/et-on-this-host.sh`;
      await Deno.writeTextFile(
        terminalScript,
        [
          "#!/bin/sh",
          'case "${SSH_CONNECTION##* }" in',
          ...cases,
          `  *) export ET_ROUTER_SOCKET=${world.routerPath} ET_RUNTIME_DIR=${
            world.runtimeDir.replace(/\/et$/, "")
          } ;;`,
          "esac",
          `exec ${ET.join(" ")} "$@"`,
          "",
        ].join("\n"),
      );
      // The ssh that keeps each bootstrap line (in a private directory).
      const capture = `${world.dir}/capture`;
      await Deno.mkdir(capture, { mode: 0o700 });
      const ssh = `ssh -F ${configPath}`;
      const wrapper = `${capture}/ssh`;
      await Deno.writeTextFile(
        wrapper,
        [
          "#!/bin/sh",
          `case " $* " in *" -G "*) exec ${ssh} "$@";; esac`,
          "IFS= read -r line",
          `printf '%s\\n' "$line" >> ${capture}/lines`,
          `printf '%s\\n' "$*" >> ${capture}/args`,
          `{ printf '%s\\n' "$line"; exec cat; } | exec ${ssh} "$@"`,
          "",
        ].join("\n"),
        { mode: 0o700 },
      );
      await body({
        world,
        hops,
        client: (jumphost, extra = [], port) =>
          world.client([
            "--ssh",
            wrapper,
            "--terminal-path",
            `sh ${terminalScript}`,
            "--jumphost",
            jumphost,
            ...extra,
          ], { port }),
        bootstrapArgs: async () =>
          (await Deno.readTextFile(`${capture}/args`).catch(() => ""))
            .split("\n").filter((line) => line !== ""),
        bootstrapLines: async () =>
          (await Deno.readTextFile(`${capture}/lines`).catch(() => ""))
            .split("\n").filter((line) => line !== "").map((line) =>
              JSON.parse(line)
            ),
      });
    } finally {
      for (const hop of hops) {
        for (const { pid } of await findTerminals(hop.routerPath)) {
          try {
            Deno.kill(pid, "SIGKILL");
          } catch { /* gone */ }
        }
        if (hop.daemon) await stopDaemon(hop.daemon, "SIGTERM");
        await hop.sshd.stop();
      }
    }
  });
}
