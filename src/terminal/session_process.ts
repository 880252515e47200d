/**
 * `et terminal --serve`: the process that hosts one session. It owns the
 * program (through SessionHost), serves its owner-only control socket, and
 * takes its clients' connections one of two ways: handed over by the
 * daemon on its registration (which it keeps alive across daemon
 * restarts), or, when no daemon takes the registration (or the client
 * said `--no-daemon`), accepted on a TCP port of its own (no-root mode);
 * and, whichever of those, from `et relay` over its control socket (a
 * client carried over ssh, `--over-ssh`). Each connection goes to the
 * same server handshake.
 *
 * @module
 */

import { sleep } from "../deadline.ts";
import {
  configureLog,
  errorMessage,
  fileSink,
  logger,
  type LogLevel,
} from "../log.ts";
import {
  type BootstrapRequest,
  decodeBootstrap,
  DEFAULT_PORT_RANGE,
  encodeReady,
  encodeRefusal,
  privateRuntimeDir,
} from "../session/mod.ts";
import {
  type BytePipe,
  type EternalConnectionOptions,
  livenessForKeepalive,
  serverHandshake,
  toHex,
} from "../transport/mod.ts";
import { reactor } from "../platform/reactor.ts";
import { controlSocketPath, serveControl } from "./control_socket.ts";
import {
  DaemonRegistration,
  type HandedConnection,
} from "./daemon_registration.ts";
import { readStdinLine } from "./local_io.ts";
import { listenAddress, listenInRange, serveOwnPort } from "./own_port.ts";
import { SessionHost } from "./session_host.ts";
import { TunnelListenError } from "./tunnels.ts";

const log = logger("terminal");

/**
 * How long the session outlives its connect deadline before giving up on
 * a client that never came: the client's own deadline counts from before
 * the ssh bootstrap, ours from after it.
 */
const CONNECT_MARGIN_MS = 5000;

/** Options of the session process. */
export interface TerminalOptions {
  /** The daemon's router socket. */
  routerPath: string;
  /** Transport tuning (tests shorten timers). */
  connection?: EternalConnectionOptions;
}

/** Runs one session until it ends. Returns the process exit code. */
export async function serveTerminal(options: TerminalOptions): Promise<number> {
  let request: BootstrapRequest;
  let dir: string;
  try {
    request = decodeBootstrap(await readStdinLine(10_000));
    if (request.op !== "new") throw new Error("not a new session");
    dir = await privateRuntimeDir();
  } catch (error) {
    console.log(`error: ${errorMessage(error)}`);
    return 1;
  }
  const idHex = toHex(request.secret.id);
  configureLog({
    level: logLevelFromEnv(Deno.env.get("ET_LOG_LEVEL")),
    sink: fileSink(`${dir}/terminal-${idHex.slice(0, 8)}.log`),
  });
  let host: SessionHost;
  try {
    host = await SessionHost.start({
      secret: request.secret,
      program: request.program,
      limits: {
        ...request.limits,
        connectTimeoutMs: request.limits.connectTimeoutMs + CONNECT_MARGIN_MS,
      },
      // The client's -k: both ends keep the same liveness policy.
      connection: request.limits.keepaliveMs === undefined
        ? options.connection
        : {
          ...options.connection,
          ...livenessForKeepalive(request.limits.keepaliveMs),
        },
      reverseTunnels: request.reverseTunnels,
      noTerminal: request.noTerminal,
    });
  } catch (error) {
    // A reverse tunnel that cannot listen is the user's to fix: the
    // client's one error line (a refusal), not a failure of et.
    console.log(
      error instanceof TunnelListenError
        ? encodeRefusal(errorMessage(error))
        : `error: ${errorMessage(error)}`,
    );
    return 1;
  }
  let route: Route;
  try {
    route = await chooseRoute(request, options.routerPath, idHex);
  } catch (error) {
    // No way in for clients (--daemon-only without a daemon, no free
    // port): the launcher passes this on as the client's one error line.
    log.warn(errorMessage(error));
    console.log(encodeRefusal(errorMessage(error)));
    await host.end("no way in for clients");
    return 1;
  }
  const ownPort = route.kind === "own port"
    ? route.listener.addr.port
    : undefined;
  const handshake = (pipe: BytePipe, peer: string) =>
    serverHandshake(pipe, (id) => host.connectionFor(id), {
      peer,
      retired: (id) => host.retiredFor(id),
    });
  const stop = new AbortController();
  const controlling = serveControl(controlSocketPath(dir, idHex), {
    // The port tells an attaching client where to dial.
    status: () => ({ ...host.info(), port: ownPort }),
    attach: (passkey, cols, rows, keepaliveMs) =>
      host.attach(passkey, cols, rows, keepaliveMs),
    end: () => host.end(),
    // `et relay` (--over-ssh): the control connection carries a client.
    relay: (conn) => {
      handshake(conn, "relay over ssh");
    },
  }, stop.signal).catch((error) =>
    log.error(`control socket failed: ${errorMessage(error)}`)
  );
  log.info(`session ${idHex.slice(0, 8)} ready, program pid ${host.pid}`);
  console.log(encodeReady({ id: idHex, detached: 0, port: ownPort }));
  try {
    Deno.stdout.close();
  } catch { /* already closed */ }

  const serving = route.kind === "daemon"
    ? keepRegistered(
      route.registration,
      options.routerPath,
      idHex,
      stop.signal,
      (connection) => handshake(connection.pipe, connection.peer),
    )
    : serveOwnPort(route.listener, handshake, stop.signal);
  const outcome = await host.outcome;
  stop.abort();
  await Promise.allSettled([serving, controlling]);
  // No FFI wait may outlive us (one pending at exit can crash Deno).
  await reactor().idle();
  log.info(
    `session ${
      idHex.slice(0, 8)
    } ${outcome.state} (${outcome.reason}), exit ${outcome.exitCode}`,
  );
  return 0;
}

/** How clients reach this session (or a jump relay). */
export type Route =
  | { kind: "daemon"; registration: DaemonRegistration }
  | { kind: "own port"; listener: Deno.TcpListener };

/**
 * Registers with the daemon, unless the client said never; without a
 * daemon (unless the client required one) listens on a port of its own,
 * on the address the client reached over ssh (`$SSH_CONNECTION`, which
 * this process has from the launcher that ssh started). Throws a one-line
 * Error for the user when clients could not reach the session.
 */
export async function chooseRoute(
  request: Pick<
    Extract<BootstrapRequest, { op: "new" }>,
    "daemon" | "portRange"
  >,
  routerPath: string,
  idHex: string,
): Promise<Route> {
  const daemon = request.daemon ?? "only";
  let why = "--no-daemon";
  if (daemon !== "never") {
    try {
      return {
        kind: "daemon",
        registration: await DaemonRegistration.register(routerPath, idHex),
      };
    } catch (error) {
      if (daemon === "only") {
        throw new Error(
          `no et server here (--daemon-only): ${errorMessage(error)}`,
        );
      }
      why = `no et server here: ${errorMessage(error)}`;
    }
  }
  const hostname = listenAddress(Deno.env.get("SSH_CONNECTION"));
  const listener = listenInRange(
    hostname,
    request.portRange ?? DEFAULT_PORT_RANGE,
  );
  log.info(
    `${why}; serving this session from ${hostname} port ${listener.addr.port} (no-root mode)`,
  );
  return { kind: "own port", listener };
}

function logLevelFromEnv(value: string | undefined): LogLevel {
  const levels: LogLevel[] = ["debug", "info", "warn", "error", "silent"];
  return levels.find((level) => level === value) ?? "info";
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
      log.warn("lost the daemon registration; registering again");
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
      log.info("registered again with the daemon");
    } catch (error) {
      log.info(`register again failed: ${errorMessage(error)}`);
      delay = Math.min(Math.max(delay * 2, 100), 1000);
    }
  }
}
