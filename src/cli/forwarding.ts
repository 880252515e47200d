/**
 * The forwarding options of the command line (`-t`, `-r`, `-N`, `-f`,
 * `--ssh-socket`) turned into the client's tunnels, checked against the
 * rest of the command line.
 *
 * @module
 */

import { parseTunnelSpecs, type TunnelSpec } from "../session/mod.ts";

/** What the forwarding options ask for. */
export interface Forwarding {
  /** Forward and reverse tunnels, in the order given. */
  tunnels: TunnelSpec[];
  /** Tunnels only, no terminal (`-N`). */
  noTerminal: boolean;
  /** The agent socket to forward (`-f`), if any. */
  agentSocket?: string;
}

/** The rest of the command line, as far as forwarding cares. */
export interface ForwardingContext {
  /** A remote command was given. */
  command: boolean;
  attach: boolean;
  list: boolean;
  /** The client's SSH_AUTH_SOCK. */
  authSock: string | undefined;
}

/**
 * Reads the forwarding options from parsed flags; throws a one-line Error
 * (a usage error) for a malformed tunnel or a contradiction.
 *
 * @example
 * ```ts
 * forwardingOptions({ tunnel: ["8080:80"], "no-terminal": true }, {
 *   command: false, attach: false, list: false, authSock: undefined,
 * }); // { tunnels: [...], noTerminal: true }
 * ```
 */
export function forwardingOptions(
  values: Record<string, unknown>,
  context: ForwardingContext,
): Forwarding {
  const tunnels: TunnelSpec[] = [];
  for (const text of (values.tunnel as string[] | undefined) ?? []) {
    tunnels.push(...parseTunnelSpecs(text, "forward"));
  }
  const reverse = (values.reversetunnel as string[] | undefined) ?? [];
  for (const text of reverse) {
    tunnels.push(...parseTunnelSpecs(text, "reverse"));
  }
  const noTerminal = values["no-terminal"] === true;
  const agent = values["forward-ssh-agent"] === true;
  const socketFlag = values["ssh-socket"] as string | undefined;
  if (noTerminal && context.command) {
    throw new Error("-N/--no-terminal runs no command: drop the command");
  }
  if (noTerminal && (context.attach || context.list)) {
    throw new Error(
      "-N/--no-terminal starts a new session: not with --attach or --list",
    );
  }
  if ((reverse.length > 0 || agent) && context.attach) {
    throw new Error(
      "-r and -f set up a new session: not with --attach (-t works)",
    );
  }
  if (socketFlag !== undefined && !agent) {
    throw new Error("--ssh-socket goes with -f/--forward-ssh-agent");
  }
  let agentSocket: string | undefined;
  if (agent) {
    agentSocket = socketFlag ?? context.authSock;
    if (!agentSocket) {
      throw new Error(
        "-f/--forward-ssh-agent: no agent (SSH_AUTH_SOCK is unset; give --ssh-socket PATH)",
      );
    }
    if (!agentSocket.startsWith("/")) {
      throw new Error(`--ssh-socket '${agentSocket}' must be an absolute path`);
    }
  }
  return { tunnels, noTerminal, agentSocket };
}
