/**
 * A session's tunnels on the remote host: the listeners of its reverse
 * tunnels (`-r`, the agent of `-f`), made before its program starts so the
 * program's environment can name their sockets, and the dialing for the
 * client's forward tunnels (`-t`). One per SessionHost; it outlives
 * reconnects (the listeners and the private socket directory stay) and is
 * closed with the session.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";
import {
  dialEndpoint,
  formatEndpoint,
  privateRuntimeDir,
  type TunnelEndpoint,
  type TunnelMessage,
  TunnelMux,
} from "../session/mod.ts";
import { acceptEach, type EternalConnection } from "../transport/mod.ts";

const log = logger("tunnels");

/**
 * A reverse tunnel could not listen: the user's mistake (a taken port, a
 * path in use), told to the client as its one error line.
 */
export class TunnelListenError extends Error {
  override name = "TunnelListenError";
}

/**
 * The private directory of a session's ENVVAR sockets (agent included):
 * inside the user's 0700 runtime directory, itself 0700.
 */
export async function tunnelSocketDir(idHex: string): Promise<string> {
  const dir = `${await privateRuntimeDir()}/tunnels-${idHex.slice(0, 16)}`;
  await Deno.mkdir(dir, { mode: 0o700 });
  // The umask may have narrowed it further, never widened: be exact.
  await Deno.chmod(dir, 0o700);
  return dir;
}

/**
 * The session side of the tunnels of one session.
 *
 * @example
 * ```ts
 * const tunnels = await SessionTunnels.open(idHex, request.reverseTunnels);
 * const program = await startProgram(spec, tunnels.env);
 * tunnels.use(connection); // on each (new) connection
 * ```
 */
export class SessionTunnels {
  /** Variables for the program: each ENVVAR socket's path. */
  readonly env: Record<string, string>;
  readonly #mux: TunnelMux;
  readonly #listeners: Deno.Listener[];
  readonly #dir: string | null;
  #closed = false;

  private constructor(
    mux: TunnelMux,
    listeners: Deno.Listener[],
    dir: string | null,
    env: Record<string, string>,
  ) {
    this.#mux = mux;
    this.#listeners = listeners;
    this.#dir = dir;
    this.env = env;
    // Each loop ends once close() closes its listener.
    listeners.forEach((listener, index) =>
      acceptEach(listener, (conn) => this.#mux.carry(conn, { tunnel: index }))
    );
  }

  /**
   * Listens for each reverse tunnel (in order: the client names them by
   * index). Throws a one-line Error when one cannot listen, having closed
   * the others.
   */
  static async open(
    idHex: string,
    reverse: TunnelEndpoint[],
  ): Promise<SessionTunnels> {
    const listeners: Deno.Listener[] = [];
    const env: Record<string, string> = {};
    let dir: string | null = null;
    try {
      for (const [index, endpoint] of reverse.entries()) {
        let listener: Deno.Listener;
        if (endpoint.kind === "env") {
          dir ??= await tunnelSocketDir(idHex);
          const path = `${dir}/${index}.sock`;
          listener = listen(
            () => Deno.listen({ transport: "unix", path }),
            endpoint,
          );
          await Deno.chmod(path, 0o600);
          env[endpoint.name] = path;
        } else if (endpoint.kind === "unix") {
          listener = listen(
            () => Deno.listen({ transport: "unix", path: endpoint.path }),
            endpoint,
          );
        } else {
          listener = listen(
            () => Deno.listen({ hostname: endpoint.host, port: endpoint.port }),
            endpoint,
          );
        }
        listeners.push(listener);
        log.info(
          `reverse tunnel ${index} listens on ${formatEndpoint(endpoint)}`,
        );
      }
    } catch (error) {
      for (const listener of listeners) listener.close();
      if (dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw error;
    }
    const mux = new TunnelMux({
      side: "server",
      // The client asks for what its user could reach from a shell here.
      dial: (request) => {
        if (!("target" in request)) {
          return Promise.reject(new Error("the session dials targets only"));
        }
        return dialEndpoint(request.target);
      },
    });
    return new SessionTunnels(mux, listeners, dir, env);
  }

  /** Tunnel connections open now. */
  get activeCount(): number {
    return this.#mux.activeCount;
  }

  /** Carries tunnels over `connection` (the current client's). */
  use(connection: EternalConnection) {
    this.#mux.use(connection);
  }

  /** Acts on a tunnel message from the client. */
  handle(message: TunnelMessage) {
    this.#mux.handle(message);
  }

  /** Closes listeners and connections, and removes the socket directory. */
  async close() {
    if (this.#closed) return;
    this.#closed = true;
    this.#mux.close();
    for (const listener of this.#listeners) {
      try {
        listener.close();
      } catch { /* closed */ }
    }
    if (this.#dir) {
      await Deno.remove(this.#dir, { recursive: true }).catch((error) =>
        log.warn(`cannot remove ${this.#dir}: ${errorMessage(error)}`)
      );
    }
  }
}

function listen(
  open: () => Deno.Listener,
  endpoint: TunnelEndpoint,
): Deno.Listener {
  try {
    return open();
  } catch (error) {
    throw new TunnelListenError(
      `cannot listen on ${formatEndpoint(endpoint)} for a reverse tunnel: ${
        errorMessage(error)
      }`,
    );
  }
}
