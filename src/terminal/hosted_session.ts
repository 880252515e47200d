/**
 * One session inside the user's host process (`et terminal --host`): its
 * SessionHost (program, backlogs, lifecycle, connection), its owner-only
 * control socket, and how its clients get in: handed over by the daemon on
 * the session's own registration (kept alive across daemon restarts), or,
 * when no daemon takes it (or the client said `--no-daemon`), through the
 * host's own port, which serves all of the host's sessions (no-root
 * mode). Everything a session owns beside the SessionHost lives here and
 * ends with it; nothing here touches another session.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";
import { type BootstrapRequest, DEFAULT_PORT_RANGE } from "../session/mod.ts";
import {
  type BytePipe,
  type EternalConnectionOptions,
  livenessForKeepalive,
} from "../transport/mod.ts";
import { controlSocketPath, serveControl } from "./control_socket.ts";
import { DaemonRegistration } from "./daemon_registration.ts";
import { listenAddress, type OwnPorts } from "./own_port.ts";
import { keepRegistered, registerUnlessNever } from "./route.ts";
import {
  type InjectedFault,
  SessionHost,
  type SessionOutcome,
} from "./session_host.ts";

const log = logger("terminal");

/**
 * How long the session outlives its connect deadline before giving up on
 * a client that never came: the client's own deadline counts from before
 * the ssh bootstrap, ours from after it.
 */
const CONNECT_MARGIN_MS = 5000;

/** A new session's request, as the client's bootstrap line gave it. */
export type NewSessionRequest = Extract<BootstrapRequest, { op: "new" }>;

/** What the host gives each of its sessions. */
export interface HostContext {
  /** The user's private runtime directory (control sockets). */
  dir: string;
  /** The daemon's router socket. */
  routerPath: string;
  /** The host's own ports (no-root mode), shared by its sessions. */
  ports: OwnPorts;
  /**
   * Runs the server handshake of a client's connection (handed over by the
   * daemon, or a relay's on the control socket).
   */
  handshake(pipe: BytePipe, peer: string): Promise<unknown>;
  /** Transport tuning (tests shorten timers). */
  connection?: EternalConnectionOptions;
  /** Honour the control socket's `fault` request (tests only). */
  faultsAllowed?: boolean;
  /**
   * Session sharing: starts another session from a `new` bootstrap line
   * that came over a session's authenticated connection, in that
   * session's login environment; resolves with the launcher's answer line.
   */
  newSession?: (
    bootstrap: string,
    login: Record<string, string>,
  ) => Promise<string>;
}

/**
 * A debug mark of the host's part of a start to prompt (ms since the host
 * process started), beside the client's `connect stage` marks.
 */
export function hostStage(name: string): void {
  log.debug(`host stage ${name} at ${performance.now().toFixed(1)} ms`);
}

/** The session's refusal for its client: no way in (no daemon, no port). */
export class NoWayInError extends Error {}

/** One session of the host: its SessionHost and what it owns beside it. */
export class HostedSession {
  /** The session itself. */
  readonly host: SessionHost;
  /** Its id, hex. */
  readonly idHex: string;
  /** The host's own port the session is reached on (no-root mode). */
  readonly port?: number;
  /** Resolves once the session ended and all it owned is released. */
  readonly finished: Promise<SessionOutcome>;

  private constructor(
    host: SessionHost,
    port: number | undefined,
    finished: Promise<SessionOutcome>,
  ) {
    this.host = host;
    this.idHex = host.idHex;
    this.port = port;
    this.finished = finished;
  }

  /**
   * Starts the program of `request` in the login environment `login`, and
   * the ways in for its clients. Throws {@link NoWayInError} when clients
   * could not reach it (the session is ended then), any other Error when
   * the program could not start.
   */
  static async start(
    request: NewSessionRequest,
    login: Record<string, string>,
    context: HostContext,
  ): Promise<HostedSession> {
    const host = await SessionHost.start({
      secret: request.secret,
      program: request.program,
      limits: {
        ...request.limits,
        connectTimeoutMs: request.limits.connectTimeoutMs + CONNECT_MARGIN_MS,
      },
      // The client's -k: both ends keep the same liveness policy.
      connection: request.limits.keepaliveMs === undefined
        ? context.connection
        : {
          ...context.connection,
          ...livenessForKeepalive(request.limits.keepaliveMs),
        },
      login,
      reverseTunnels: request.reverseTunnels,
      noTerminal: request.noTerminal,
      resume: request.resume,
      runtimeDir: context.dir,
      newSession: context.newSession &&
        ((bootstrap) => context.newSession!(bootstrap, login)),
    });
    hostStage("program started, keys made");
    const id8 = host.idHex.slice(0, 8);
    let route: Route;
    try {
      route = await chooseRoute(request, login, context, host.idHex);
    } catch (error) {
      log.warn(`session ${id8}: ${errorMessage(error)}`);
      await host.end("no way in for clients");
      throw new NoWayInError(errorMessage(error));
    }
    hostStage("way in ready");
    const port = route.kind === "own port" ? route.port : undefined;
    const stop = new AbortController();
    const controlling = serveControl(
      controlSocketPath(context.dir, host.idHex),
      {
        // The port tells an attaching client where to dial.
        status: () => ({ ...host.info(), port }),
        attach: (passkey, cols, rows, keepaliveMs) =>
          host.attach(passkey, cols, rows, keepaliveMs),
        end: () => host.end(),
        // `et relay` (--over-ssh): the control connection carries a client.
        relay: (conn) => {
          context.handshake(conn, "relay over ssh");
        },
        fault: context.faultsAllowed
          ? (kind: InjectedFault) => host.injectFault(kind)
          : undefined,
      },
      stop.signal,
    ).catch((error) =>
      log.error(`session ${id8}: control socket failed: ${errorMessage(error)}`)
    );
    const serving = route.kind === "daemon"
      ? keepRegistered(
        route.registration,
        context.routerPath,
        host.idHex,
        stop.signal,
        (handed) => context.handshake(handed.pipe, handed.peer),
      )
      : Promise.resolve();
    log.info(`session ${id8} ready, program pid ${host.pid}`);
    const finished = host.outcome.then(async (outcome) => {
      stop.abort();
      await Promise.allSettled([serving, controlling]);
      log.info(
        `session ${id8} ${outcome.state} (${outcome.reason}), exit ${outcome.exitCode}`,
      );
      return outcome;
    });
    return new HostedSession(host, port, finished);
  }
}

/** How clients reach this session. */
type Route =
  | { kind: "daemon"; registration: DaemonRegistration }
  | { kind: "own port"; port: number };

/**
 * Registers with the daemon, unless the client said never; without a
 * daemon (unless the client required one) is served on a port of the
 * host's, on the address the client reached over ssh (`SSH_CONNECTION` of
 * the launcher's environment `login`). Throws a one-line Error for the
 * user when clients could not reach the session.
 */
async function chooseRoute(
  request: NewSessionRequest,
  login: Record<string, string>,
  context: HostContext,
  idHex: string,
): Promise<Route> {
  const registered = await registerUnlessNever(
    request,
    context.routerPath,
    idHex,
  );
  if ("registration" in registered) {
    return { kind: "daemon", registration: registered.registration };
  }
  const why = registered.why;
  const hostname = listenAddress(login.SSH_CONNECTION);
  const port = context.ports.portFor(
    hostname,
    request.portRange ?? DEFAULT_PORT_RANGE,
  );
  log.info(
    `session ${
      idHex.slice(0, 8)
    }: ${why}; serving this session from ${hostname} port ${port} (no-root mode)`,
  );
  return { kind: "own port", port };
}
