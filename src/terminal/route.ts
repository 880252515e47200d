/**
 * How clients reach a process of the terminal role that takes connections
 * for one session id (a jump relay): the daemon's hand-over on a
 * registration, kept across daemon restarts, or a TCP port of its own.
 * The user's host shares `keepRegistered` for each of its sessions.
 *
 * @module
 */

import { sleep } from "../deadline.ts";
import { errorMessage, logger } from "../log.ts";
import { type BootstrapRequest, DEFAULT_PORT_RANGE } from "../session/mod.ts";
import {
  DaemonRegistration,
  type HandedConnection,
} from "./daemon_registration.ts";
import { listenAddress, listenInRange } from "./own_port.ts";

const log = logger("terminal");

/** How clients reach a relay: through the daemon, or on its own port. */
export type Route =
  | { kind: "daemon"; registration: DaemonRegistration }
  | { kind: "own port"; listener: Deno.TcpListener };

/**
 * Registers with the daemon, unless the client said never; without a
 * daemon (unless the client required one) listens on a port of its own,
 * on the address the client reached over ssh (`$SSH_CONNECTION`, which
 * this process has from the launcher that ssh started). Throws a one-line
 * Error for the user when clients could not reach it.
 */
export async function chooseRoute(
  request: Pick<
    Extract<BootstrapRequest, { op: "new" }>,
    "daemon" | "portRange"
  >,
  routerPath: string,
  idHex: string,
): Promise<Route> {
  const registered = await registerUnlessNever(request, routerPath, idHex);
  if ("registration" in registered) {
    return { kind: "daemon", registration: registered.registration };
  }
  const hostname = listenAddress(Deno.env.get("SSH_CONNECTION"));
  const listener = listenInRange(
    hostname,
    request.portRange ?? DEFAULT_PORT_RANGE,
  );
  log.info(
    `${registered.why}; serving from ${hostname} port ${listener.addr.port} (no-root mode)`,
  );
  return { kind: "own port", listener };
}

/**
 * The daemon half of choosing a route: a registration for `idHex`, unless
 * the client said never (`--no-daemon`); else why there is none. Throws a
 * one-line Error when the client required a daemon (`--daemon-only`) and
 * none took the registration.
 */
export async function registerUnlessNever(
  request: Pick<Extract<BootstrapRequest, { op: "new" }>, "daemon">,
  routerPath: string,
  idHex: string,
): Promise<{ registration: DaemonRegistration } | { why: string }> {
  const daemon = request.daemon ?? "only";
  if (daemon === "never") return { why: "--no-daemon" };
  try {
    return {
      registration: await DaemonRegistration.register(routerPath, idHex),
    };
  } catch (error) {
    if (daemon === "only") {
      throw new Error(
        `no et server here (--daemon-only): ${errorMessage(error)}`,
      );
    }
    return { why: `no et server here: ${errorMessage(error)}` };
  }
}

/**
 * Holds the daemon registration and serves the connections handed over on
 * it; when the daemon goes away (a restart), registers again at once and
 * then every few hundred ms until it is back, so clients find the session
 * again as soon as the daemon listens. Connections already handed over
 * are ours and carry on meanwhile.
 */
export async function keepRegistered(
  registration: DaemonRegistration,
  routerPath: string,
  idHex: string,
  signal: AbortSignal,
  serve: (connection: HandedConnection) => unknown,
) {
  const id8 = idHex.slice(0, 8);
  let current: DaemonRegistration | null = registration;
  signal.addEventListener("abort", () => current?.close());
  let delay = 0;
  while (!signal.aborted) {
    if (current) {
      for (let handed; (handed = await current.accept()) !== null;) {
        serve(handed);
      }
      current = null;
      if (signal.aborted) return;
      log.warn(`${id8}: lost the daemon registration; registering again`);
      delay = 0;
    }
    if (delay > 0) await sleep(delay);
    if (signal.aborted) return;
    try {
      current = await DaemonRegistration.register(routerPath, idHex);
      if (signal.aborted) {
        current.close();
        return;
      }
      log.info(`${id8}: registered again with the daemon`);
    } catch (error) {
      log.info(`${id8}: register again failed: ${errorMessage(error)}`);
      delay = Math.min(Math.max(delay * 2, 100), 1000);
    }
  }
}
