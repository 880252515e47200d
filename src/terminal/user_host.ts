/**
 * `et terminal --host`: the user's one process that holds all of the
 * user's sessions (per daemon router), as tmux's server holds its
 * sessions. Launchers reach it over its owner-only socket
 * (`host_socket.ts`); each `new` request becomes a {@link HostedSession}
 * (its program, control socket, daemon registration). In no-root mode its
 * own ports serve all its sessions. Once its last session ended or expired
 * it lingers (`lingerMs`, 10 minutes unless told) so that the user's next
 * session skips a cold start, and exits when none came by then (or when
 * none came within a grace period after its start). While it lingers it
 * waits on its socket and one timer: no CPU.
 *
 * A fault in one session must not end or stall the others: each session's
 * pumps end only that session when they throw (`SessionHost`), pty reads
 * and writes wait on worker threads (a stuck pty blocks nobody), and an
 * exception that escapes anyway is logged by a process-wide guard instead
 * of ending the process.
 *
 * @module
 */

import { withDeadline } from "../deadline.ts";
import {
  configureLog,
  dumpOnSignal,
  errorMessage,
  fileSink,
  logger,
  type LogLevel,
} from "../log.ts";
import { libc, setProcessName } from "../platform/libc.ts";
import { reactor } from "../platform/reactor.ts";
import {
  decodeBootstrap,
  encodeReady,
  encodeRefusal,
  LineReader,
  privateRuntimeDir,
} from "../session/mod.ts";
import {
  acceptEach,
  type BytePipe,
  type EternalConnectionOptions,
  preloadPacketCrypto,
  serverHandshake,
  toHex,
} from "../transport/mod.ts";
import {
  HOST_CLOSING,
  HOST_PROCESS_NAME,
  HOST_READY,
  HOST_REQUEST_LIMIT,
  hostPaths,
  hostRequest,
} from "./host_socket.ts";
import {
  type HostContext,
  HostedSession,
  hostStage,
  NoWayInError,
} from "./hosted_session.ts";
import { TunnelListenError } from "./tunnels.ts";
import { OwnPorts } from "./own_port.ts";

const log = logger("host");
const encoder = new TextEncoder();

/** How long a host with no session yet waits for its first one. */
const FIRST_SESSION_GRACE_MS = 30_000;

/**
 * How long a host stays after its last session by default: long enough
 * for the next `et` to the same host a few minutes later (a closed
 * window reopened, a script's next run) to find it running and skip a
 * cold start, short enough that an idle process (~60 MB resident, no
 * CPU) does not stay for long once the user is done. ET's etserver never
 * exits; tmux's server exits at once.
 */
export const DEFAULT_HOST_LINGER_MS = 10 * 60_000;

/** The longest timer `setTimeout` keeps (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Longest wait for a launcher's request line. */
const REQUEST_TIMEOUT_MS = 5000;

/** Options of the host process. */
export interface HostOptions {
  /** The daemon's router socket. */
  routerPath: string;
  /**
   * How long the host stays after its last session ended, waiting for the
   * next one (0: it exits at once; at most ~24 days).
   * @default {DEFAULT_HOST_LINGER_MS}
   */
  lingerMs?: number;
  /** Transport tuning (tests shorten timers). */
  connection?: EternalConnectionOptions;
}

/**
 * Runs the user's host until it is left without a session (its last one
 * ended, and no new one came while it lingered). Prints
 * {@link HOST_READY} (or `error: <why>`) on stdout once it listens.
 * Returns the process exit code.
 */
export async function serveHost(options: HostOptions): Promise<number> {
  let host: OpenedHost;
  try {
    host = await openHost(options);
  } catch (error) {
    console.log(`error: ${errorMessage(error)}`);
    return 1;
  }
  console.log(HOST_READY);
  try {
    Deno.stdout.close();
  } catch { /* already closed */ }
  return await host.finished;
}

/** The user's host, opened in this process and serving its socket. */
export interface OpenedHost {
  /**
   * Starts a session of the client's bootstrap `line`, the program in the
   * login environment `env`, as a launcher's `new` over the socket would;
   * resolves with the answer line (ready, refusal or `error: <why>`).
   */
  answerNew(line: string, env: Record<string, string>): Promise<string>;
  /**
   * Closes the host if it holds no session and starts none (its first
   * one failed); true if it closes.
   */
  closeIfIdle(reason: string): boolean;
  /** Resolves with the exit code once the host has closed. */
  finished: Promise<number>;
}

/**
 * Makes this process the user's host: takes the host's socket (throws if
 * a host answers there already, or on failure) and serves it until the
 * host is left without a session. The launcher calls it on a cold start
 * (no second process to start), `et terminal --host` through
 * {@link serveHost}.
 */
export async function openHost(options: HostOptions): Promise<OpenedHost> {
  const dir = await privateRuntimeDir();
  const paths = await hostPaths(dir, options.routerPath);
  configureLog({
    level: logLevelFromEnv(Deno.env.get("ET_LOG_LEVEL")),
    sink: fileSink(paths.log),
  });
  hostStage("loaded");
  guardProcess();
  // Hold no directory of the login busy.
  Deno.chdir("/");
  // A host already answering keeps its place (we were started by hand, or
  // lost a race the lock did not cover).
  const running = await hostRequest(paths.socket, { op: "status" }, 2000)
    .then(() => true, () => false);
  if (running) throw new Error("a session host already runs");
  // A socket nobody answers on is a dead host's: replace it.
  await Deno.remove(paths.socket).catch(() => {});
  const listener = Deno.listen({ transport: "unix", path: paths.socket });
  await Deno.chmod(paths.socket, 0o600);
  const host = new UserHost(dir, options, listener, paths.socket);
  log.info(`host ${Deno.pid} listening on ${paths.socket}`);
  hostStage("listening");
  // While the launcher reads that line and sends its request (a few ms
  // this process would idle), what every first session needs first: the
  // C library (~8 ms to bind) for its pty and its way in; then the name
  // `ps -e` shows (a launcher that became the host has the launcher's
  // command line).
  setTimeout(() => {
    try {
      libc();
      setProcessName(HOST_PROCESS_NAME);
    } catch { /* the session that needs it reports it */ }
  }, 0);
  const finished = (async () => {
    await host.run();
    // No FFI wait may outlive us (one pending at exit can crash Deno).
    await reactor().idle();
    log.info(`host ${Deno.pid} exits: ${host.exitReason}`);
    return 0;
  })();
  return {
    answerNew: (line, env) => host.answerNew(line, env),
    closeIfIdle: (reason) => host.closeIfIdle(reason),
    finished,
  };
}

/**
 * Logs an exception or rejection that escaped every handler instead of
 * letting it end the process: it would end every session of the user.
 */
function guardProcess() {
  globalThis.addEventListener("error", (event) => {
    event.preventDefault();
    log.error(
      `uncaught exception (sessions carry on): ${
        errorMessage(event.error ?? event.message)
      }`,
    );
  });
  globalThis.addEventListener("unhandledrejection", (event) => {
    event.preventDefault();
    log.error(
      `unhandled rejection (sessions carry on): ${errorMessage(event.reason)}`,
    );
  });
}

/** The host's sessions and its socket. */
class UserHost {
  readonly #sessions = new Map<string, HostedSession>();
  readonly #stop = new AbortController();
  readonly #context: HostContext;
  readonly #listener: Deno.UnixListener;
  readonly #socketPath: string;
  readonly #lingerMs: number;
  #starting = 0;
  #closing = false;
  /** The one timer of an idle host: first-session grace, or lingering. */
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** Why the host stopped taking requests (for its last log line). */
  exitReason = "";

  constructor(
    dir: string,
    options: HostOptions,
    listener: Deno.UnixListener,
    socketPath: string,
  ) {
    this.#listener = listener;
    this.#socketPath = socketPath;
    this.#lingerMs = Math.min(
      Math.max(0, options.lingerMs ?? DEFAULT_HOST_LINGER_MS),
      MAX_TIMER_MS,
    );
    const handshake = (pipe: BytePipe, peer: string) =>
      serverHandshake(
        pipe,
        (id) => this.#sessions.get(toHex(id))?.host.connectionFor(id),
        {
          peer,
          retired: (id) =>
            this.#sessions.get(toHex(id))?.host.retiredFor(id) ?? [],
        },
      );
    this.#context = {
      dir,
      routerPath: options.routerPath,
      ports: new OwnPorts(handshake, this.#stop.signal),
      handshake,
      connection: options.connection,
      faultsAllowed: Deno.env.get("ET_TEST_FAULTS") === "1",
      newSession: (bootstrap, login) => this.#sharedSession(bootstrap, login),
    };
  }

  /** Serves launchers until the host is left idle (see serveHost). */
  async run(): Promise<void> {
    // One line per session on SIGUSR2.
    const stopDump = dumpOnSignal(
      log,
      () => [...this.#sessions.values()].map((s) => s.host.describe()),
    );
    this.#idleTimer = setTimeout(
      () => this.closeIfIdle("no session came after its start"),
      FIRST_SESSION_GRACE_MS,
    );
    await acceptEach(this.#listener, (conn) => {
      this.#answer(conn).finally(() => {
        try {
          conn.close();
        } catch { /* closed */ }
      });
    }).catch(() => {});
    clearTimeout(this.#idleTimer);
    stopDump();
    this.#stop.abort();
    await Promise.allSettled(this.#context.ports.serving);
  }

  /** Answers one launcher's request. */
  async #answer(conn: Deno.UnixConn) {
    const reply = (line: string) =>
      conn.write(encoder.encode(line + "\n")).catch(() => 0);
    let request;
    try {
      const line = await withDeadline(
        new LineReader(conn, HOST_REQUEST_LIMIT).next(),
        REQUEST_TIMEOUT_MS,
        "no complete request within 5 s",
      );
      if (line === null) return;
      request = JSON.parse(line);
    } catch (error) {
      log.warn(`refused a host request: ${errorMessage(error)}`);
      await reply(`error: ${errorMessage(error)}`);
      return;
    }
    if (request?.op === "status") {
      await reply(JSON.stringify({
        pid: Deno.pid,
        sessions: [...this.#sessions.values()].map((s) => ({
          id: s.idHex,
          pid: s.host.pid,
        })),
      }));
      return;
    }
    if (
      request?.op !== "new" || typeof request.bootstrap !== "string" ||
      !isStringRecord(request.env)
    ) {
      log.warn("refused a malformed host request");
      await reply("error: malformed host request");
      return;
    }
    await reply(await this.answerNew(request.bootstrap, request.env));
  }

  /** A launcher's `new` (over the socket or in this process): its answer. */
  async answerNew(
    bootstrap: string,
    env: Record<string, string>,
  ): Promise<string> {
    if (this.#closing) return HOST_CLOSING;
    hostStage("new session asked");
    this.#starting++;
    try {
      const answer = await this.#startSession(bootstrap, env);
      hostStage("answered");
      // Opens the packet cipher (a dlopen, ~4 ms) while the ready line
      // travels to the client, the handshake coming after it: on a timer,
      // so that the answer is written first (its writer runs on a
      // microtask, before any timer).
      setTimeout(() => preloadPacketCrypto().catch(() => {}), 0);
      return answer;
    } finally {
      this.#starting--;
      this.#lingerIfIdle();
    }
  }

  /**
   * Session sharing: a session's client asked, over its authenticated
   * connection, for another session of this user (no ssh, no launcher).
   * Only a plain `new` (no `-x`: ending the others is the launcher's).
   */
  async #sharedSession(
    bootstrap: string,
    login: Record<string, string>,
  ): Promise<string> {
    let request;
    try {
      request = decodeBootstrap(bootstrap);
    } catch (error) {
      return `error: ${errorMessage(error)}`;
    }
    if (request.op !== "new" || request.killOthers) {
      return "error: only a plain new session is shared";
    }
    if (this.#closing) return "error: the session host is closing";
    this.#starting++;
    try {
      const answer = await this.#startSession(bootstrap, login);
      log.info("a new session came over a session's connection (shared)");
      return answer;
    } finally {
      this.#starting--;
      this.#lingerIfIdle();
    }
  }

  /** Starts a session; returns the launcher's answer line. */
  async #startSession(
    bootstrap: string,
    env: Record<string, string>,
  ): Promise<string> {
    let session: HostedSession;
    try {
      const request = decodeBootstrap(bootstrap);
      if (request.op !== "new") throw new Error("not a new session");
      if (this.#sessions.has(toHex(request.secret.id))) {
        throw new Error("a session with this id runs already");
      }
      session = await HostedSession.start(request, env, this.#context);
    } catch (error) {
      // No way in for clients (--daemon-only without a daemon, no free
      // port), or a reverse tunnel that cannot listen: the user's to fix;
      // the launcher passes it on as the client's one error line.
      if (error instanceof NoWayInError || error instanceof TunnelListenError) {
        return encodeRefusal(error.message);
      }
      log.warn(`a new session failed: ${errorMessage(error)}`);
      return `error: ${errorMessage(error)}`;
    }
    this.#sessions.set(session.idHex, session);
    // A lingering host has a session again: it stays.
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    session.finished.finally(() => {
      this.#sessions.delete(session.idHex);
      this.#lingerIfIdle();
    });
    // Counted here for a shared request (the launcher counts its own).
    const detached =
      [...this.#sessions.values()].filter((s) =>
        s.host.info().state === "detached"
      ).length;
    return encodeReady({ id: session.idHex, detached, port: session.port });
  }

  /**
   * With no session and none starting: closes at once (linger 0), or arms
   * the one linger timer, which a new session clears. Re-arming after a
   * request that started nothing restarts the wait.
   */
  #lingerIfIdle() {
    if (this.#closing || this.#sessions.size > 0 || this.#starting > 0) {
      return;
    }
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    if (this.#lingerMs === 0) {
      this.closeIfIdle();
      return;
    }
    // No session to reach: no port held while waiting (no-root mode).
    this.#context.ports.closeAll();
    log.info(
      `no session left: lingering ${formatMs(this.#lingerMs)} for the next one`,
    );
    this.#idleTimer = setTimeout(
      () =>
        this.closeIfIdle(
          `no new session within ${formatMs(this.#lingerMs)}`,
        ),
      this.#lingerMs,
    );
  }

  /**
   * With no session and none starting, stops taking requests: the socket
   * goes first (a launcher then starts a new host), then the listener.
   * True if it closed now.
   */
  closeIfIdle(reason = "no session left"): boolean {
    if (this.#closing || this.#sessions.size > 0 || this.#starting > 0) {
      return false;
    }
    this.#closing = true;
    this.exitReason = reason;
    try {
      Deno.removeSync(this.#socketPath);
    } catch { /* gone */ }
    try {
      this.#listener.close();
    } catch { /* closed */ }
    return true;
  }
}

/** `600000` as `10 min`, `1500` as `1.5 s`: for the log. */
function formatMs(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return typeof value === "object" && value !== null &&
    Object.values(value).every((v) => typeof v === "string");
}

function logLevelFromEnv(value: string | undefined): LogLevel {
  const levels: LogLevel[] = ["debug", "info", "warn", "error", "silent"];
  return levels.find((level) => level === value) ?? "info";
}
