/**
 * The `et` client: bootstrap (or find) the session over ssh, connect to the
 * daemon (or, in no-root mode, to the session's own port) through every
 * fault, and join the local terminal (or the local stdio, without a pty)
 * to the remote program until it exits, the user detaches, or the session
 * is given up.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";
import {
  CONTROL_CHANNEL,
  ControlDecoder,
  type DaemonUse,
  DEFAULT_PORT_RANGE,
  DEFAULT_SERVER_PORT,
  encodeBootstrap,
  encodeControl,
  isForwardedEnvName,
  type PortRange,
  type ReadyReport,
  type SessionInfo,
  STDERR_CHANNEL,
  TERMINAL_CHANNEL,
} from "../session/mod.ts";
import {
  type Channel,
  EternalConnection,
  type EternalConnectionOptions,
  fromHex,
  generateSessionSecret,
  keepConnected,
  ReconnectGaveUpError,
  type SessionSecret,
  toHex,
} from "../transport/mod.ts";
import { type Destination, sshTarget } from "./destination.ts";
import { EscapeFilter } from "./escape.ts";
import { LocalTerminal, notice } from "./local_terminal.ts";
import {
  PredictiveEcho,
  type PredictMode,
  writeAll,
} from "./prediction/mod.ts";
import {
  resolveWithSsh,
  splitCommandLine,
  startRemoteTerminal,
} from "./ssh.ts";

const log = logger("client");

/** A wait (connecting, an outage) is announced once it has lasted this long. */
const NOTICE_DELAY_MS = 1000;

/**
 * For tests only, not for users: when set, the client dials this port (on
 * the same host) instead of the one it would (the daemon's, or a no-root
 * session's own), so a test can put a fault proxy in front of a port it
 * cannot otherwise come between (see tests/e2e/no_root_test.ts).
 */
export const TEST_DIAL_PORT_ENV = "ET_TEST_DIAL_PORT";

/** The test-only dial port ({@link TEST_DIAL_PORT_ENV}), if set. */
function testDialPort(): number | undefined {
  const text = Deno.env.get(TEST_DIAL_PORT_ENV);
  if (text === undefined) return undefined;
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`${TEST_DIAL_PORT_ENV} is not a port: ${text}`);
  }
  return port;
}

/** What the client is asked to do. */
export type ClientMode =
  | {
    kind: "new";
    /** Run this through the remote shell (`et host cmd`, `-c`). */
    command?: string;
    /** Type this into an interactive shell and stay (`-e`). */
    typeCommand?: string;
    /** Run on a remote pty. */
    pty: boolean;
    /** End this user's other sessions on the host first (`-x`). */
    killOthers: boolean;
  }
  | { kind: "attach"; target: string }
  | { kind: "list" };

/** Everything the client needs. */
export interface ClientOptions {
  destination: Destination;
  /** The ssh command line (`ssh` by default, may carry options). */
  ssh: string;
  /** Command that runs et on the remote. */
  terminalPath: string;
  mode: ClientMode;
  /** Longest wait for the first connection. */
  connectTimeoutMs: number;
  /** How long the session waits for a client that is away; 0: forever. */
  sessionTimeoutMs: number;
  /** Output the session keeps while the client is away. */
  maxBacklogBytes: number;
  /** The escape character (`~`), or null for none. */
  escapeChar: number | null;
  /**
   * Whether a new session goes through the daemon (`--no-daemon`,
   * `--daemon-only`).
   * @default {"auto"} (the daemon if one answers, else no-root mode)
   */
  daemon?: DaemonUse;
  /**
   * Where a new session that serves itself looks for a port.
   * @default {DEFAULT_PORT_RANGE}
   */
  portRange?: PortRange;
  /**
   * How many `-v`: from 1 on, no-root mode is announced on stderr.
   * @default {0}
   */
  verbosity?: number;
  /** Transport tuning. */
  connection?: EternalConnectionOptions;
  /**
   * Predictive local echo (`--predict`); only ever between two terminals
   * on a pty session.
   * @default {"adaptive"}
   */
  predict?: PredictMode;
}

/** Connects once with a time limit, explaining failure in one line. */
async function dialOnce(hostname: string, port: number): Promise<Deno.TcpConn> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const conn = await Promise.race([
      Deno.connect({ hostname, port }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error("timed out after 10 s")),
          10_000,
        );
      }),
    ]);
    conn.setNoDelay(true);
    return conn;
  } finally {
    clearTimeout(timer);
  }
}

/** LANG, LC_* and COLORTERM of this process, for the remote program. */
function forwardedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(Deno.env.toObject())) {
    if (
      isForwardedEnvName(name) && value.length <= 256 &&
      /^[\x20-\x7e]*$/.test(value)
    ) env[name] = value;
  }
  return env;
}

/**
 * Runs the client; resolves with the exit code for `et` (the remote
 * program's status, 0 after a detach or a list). Throws a one-line Error
 * when the session cannot start.
 */
export async function runClient(options: ClientOptions): Promise<number> {
  const ssh = splitCommandLine(options.ssh);
  if (ssh.length === 0) throw new Error("--ssh is empty");
  const target = sshTarget(options.destination);
  const port = options.destination.port ?? DEFAULT_SERVER_PORT;
  const testPort = testDialPort();
  const resolved = await resolveWithSsh(ssh, target);
  log.info(`${target} resolves to ${resolved.hostname}, et port ${port}`);
  // How the user named the host, for commands we suggest (port included).
  const shown = port === DEFAULT_SERVER_PORT ? target : `${target}:${port}`;
  const local = new LocalTerminal();
  const bootstrap = (request: Parameters<typeof encodeBootstrap>[0]) =>
    startRemoteTerminal({
      ssh,
      target,
      terminalPath: options.terminalPath,
      bootstrapLine: encodeBootstrap(request),
    });

  const mode = options.mode;
  if (mode.kind === "list") {
    const report = await bootstrap({ op: "list" });
    if (!("sessions" in report)) throw new Error("unexpected answer to list");
    printSessions(report.sessions, shown);
    return 0;
  }
  const fresh = generateSessionSecret();
  const size = local.size();
  let report: ReadyReport;
  if (mode.kind === "new") {
    report = await bootstrap({
      op: "new",
      secret: fresh,
      program: {
        command: mode.command,
        pty: mode.pty,
        term: Deno.env.get("TERM") || "xterm-256color",
        cols: size.cols,
        rows: size.rows,
        env: forwardedEnv(),
      },
      limits: {
        connectTimeoutMs: options.connectTimeoutMs,
        sessionTimeoutMs: options.sessionTimeoutMs,
        maxBacklogBytes: options.maxBacklogBytes,
      },
      killOthers: mode.killOthers,
      daemon: options.daemon ?? "auto",
      portRange: options.portRange ?? DEFAULT_PORT_RANGE,
    });
  } else {
    report = await bootstrap({
      op: "attach",
      target: mode.target,
      passkey: fresh.passkey,
      cols: size.cols,
      rows: size.rows,
    });
  }
  if (!("id" in report)) throw new Error("unexpected answer from et terminal");
  const pty = mode.kind === "attach" || mode.pty;
  // Notices go to the terminal only: with no pty, stderr is the remote's.
  const noticesOn = pty || Deno.stderr.isTerminal();
  if (report.detached > 0 && noticesOn) {
    notice(
      `${report.detached} detached session${
        report.detached > 1 ? "s" : ""
      } on ${target}: et --attach ${shown} resumes the latest (et --list ${shown})`,
      false,
    );
  }
  // No-root mode: the session listens itself; dial its port, not the daemon's.
  const ownPort = report.port;
  if (ownPort !== undefined) {
    const text = mode.kind === "attach"
      ? `this session serves itself from port ${ownPort} (no-root mode)`
      : options.daemon === "never"
      ? `serving this session from port ${ownPort} (no-root mode, --no-daemon)`
      : `no et server on ${options.destination.host}; serving this session from port ${ownPort} (no-root mode)`;
    log.warn(text); // in the log whatever the verbosity
    if ((options.verbosity ?? 0) >= 1 && noticesOn) notice(text, false);
  }
  const dialPort = testPort ?? ownPort ?? port;
  if (dialPort !== (ownPort ?? port)) {
    log.warn(`${TEST_DIAL_PORT_ENV}: dialing port ${dialPort} (test only)`);
  }
  const secret: SessionSecret = {
    id: fromHex(report.id, 16),
    passkey: fresh.passkey,
  };
  return await runSession(local, secret, {
    ...options,
    target: shown,
    noticesOn,
    where: `${resolved.hostname}:${dialPort}`,
    reaching: ownPort === undefined
      ? "the et server"
      : "the session (no-root mode)",
    dial: () => dialOnce(resolved.hostname, dialPort),
    pty,
    typeCommand: mode.kind === "new" ? mode.typeCommand : undefined,
  });
}

interface SessionRun extends ClientOptions {
  /** The destination as the user would type it, for messages. */
  target: string;
  /** Whether notices may go to stderr. */
  noticesOn: boolean;
  /** host:port the client dials (the daemon, or the session), for messages. */
  where: string;
  /** What is at `where`, for the message when the first connect fails. */
  reaching: string;
  dial: () => Promise<Deno.TcpConn>;
  pty: boolean;
  typeCommand?: string;
}

/** Connects (retrying) and joins the local side to the session. */
async function runSession(
  local: LocalTerminal,
  secret: SessionSecret,
  run: SessionRun,
): Promise<number> {
  const connection = await EternalConnection.create(
    secret,
    "client",
    run.connection,
  );
  const id8 = toHex(secret.id).slice(0, 8);
  const resumeHint = `et --attach ${id8} ${run.target}`;
  let echo: PredictiveEcho | null = null;
  const say = (text: string) => {
    if (!run.noticesOn) return;
    notice(text, local.isRaw);
    echo?.locate().catch(() => {}); // the notice moved the cursor
  };
  const reconnecting = keepConnected(connection, {
    dial: run.dial,
    connectTimeoutMs: run.connectTimeoutMs,
    awayTimeoutMs: run.sessionTimeoutMs,
    onAttemptFailed: (error) =>
      log.info(`attempt failed: ${errorMessage(error)}`),
  });
  announceWaits(
    connection,
    say,
    () => reconnecting.status.lastReason ?? "",
    run.where,
  );

  if (run.pty) {
    local.enterRaw();
  }
  // --- predictive echo (src/client/prediction/): null means the plain path
  echo = await startPredictiveEcho(run, local);
  // ---
  let detaching = false;
  const detach = async () => {
    detaching = true;
    await connection.channel(CONTROL_CHANNEL).write(
      encodeControl({ type: "detach" }),
    ).catch(() => {});
    // Give the notice a moment to reach the session, so --list shows it
    // detached at once; the session finds out by itself otherwise.
    // (Under the 300 ms that a signal's cleanup is given.)
    const deadline = performance.now() + 250;
    while (
      connection.connected && connection.unacknowledgedBytes > 0 &&
      performance.now() < deadline
    ) await new Promise((resolve) => setTimeout(resolve, 10));
  };
  local.guardSignals(async () => {
    await detach();
  });

  const terminal = connection.channel(TERMINAL_CHANNEL);
  const control = connection.channel(CONTROL_CHANNEL);
  let exitCode: number | null = null;
  const controlReading = (async () => {
    const decoder = new ControlDecoder();
    for (let data; (data = await control.read()) !== null;) {
      for (const message of decoder.push(data)) {
        if (message.type === "exit") exitCode = message.code;
      }
    }
  })();

  let detachedByEscape = false;
  try {
    if (run.pty) {
      const sendSize = () =>
        control.write(encodeControl({ type: "resize", ...local.size() }))
          .catch(() => {});
      sendSize();
      local.onResize(() => {
        const { cols, rows } = local.size();
        echo?.resize(cols, rows).catch(() => {});
        sendSize();
      });
      repaintAfterOutages(connection, local, control);
      if (run.typeCommand !== undefined) {
        terminal.write(new TextEncoder().encode(`${run.typeCommand}\n`))
          .catch(() => {});
      }
    }
    const escapes = run.pty && local.isTty
      ? new EscapeFilter(run.escapeChar)
      : null;
    // Keystrokes (or piped input): read without waiting for the network;
    // the channel keeps them (bounded) while disconnected.
    const input = (async () => {
      const buffer = new Uint8Array(16 * 1024);
      try {
        for (let n; (n = await local.read(buffer)) !== null;) {
          let bytes: Uint8Array = buffer.slice(0, n);
          if (escapes) {
            const { forward, actions } = escapes.push(bytes);
            bytes = forward;
            for (const action of actions) {
              if (action === "help") say(ESCAPE_HELP);
              if (action === "detach") {
                if (bytes.length > 0) await terminal.write(bytes);
                await detach();
                detachedByEscape = true;
                return;
              }
            }
          }
          if (echo) bytes = echo.input(bytes); // shown now, then sent
          if (bytes.length > 0) await terminal.write(bytes);
        }
        // End of input: the remote program's stdin ends too (no pty).
        if (!run.pty) await terminal.closeWrite();
      } catch {
        // session over
      }
    })();

    const outputs = [copyOut(terminal, echo?.sink ?? Deno.stdout)];
    if (!run.pty) {
      outputs.push(copyOut(connection.channel(STDERR_CHANNEL), Deno.stderr));
    }
    await Promise.race([
      Promise.all(outputs),
      input.then(() => {
        if (detachedByEscape) return;
        return new Promise(() => {}); // input ending alone ends nothing
      }),
    ]);
    await echo?.finish().catch(() => {});
    if (detachedByEscape) {
      local.restore();
      local.resetModes();
      say(`detached; the session keeps running: ${resumeHint}`);
      return 0;
    }
    const end = await connection.closed;
    await Promise.allSettled([reconnecting, controlReading]);
    local.restore();
    if (exitCode !== null) return exitCode;
    if (end.error instanceof ReconnectGaveUpError && !end.error.everConnected) {
      throw new Error(
        `cannot connect to ${run.reaching} at ${run.where} within ${
          formatAge(end.error.timeoutMs)
        }: ${reconnecting.status.lastReason ?? "no answer"}`,
      );
    }
    if (!connection.connected && end.error && !detaching) {
      local.resetModes();
      const hint = end.reason.includes("taken over")
        ? ""
        : `; if it is still running: ${resumeHint}`;
      throw new Error(`session lost: ${end.reason}${hint}`);
    }
    if (end.byPeer) {
      throw new Error(`session ended: ${end.reason}`);
    }
    return 0;
  } finally {
    local.restore();
  }
}

/**
 * Predictive echo when it may run: a pty session between two terminals,
 * and `--predict` not `never`; otherwise null, and the output path is
 * exactly the one without the feature.
 */
async function startPredictiveEcho(
  run: SessionRun,
  local: LocalTerminal,
): Promise<PredictiveEcho | null> {
  const mode = run.predict ?? "adaptive";
  if (mode === "never" || !run.pty || !local.isTty || !local.isOutputTty) {
    return null;
  }
  const { cols, rows } = local.size();
  const echo = await PredictiveEcho.create(
    mode,
    cols,
    rows,
    (bytes) => writeAll(Deno.stdout, bytes),
  );
  echo.locate().catch(() => {});
  return echo;
}

/** Copies a channel to a local output until the channel ends. */
async function copyOut(
  channel: Channel,
  out: { write(p: Uint8Array): Promise<number> },
) {
  try {
    for (let data; (data = await channel.read()) !== null;) {
      let offset = 0;
      while (offset < data.length) {
        offset += await out.write(data.subarray(offset));
      }
    }
  } catch (error) {
    log.info(`output ended: ${errorMessage(error)}`);
  }
}

/**
 * Shows a notice for waits over a second: the first connection
 * ("connecting…"), and outages ("connection lost, reconnecting…"); a wait
 * healed in milliseconds stays invisible.
 */
function announceWaits(
  connection: EternalConnection,
  say: (text: string) => void,
  lastFailure: () => string,
  where: string,
) {
  let everConnected = false;
  let announced = false;
  const reason = () => lastFailure() ? ` (${lastFailure()})` : "";
  let pending: ReturnType<typeof setTimeout> | undefined = setTimeout(() => {
    pending = undefined;
    if (connection.connected || connection.isEnding) return;
    announced = true;
    say(`connecting to ${where}…${reason()}`);
  }, NOTICE_DELAY_MS);
  connection.onEvent((event) => {
    if (event.type === "disconnected") {
      log.info(`disconnected: ${event.reason}`);
      if (pending === undefined && !announced && !connection.isEnding) {
        pending = setTimeout(() => {
          pending = undefined;
          if (connection.connected || connection.isEnding) return;
          announced = true;
          say("connection lost, reconnecting…");
        }, NOTICE_DELAY_MS);
      }
    } else {
      clearTimeout(pending);
      pending = undefined;
      if (announced) say(everConnected ? "reconnected" : "connected");
      announced = false;
      everConnected = true;
    }
  });
  connection.closed.then(() => clearTimeout(pending));
}

/**
 * After an announced outage the notices scrolled whatever was on screen:
 * a size change one row down and back makes a full-screen program (vi,
 * top) repaint itself.
 */
function repaintAfterOutages(
  connection: EternalConnection,
  local: LocalTerminal,
  control: Channel,
) {
  let downSince = 0;
  connection.onEvent((event) => {
    if (event.type === "disconnected") {
      downSince ||= performance.now();
      return;
    }
    const long = downSince > 0 &&
      performance.now() - downSince > NOTICE_DELAY_MS;
    downSince = 0;
    if (!long) return;
    const { cols, rows } = local.size();
    if (rows < 2) return;
    control.write(encodeControl({ type: "resize", cols, rows: rows - 1 }))
      .then(() => control.write(encodeControl({ type: "resize", cols, rows })))
      .catch(() => {});
  });
}

const ESCAPE_HELP = "escapes (after a newline): ~. detach (the session " +
  "keeps running)  ~? this help  ~~ a literal ~";

/** Prints `et --list` as a table. */
function printSessions(sessions: SessionInfo[], target: string) {
  if (sessions.length === 0) {
    console.log(`no et sessions on ${target}`);
    return;
  }
  const now = Date.now();
  const rows = [["ID", "STATE", "AGE", "LAST SEEN", "COMMAND"]];
  for (const s of sessions) {
    rows.push([
      s.id.slice(0, 8),
      s.state,
      formatAge(now - s.startedAt),
      s.state === "attached" ? "now" : `${formatAge(now - s.lastSeenAt)} ago`,
      s.command || "(login shell)",
    ]);
  }
  const widths = rows[0].map((_, i) =>
    Math.max(...rows.map((row) => row[i].length))
  );
  for (const row of rows) {
    console.log(
      row.map((cell, i) => i === row.length - 1 ? cell : cell.padEnd(widths[i]))
        .join("  "),
    );
  }
  console.log(`resume one with: et --attach ID ${target}`);
}

/** 3d4h, 2h5m, 4m10s, 12s. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d${h}h`;
  if (h > 0) return `${h}h${m}m`;
  if (m > 0) return `${m}m${s % 60}s`;
  return `${s}s`;
}
