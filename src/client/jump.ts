/**
 * The client's side of `--jumphost`: parsing the hops, the `-J` option
 * that sends the ssh bootstraps through them (ssh's ProxyJump), and the
 * start of a jump relay on each hop, last hop first, so that each relay
 * learns where the next one (or the destination) listens. The TCP leg then
 * goes client → hop 1 → … → destination, sealed end to end: a relay is
 * given the session id and where to dial, never the secret.
 *
 * @module
 */

import { logger } from "../log.ts";
import {
  type DaemonUse,
  encodeBootstrap,
  type PortRange,
  type SessionLimits,
} from "../session/mod.ts";
import {
  type Destination,
  parseDestination,
  sshTarget,
} from "./destination.ts";
import { startRemoteTerminal } from "./ssh.ts";

const log = logger("jump");

/** Most hops of a `--jumphost` chain. */
export const MAX_JUMP_HOPS = 8;

/** A jumphost of the chain: how ssh reaches it and its et port. */
export interface JumpHop {
  /** `[user@]host` as given (for ssh). */
  destination: Destination;
  /** The et port the previous hop (or the client) dials there. */
  port: number;
}

/**
 * Parses `--jumphost`: one `[user@]host[:port]`, or several separated by
 * commas (nearest first), each port being that hop's et server port
 * (`defaultPort`, from `--jport`, where none is given). Throws a one-line
 * Error naming the bad part.
 *
 * @example
 * ```ts
 * parseJumpHosts("bastion,admin@inner:2023", 2022);
 * // [{ destination: { host: "bastion" }, port: 2022 },
 * //  { destination: { user: "admin", host: "inner", port: 2023 }, port: 2023 }]
 * ```
 */
export function parseJumpHosts(text: string, defaultPort: number): JumpHop[] {
  const parts = text.split(",");
  if (parts.length > MAX_JUMP_HOPS) {
    throw new Error(`--jumphost: at most ${MAX_JUMP_HOPS} hops`);
  }
  return parts.map((part) => {
    if (part === "") throw new Error(`--jumphost: empty hop in '${text}'`);
    let destination: Destination;
    try {
      destination = parseDestination(part);
    } catch {
      throw new Error(
        `--jumphost: malformed hop '${part}' (expected [user@]host[:port])`,
      );
    }
    return { destination, port: destination.port ?? defaultPort };
  });
}

/**
 * The ssh options that send a connection through the first `count` hops
 * (`-J a,user@b`, ssh's ProxyJump); none for 0. Ports are the et ports,
 * not ssh's: ssh takes its port for each hop from its own config.
 */
export function sshJumpOptions(hops: JumpHop[], count: number): string[] {
  if (count === 0) return [];
  const spec = hops.slice(0, count).map(({ destination }) => {
    const host = destination.host.includes(":")
      ? `[${destination.host}]`
      : destination.host;
    return destination.user ? `${destination.user}@${host}` : host;
  });
  return ["-J", spec.join(",")];
}

/** Where a hop (or the destination) takes connections, as seen before it. */
export interface Endpoint {
  hostname: string;
  port: number;
  /** True when a relay listens itself (no daemon on that hop). */
  ownPort: boolean;
}

/** Options of {@link startJumpRelays}. */
export interface JumpRelaysOptions {
  /** The user's ssh command line, split. */
  ssh: string[];
  terminalPath: string;
  hops: JumpHop[];
  /** Each hop's host name as `ssh -G` gives it (what the hop before dials). */
  hopHostnames: string[];
  /** The session id, 32 hex digits. */
  id: string;
  /** Where the destination takes the session's connections. */
  destination: Endpoint;
  daemon: DaemonUse;
  portRange: PortRange;
  limits: Pick<SessionLimits, "connectTimeoutMs" | "sessionTimeoutMs">;
}

/**
 * Starts a jump relay on every hop, the last first (each over ssh through
 * the hops before it), each told to dial what the one after it reported;
 * resolves with where the client dials: the first hop's relay. Throws a
 * one-line Error naming the hop that failed.
 */
export async function startJumpRelays(
  options: JumpRelaysOptions,
): Promise<Endpoint> {
  let next = options.destination;
  for (let i = options.hops.length - 1; i >= 0; i--) {
    const hop = options.hops[i];
    const target = sshTarget(hop.destination);
    let report;
    try {
      report = await startRemoteTerminal({
        ssh: [...options.ssh, ...sshJumpOptions(options.hops, i)],
        target,
        terminalPath: options.terminalPath,
        bootstrapLine: encodeBootstrap({
          op: "jump",
          id: options.id,
          host: next.hostname,
          port: next.port,
          daemon: options.daemon,
          portRange: options.portRange,
          limits: options.limits,
        }),
      });
    } catch (error) {
      // Its messages name the hop already.
      throw new Error(`jumphost: ${(error as Error).message}`);
    }
    if (!("id" in report) || report.id !== options.id) {
      throw new Error(
        `jumphost: ${target}: unexpected answer from et terminal`,
      );
    }
    next = {
      hostname: options.hopHostnames[i],
      port: report.port ?? hop.port,
      ownPort: report.port !== undefined,
    };
    log.info(
      `jump relay on ${target} takes the session at ${next.hostname}:${next.port}${
        next.ownPort ? " (its own port: no daemon there)" : ""
      }`,
    );
  }
  return next;
}
