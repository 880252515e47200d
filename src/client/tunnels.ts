/**
 * The client's side of a session's tunnels: listeners for forward tunnels
 * (`-t`, ssh's LocalForward), opened before the session is bootstrapped so
 * a taken port fails in one line and nothing is left behind; and the
 * dialing of reverse tunnels' targets (`-r`, the agent of `-f`), which the
 * session names by index so it can never make the client dial anything the
 * user did not ask for.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";
import {
  dialEndpoint,
  formatEndpoint,
  formatTunnel,
  parseSshForward,
  type TunnelEndpoint,
  type TunnelMessage,
  TunnelMux,
  type TunnelSpec,
} from "../session/mod.ts";
import { acceptEach, type EternalConnection } from "../transport/mod.ts";

const log = logger("tunnels");

/** What the ssh config asks to forward, as {@linkcode configuredForwarding} reads it. */
export interface ConfiguredForwarding {
  /** LocalForward and RemoteForward entries as tunnels. */
  tunnels: TunnelSpec[];
  /** The agent to forward (ForwardAgent yes), if any. */
  agentSocket?: string;
}

/**
 * The forwarding an ssh config gives a host (from `ssh -G`): its
 * LocalForward and RemoteForward entries become tunnels, and ForwardAgent
 * forwards the socket it names (ssh allows a path or `$VAR` there), else
 * IdentityAgent's, else `$SSH_AUTH_SOCK`'s. A malformed
 * entry throws a one-line error naming it.
 *
 * @example
 * ```ts
 * configuredForwarding({ localForwards: ["8080:localhost:80"], remoteForwards: [], forwardAgent: false, forwardAgentSocket: null, identityAgent: null });
 * ```
 */
export function configuredForwarding(config: {
  localForwards: string[];
  remoteForwards: string[];
  forwardAgent: boolean;
  forwardAgentSocket: string | null;
  identityAgent: string | null;
}): ConfiguredForwarding {
  const tunnels = [
    ...config.localForwards.map((text) => parseSshForward(text, "forward")),
    ...config.remoteForwards.map((text) => parseSshForward(text, "reverse")),
  ];
  if (!config.forwardAgent) return { tunnels };
  let agent = config.forwardAgentSocket ?? config.identityAgent ??
    Deno.env.get("SSH_AUTH_SOCK");
  // ssh expands "$VAR" in both; -G prints it unexpanded.
  if (agent?.startsWith("$")) agent = Deno.env.get(agent.slice(1));
  if (agent?.startsWith("~/")) {
    agent = `${Deno.env.get("HOME") ?? ""}${agent.slice(1)}`;
  }
  if (!agent?.startsWith("/")) {
    log.warn("ForwardAgent is set but no agent socket is known: not forwarded");
    return { tunnels };
  }
  return { tunnels, agentSocket: agent };
}

/**
 * The reverse tunnel that forwards an ssh agent: a socket in the session's
 * private directory, exported as SSH_AUTH_SOCK, carried to `agentSocket`.
 */
export function agentTunnel(agentSocket: string): TunnelSpec {
  return {
    direction: "reverse",
    listen: { kind: "env", name: "SSH_AUTH_SOCK" },
    target: { kind: "unix", path: agentSocket },
  };
}

/**
 * The client side of one session's tunnels.
 *
 * @example
 * ```ts
 * const tunnels = await ClientTunnels.listen(specs); // before the bootstrap
 * bootstrap({ ..., reverseTunnels: tunnels.reverseListens });
 * tunnels.start(connection);
 * ```
 */
export class ClientTunnels {
  readonly #forward: Array<{ spec: TunnelSpec; listener: Deno.Listener }>;
  readonly #reverse: TunnelSpec[];
  readonly #mux: TunnelMux;
  #closed = false;
  /**
   * Where refusals of forward connections are shown (`-N` sets stderr);
   * they are always in the log.
   */
  onRefused: (reason: string) => void = () => {};

  private constructor(
    forward: Array<{ spec: TunnelSpec; listener: Deno.Listener }>,
    reverse: TunnelSpec[],
  ) {
    this.#forward = forward;
    this.#reverse = reverse;
    this.#mux = new TunnelMux({
      side: "client",
      dial: (request) => {
        if (!("tunnel" in request)) {
          return Promise.reject(new Error("the client dials its own -r only"));
        }
        const spec = this.#reverse[request.tunnel];
        if (!spec) {
          return Promise.reject(
            new Error(`no reverse tunnel ${request.tunnel}`),
          );
        }
        return dialEndpoint(spec.target);
      },
      onRefused: (reason) => this.onRefused(reason),
    });
  }

  /**
   * Opens a listener for each forward tunnel (TCP on its bind address, or
   * a Unix socket). Throws a one-line Error naming the tunnel when one
   * cannot listen, having closed the others.
   */
  static async listen(specs: TunnelSpec[]): Promise<ClientTunnels> {
    const forward: Array<{ spec: TunnelSpec; listener: Deno.Listener }> = [];
    try {
      for (const spec of specs) {
        if (spec.direction !== "forward") continue;
        forward.push({ spec, listener: await listenOn(spec) });
      }
    } catch (error) {
      for (const { listener } of forward) listener.close();
      throw error;
    }
    return new ClientTunnels(
      forward,
      specs.filter((spec) => spec.direction === "reverse"),
    );
  }

  /** Where the session is to listen for each reverse tunnel, in order. */
  get reverseListens(): TunnelEndpoint[] {
    return this.#reverse.map((spec) => spec.listen);
  }

  /** True when there is any tunnel at all. */
  get any(): boolean {
    return this.#forward.length > 0 || this.#reverse.length > 0;
  }

  /** The bound port of each TCP forward listener, in order (tests, logs). */
  get forwardPorts(): number[] {
    return this.#forward.flatMap(({ listener }) =>
      listener.addr.transport === "tcp" ? [listener.addr.port] : []
    );
  }

  /** Tunnel connections open now. */
  get activeCount(): number {
    return this.#mux.activeCount;
  }

  /** Starts carrying forward connections over `connection`. */
  start(connection: EternalConnection) {
    this.#mux.use(connection);
    for (const { spec, listener } of this.#forward) {
      // Ends once close() closes the listener.
      acceptEach(
        listener,
        (conn) => this.#mux.carry(conn, { target: spec.target }),
      );
    }
  }

  /** Acts on a tunnel message from the session. */
  handle(message: TunnelMessage) {
    this.#mux.handle(message);
  }

  /** Closes the listeners and every tunnel connection. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#mux.close();
    for (const { listener } of this.#forward) {
      try {
        listener.close();
      } catch { /* closed */ }
    }
  }
}

function listenOn(spec: TunnelSpec): Deno.Listener {
  const where = spec.listen;
  try {
    if (where.kind === "unix") {
      return Deno.listen({ transport: "unix", path: where.path });
    }
    if (where.kind === "tcp") {
      return Deno.listen({ hostname: where.host, port: where.port });
    }
  } catch (error) {
    throw new Error(
      `cannot listen on ${formatEndpoint(where)} for -t ${
        formatTunnel(spec)
      }: ${errorMessage(error)}`,
    );
  }
  throw new Error(`-t cannot listen on ${formatEndpoint(where)}`);
}
