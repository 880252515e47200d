/**
 * The `et` client: bootstrap (or find) the session over ssh, connect to the
 * daemon (or, in no-root mode, to the session's own port) through every
 * fault, and join the local terminal (or the local stdio, without a pty)
 * to the remote program until it exits, the user detaches, or the session
 * is given up.
 *
 * @module
 */

import { dumpOnSignal, errorMessage, logger } from "../log.ts";
import { withDeadline } from "../deadline.ts";
import {
  CONTROL_CHANNEL,
  CONTROL_LINE_LIMIT,
  ControlDecoder,
  type DaemonUse,
  DEFAULT_PORT_RANGE,
  DEFAULT_SERVER_PORT,
  encodeBootstrap,
  encodeControl,
  isForwardedEnvName,
  type PortRange,
  privateRuntimeDir,
  type ReadyReport,
  type ResumeMode,
  type SessionInfo,
  STDERR_CHANNEL,
  TERMINAL_CHANNEL,
  type TunnelMessage,
  type TunnelSpec,
} from "../session/mod.ts";
import {
  type Channel,
  DEFAULT_KEEPALIVE_MS,
  EternalConnection,
  type EternalConnectionOptions,
  fromHex,
  generateSessionSecret,
  keepConnected,
  preloadPacketCrypto,
  PROTOCOL_VERSION,
  ReconnectGaveUpError,
  type ReconnectLoop,
  type SessionSecret,
  toHex,
} from "../transport/mod.ts";
import { type Destination, hostPort, sshTarget } from "./destination.ts";
import { EscapeFilter } from "./escape.ts";
import { agentTunnel, ClientTunnels, configuredForwarding } from "./tunnels.ts";
import { LocalTerminal, notice } from "./local_terminal.ts";
import { StdOutput } from "../platform/std_output.ts";
import {
  type CopyState,
  LocalOutputError,
  OutputCopies,
} from "./output_copy.ts";
import { type Dial, routedDial, SWITCH_AFTER_MS } from "./dial_route.ts";
import { SshAuthError, sshRelayDialer } from "./ssh_relay.ts";
import {
  PredictiveEcho,
  type PredictMode,
  writeAll,
} from "./prediction/mod.ts";
import {
  bootstrapSshEnded,
  type PendingRemoteTerminal,
  RemoteEtMissingError,
  resolveWithSsh,
  spawnRemoteTerminal,
  splitCommandLine,
  type SshConfig,
  withSshOptions,
} from "./ssh.ts";
import {
  askSharedSession,
  type ConnectionSharing,
  preloadSharing,
  shareConnection,
  shareSocketPath,
} from "./session_share.ts";
import { ensureRemoteEt, REMOTE_ET_COMMAND } from "./ship.ts";
import {
  type JumpHop,
  parseJumpHosts,
  sshJumpOptions,
  startJumpRelays,
} from "./jump.ts";

const log = logger("client");

/**
 * Logs (at debug, `-vv`) how far into the process a step of connecting
 * came, so start to prompt can be split into stages from the log alone.
 */
function stage(name: string): void {
  log.debug(`connect stage ${name} at ${performance.now().toFixed(1)} ms`);
}

/**
 * The exit status when the local terminal (or stdout) failed for real and
 * et detached, leaving the session running (EX_IOERR of sysexits.h).
 */
export const LOCAL_OUTPUT_GONE_EXIT = 74;

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
    /**
     * Tunnels only (`-N`): no program, no pty; et waits until interrupted.
     * @default {false}
     */
    noTerminal?: boolean;
    /**
     * How the session catches this client up after an absence
     * (`--resume`).
     * @default {"bytes"}
     */
    resume?: ResumeMode;
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
  /**
   * `--over-ssh`: carry the session over ssh's stdio (`et relay`) from the
   * start; without it the client still switches to ssh when the TCP port
   * cannot be reached (see dial_route.ts).
   * @default {false}
   */
  overSsh?: boolean;
  /**
   * Installing et on a remote that lacks it (see ship.ts): this client's
   * version, `--install-remote`, `--binaries DIR`. Without it a missing et
   * is only reported.
   */
  ship?: { version: string; installRemote: boolean; binariesDir?: string };
  /** Transport tuning. */
  connection?: EternalConnectionOptions;
  // --- command line (issue #9): ssh options, silence ---
  /**
   * `--ssh-option` values, each given to every ssh the client runs as
   * `-o OPT` (ssh -G included, so they shape the resolved config).
   * @default {[]}
   */
  sshOptions?: string[];
  /**
   * `--silent`: no notices on the terminal (errors still end et with one
   * line).
   * @default {false}
   */
  silent?: boolean;
  // --- end command line ---
  /**
   * Tunnels (`-t`, `-r`; ssh's LocalForward and RemoteForward). Reverse
   * ones apply to a new session only.
   * @default {[]}
   */
  tunnels?: TunnelSpec[];
  /**
   * Forward the ssh agent listening on this socket (`-f` with
   * SSH_AUTH_SOCK, `--ssh-socket`, ssh's IdentityAgent): the session
   * exports a private socket as SSH_AUTH_SOCK. New sessions only.
   */
  agentSocket?: string;
  /**
   * Jumphosts (`--jumphost`), nearest first: the bootstrap goes through
   * them with ssh's `-J`, the TCP leg through a jump relay on each.
   * @default {[]}
   */
  jumpHosts?: JumpHop[];
  /**
   * The et port of hops that name none (`--jport`), ProxyJump's included.
   * @default {2022}
   */
  jumpPort?: number;
  /**
   * Predictive local echo (`--predict`); only ever between two terminals
   * on a pty session.
   * @default {"adaptive"}
   */
  predict?: PredictMode;
  /**
   * Session sharing: ask a running `et` to the same place for the new
   * session instead of logging in with ssh, and share this one's
   * connection the same way (`--no-reuse`: false).
   * @default {true}
   */
  reuse?: boolean;
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
    stage("tcp connected");
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
  const sshWords = splitCommandLine(options.ssh);
  if (sshWords.length === 0) throw new Error("--ssh is empty");
  const ssh = withSshOptions(sshWords, options.sshOptions ?? []);
  const target = sshTarget(options.destination);
  const port = options.destination.port ?? DEFAULT_SERVER_PORT;
  const testPort = testDialPort();
  stage("client loaded");
  const local = new LocalTerminal();
  const explicitJumps = options.jumpHosts ?? [];
  const sshVia = [
    ...ssh,
    ...sshJumpOptions(explicitJumps, explicitJumps.length),
  ];
  // Session sharing: the ssh command line and the destination (which is
  // all that decides where ssh lands, as which user), the et port and the
  // remote command name the socket, so a different user, host, port or
  // ssh config never shares.
  const sharePath = options.reuse !== false && explicitJumps.length === 0
    ? await shareSocketPath(await privateRuntimeDir(), [
      sshVia,
      target,
      port,
      testPort ?? null,
      options.terminalPath,
    ]).catch((error) => {
      log.info(`no session sharing: ${errorMessage(error)}`);
      return undefined;
    })
    : undefined;
  // Unless a running client may share its connection, the bootstrap's ssh
  // starts now: its connect and login overlap ssh -G and the listeners.
  const early = sharePath !== undefined && await isPresent(sharePath)
    ? null
    : spawnRemoteTerminal({
      ssh: sshVia,
      target,
      terminalPath: options.terminalPath,
    });
  // The packet cipher (OpenSSL, else node:crypto) opens while ssh logs
  // in (it is needed only to connect), predictive echo's emulator is
  // loaded and made (the same test as startPredictiveEcho's), and so is
  // what sharing the connection needs: ~10-25 ms each of work that would
  // otherwise hold up the first connection or its first prompt after the
  // ready line. Not when a running client may answer in a few ms: the
  // work then would only stall that answer, and it is done anyway while
  // the new shell starts.
  let echo: Promise<PredictiveEcho> | undefined;
  if (early) {
    preloadPacketCrypto().catch(() => {});
    if (sharePath !== undefined) preloadSharing();
    // The first setTimeout of a Deno 2.9 process loads node's timers
    // (the global timers are node's; ~3-5 ms with the collection it
    // brings on): now, while ssh logs in, not after the ready line, where
    // the first dial arms the client's first timer.
    clearTimeout(setTimeout(() => {}, 0));
    const pty = options.mode.kind === "attach" ||
      (options.mode.kind === "new" && options.mode.pty &&
        !options.mode.noTerminal);
    // Raw mode's first tcgetattr binds the C library: now, not between
    // the ready line and the first connection.
    if (pty) local.prepareRaw();
    const predict = options.predict ?? "adaptive";
    if (predict !== "never" && pty && local.isTty && local.isOutputTty) {
      const { cols, rows } = local.size();
      echo = PredictiveEcho.create(
        predict,
        cols,
        rows,
        (bytes, how) => writeAll(local, bytes, how),
      );
      echo.catch(() => {}); // a failure shows where the session awaits it
    }
  }
  try {
    return await resolveAndRun(options, {
      ssh,
      sshVia,
      target,
      port,
      testPort,
      local,
      sharePath,
      early,
      echo,
    });
  } finally {
    early?.cancel(); // unused (a failure before the bootstrap): ends it
    await bootstrapSshEnded();
  }
}

/** Whether a file exists at `path` (of any kind). */
async function isPresent(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** What runClient works out before ssh -G. */
interface Started {
  ssh: string[];
  sshVia: string[];
  target: string;
  port: number;
  testPort: number | undefined;
  local: LocalTerminal;
  sharePath: string | undefined;
  /** The bootstrap's ssh, started before its line was known (or null). */
  early: PendingRemoteTerminal | null;
  /** Predictive echo, made while ssh logged in (or undefined). */
  echo?: Promise<PredictiveEcho>;
}

/** ssh -G, the listeners, then the bootstrap and the session. */
async function resolveAndRun(
  options: ClientOptions,
  started: Started,
): Promise<number> {
  const { ssh, sshVia, target, port, testPort, local } = started;
  let early = started.early;
  const resolved = await resolveWithSsh(ssh, target);
  stage("ssh -G done");
  log.info(`${target} resolves to ${resolved.hostname}, et port ${port}`);
  // --jumphost, else the ssh config's ProxyJump: the TCP leg goes through
  // an et relay on each hop. ssh applies ProxyJump itself; -J is added
  // for --jumphost only.
  const explicitJumps = options.jumpHosts ?? [];
  const jumps = explicitJumps.length > 0
    ? explicitJumps
    : proxyJumpHops(resolved.proxyJump, options.jumpPort);
  const hopsResolved = await Promise.all(
    jumps.map((hop) => resolveWithSsh(ssh, sshTarget(hop.destination))),
  );
  // Not through jumphosts (ProxyJump included): their relays need ssh.
  const sharePath = jumps.length === 0 ? started.sharePath : undefined;
  // How the user named the host, for commands we suggest (port included).
  const shown = port === DEFAULT_SERVER_PORT ? target : `${target}:${port}`;
  // Changed when et was missing there and is now run from ~/.local/bin.
  let terminalPath = options.terminalPath;
  let daemon = options.daemon ?? "auto";
  const bootstrap = async (
    request: () => Parameters<typeof encodeBootstrap>[0],
  ) => {
    const start = () => {
      // The early ssh runs the command as first named; after an install
      // (the path changed) a new one starts.
      const pending = early && terminalPath === options.terminalPath
        ? early
        : spawnRemoteTerminal({ ssh: sshVia, target, terminalPath });
      if (pending === early) early = null;
      return pending.finish(encodeBootstrap(request()));
    };
    const asked = request();
    if (sharePath && asked.op === "new" && !asked.killOthers) {
      const shared = await askSharedSession(sharePath, encodeBootstrap(asked));
      if (shared) {
        log.info("new session through a running client's connection");
        started.early?.cancel(); // not needed after all
        return shared;
      }
    }
    try {
      return await start();
    } catch (error) {
      if (!(error instanceof RemoteEtMissingError) || !options.ship) {
        throw error;
      }
      await ensureRemoteEt({
        ssh: sshVia,
        target,
        command: terminalPath,
        versionLine:
          `et ${options.ship.version} (protocol ${PROTOCOL_VERSION})`,
        version: options.ship.version,
        mayInstall: options.mode.kind === "new",
        installRemote: options.ship.installRemote,
        binariesDir: options.ship.binariesDir,
        say: (text) => notice(text, false),
      });
      // Called by its path: ~/.local/bin is rarely on a non-interactive
      // ssh's PATH. No daemon runs from there: no-root mode.
      terminalPath = REMOTE_ET_COMMAND;
      daemon = "never";
      return await start();
    }
  };

  const mode = options.mode;
  if (mode.kind === "list") {
    const report = await bootstrap(() => ({ op: "list" }));
    if (!("sessions" in report)) throw new Error("unexpected answer to list");
    printSessions(report.sessions, shown);
    return 0;
  }
  // The ssh config's LocalForward, RemoteForward and ForwardAgent (from
  // ssh -G) join the command line's, as ssh would apply them.
  const configured = configuredForwarding(resolved);
  const agentSocket = options.agentSocket ?? configured.agentSocket;
  // Listeners first: a taken port fails here, before a session exists.
  const tunnels = await ClientTunnels.listen([
    ...[...(options.tunnels ?? []), ...configured.tunnels].filter((spec) =>
      mode.kind === "new" || spec.direction === "forward"
    ),
    ...(agentSocket !== undefined && mode.kind === "new"
      ? [agentTunnel(agentSocket)]
      : []),
  ]);
  try {
    return await bootstrapAndRun(options, {
      local,
      bootstrap,
      tunnels,
      target,
      shown,
      port,
      testPort,
      resolved,
      ssh,
      sshVia,
      jumps,
      jumpsConfigured: explicitJumps.length === 0 && jumps.length > 0,
      hopHostnames: hopsResolved.map((hop) => hop.hostname),
      terminalPath: () => terminalPath,
      daemon: () => daemon,
      sharePath,
      echo: started.echo,
    });
  } finally {
    tunnels.close();
  }
}

/** What runClient found out before bootstrapping. */
interface Prepared {
  local: LocalTerminal;
  bootstrap: (
    request: () => Parameters<typeof encodeBootstrap>[0],
  ) => Promise<ReadyReport>;
  tunnels: ClientTunnels;
  target: string;
  shown: string;
  port: number;
  testPort: number | undefined;
  /** The destination as ssh -G resolved it. */
  resolved: SshConfig;
  /** The ssh command line, `--ssh-option`s included. */
  ssh: string[];
  /** `ssh` plus `-J` through the `--jumphost` hops: reaches the host. */
  sshVia: string[];
  /** The hops of the TCP leg (`--jumphost`, or ProxyJump), nearest first. */
  jumps: JumpHop[];
  /** The hops came from the ssh config's ProxyJump, not `--jumphost`. */
  jumpsConfigured: boolean;
  /** Each hop's HostName as ssh -G resolves it. */
  hopHostnames: string[];
  /** How et is run on the remote (its path once shipped there). */
  terminalPath: () => string;
  /** How the session is reached (`"never"` once et was shipped). */
  daemon: () => DaemonUse;
  /** Where this client shares its connection (none: `--no-reuse`). */
  sharePath?: string;
  /** Predictive echo made while ssh logged in (or undefined). */
  echo?: Promise<PredictiveEcho>;
}

/**
 * The hops of an ssh config's ProxyJump (`user@host:port,host2`), as et
 * jumphosts: ProxyJump's ports are ssh's, so each hop's et port is
 * `jumpPort` (`--jport`, default 2022). None for "none" or no ProxyJump.
 */
function proxyJumpHops(
  proxyJump: string | null,
  jumpPort = DEFAULT_SERVER_PORT,
): JumpHop[] {
  if (!proxyJump) return [];
  try {
    return parseJumpHosts(proxyJump, jumpPort).map((hop) => ({
      destination: { ...hop.destination, port: undefined },
      port: jumpPort,
    }));
  } catch (error) {
    log.warn(`ProxyJump '${proxyJump}' ignored for the TCP leg: ${error}`);
    return [];
  }
}

/** Bootstraps a new or attached session and runs it. */
async function bootstrapAndRun(
  options: ClientOptions,
  prepared: Prepared,
): Promise<number> {
  const { local, bootstrap, tunnels, target, shown, port, testPort } = prepared;
  const { resolved, sshVia, jumps } = prepared;
  const mode = options.mode;
  if (mode.kind === "list") throw new Error("list has no session");
  const fresh = generateSessionSecret();
  const size = local.size();
  let report: ReadyReport;
  if (mode.kind === "new") {
    report = await bootstrap(() => ({
      op: "new",
      secret: fresh,
      program: {
        command: mode.command,
        pty: mode.pty,
        term: Deno.env.get("TERM") || "xterm-256color",
        cols: size.cols,
        rows: size.rows,
        env: forwardedEnv(),
        setEnv: resolved.setEnv, // SetEnv of the ssh config, via ssh -G
      },
      limits: {
        connectTimeoutMs: options.connectTimeoutMs,
        sessionTimeoutMs: options.sessionTimeoutMs,
        maxBacklogBytes: options.maxBacklogBytes,
        keepaliveMs: options.connection?.keepaliveMs,
      },
      killOthers: mode.killOthers,
      daemon: prepared.daemon(),
      portRange: options.portRange ?? DEFAULT_PORT_RANGE,
      reverseTunnels: tunnels.reverseListens,
      noTerminal: mode.noTerminal,
      resume: mode.resume,
      // ssh is ended here once the ready line is in (see readReady).
      endsSsh: true,
    }));
  } else {
    report = await bootstrap(() => ({
      op: "attach",
      target: mode.target,
      passkey: fresh.passkey,
      cols: size.cols,
      rows: size.rows,
      // Always sent: the session drops the policy of the client before.
      keepaliveMs: options.connection?.keepaliveMs ?? DEFAULT_KEEPALIVE_MS,
    }));
  }
  stage("ready line");
  if (!("id" in report)) throw new Error("unexpected answer from et terminal");
  const noTerminal = mode.kind === "new" && mode.noTerminal === true;
  const pty = !noTerminal && (mode.kind === "attach" || mode.pty);
  // Notices go to the terminal only: with no pty, stderr is the remote's.
  const noticesOn = !options.silent && (pty || Deno.stderr.isTerminal());
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
      : prepared.daemon() === "never"
      ? `serving this session from port ${ownPort} (no-root mode, --no-daemon)`
      : `no et server on ${options.destination.host}; serving this session from port ${ownPort} (no-root mode)`;
    log.warn(text); // in the log whatever the verbosity
    if ((options.verbosity ?? 0) >= 1 && noticesOn) notice(text, false);
  }
  // --jumphost or ProxyJump: a relay on each hop; the client dials the
  // first one. Hops from ProxyJump may have no et: then ssh carries it.
  const direct = { hostname: resolved.hostname, port: ownPort ?? port };
  let entry = direct;
  let overSsh = options.overSsh ?? false;
  if (jumps.length > 0 && !overSsh) {
    try {
      entry = await startJumpRelays({
        ssh: prepared.ssh,
        terminalPath: prepared.terminalPath(),
        hops: jumps,
        hopHostnames: prepared.hopHostnames,
        id: report.id,
        destination: {
          hostname: resolved.hostname,
          port: ownPort ?? port,
          ownPort: ownPort !== undefined,
        },
        daemon: options.daemon ?? "auto",
        portRange: options.portRange ?? DEFAULT_PORT_RANGE,
        limits: {
          connectTimeoutMs: options.connectTimeoutMs,
          sessionTimeoutMs: options.sessionTimeoutMs,
        },
      });
    } catch (error) {
      if (!prepared.jumpsConfigured) throw error;
      const text = `ProxyJump ${
        jumps.map((hop) => sshTarget(hop.destination)).join(",")
      } relays no et (${
        errorMessage(error)
      }); carrying the session over ssh instead`;
      log.warn(text);
      if (noticesOn) notice(text, false);
      overSsh = true;
    }
  }
  const dialPort = testPort ?? entry.port;
  if (dialPort !== entry.port) {
    log.warn(`${TEST_DIAL_PORT_ENV}: dialing port ${dialPort} (test only)`);
  }
  const secret: SessionSecret = {
    id: fromHex(report.id, 16),
    passkey: fresh.passkey,
  };
  // TCP, or ssh's stdio through `et relay` (--over-ssh, or by itself when
  // the port cannot be reached).
  let where = hostPort(entry.hostname, dialPort);
  let reaching = entry !== direct
    ? `the jumphost ${sshTarget(jumps[0].destination)}`
    : ownPort === undefined
    ? "the et server"
    : "the session (no-root mode)";
  const overSshRoute = () => {
    where = `ssh ${target}`;
    reaching = "the session over ssh (et relay)";
  };
  if (overSsh) overSshRoute();
  const dial = routedDial({
    tcp: () => dialOnce(entry.hostname, dialPort),
    ssh: sshRelayDialer({
      ssh: sshVia,
      target,
      terminalPath: prepared.terminalPath(),
      idHex: report.id,
    }),
    overSsh,
    // A short --connect-timeout leaves ssh half of it.
    switchAfterMs: Math.min(SWITCH_AFTER_MS, options.connectTimeoutMs / 2),
    onSwitch: () => {
      const text = `port ${dialPort} on ${options.destination.host} ` +
        `is not reachable; carrying the session over ssh instead`;
      overSshRoute();
      log.warn(text);
      if (noticesOn) notice(text, local.isRaw);
    },
  });
  return await runSession(local, secret, {
    ...options,
    target: shown,
    noticesOn,
    where: () => where,
    reaching: () => reaching,
    dial,
    pty,
    typeCommand: mode.kind === "new" ? mode.typeCommand : undefined,
    clientTunnels: tunnels,
    noTerminal,
    sharePath: prepared.sharePath,
    echo: prepared.echo,
  });
}

interface SessionRun extends ClientOptions {
  /** The destination as the user would type it, for messages. */
  target: string;
  /** Whether notices may go to stderr. */
  noticesOn: boolean;
  /**
   * host:port the client dials (the daemon, or the session), or the ssh
   * it carries the session over, for messages.
   */
  where: () => string;
  /** What is at `where`, for the message when the first connect fails. */
  reaching: () => string;
  dial: Dial;
  pty: boolean;
  typeCommand?: string;
  clientTunnels: ClientTunnels;
  /** `-N`: tunnels only. */
  noTerminal: boolean;
  /** Where to share this connection with later clients (session_share.ts). */
  sharePath?: string;
  /** Predictive echo made ahead (while ssh logged in), if any. */
  echo?: Promise<PredictiveEcho>;
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
  // Aborted when the client leaves on purpose (a detach), once the session
  // has acknowledged it (it drops the pipe then, and dialling again would
  // attach it once more) or the detach's budget is spent.
  const leaving = new AbortController();
  const reconnecting = keepConnected(connection, {
    signal: leaving.signal,
    dial: run.dial,
    connectTimeoutMs: run.connectTimeoutMs,
    awayTimeoutMs: run.sessionTimeoutMs,
    onAttemptFailed: (error) => {
      log.info(`attempt failed: ${errorMessage(error)}`);
      if (!(error instanceof SshAuthError)) return;
      // Over ssh, a login that needs a prompt: said once per outage; and
      // before any connection it cannot get better by trying again.
      if (!reconnecting.status.everConnected) connection.fail(error);
      else if (!authSaid) say(error.message);
      authSaid = true;
    },
  });
  let authSaid = false;
  connection.onEvent((event) => {
    if (event.type !== "disconnected") authSaid = false;
  });
  announceWaits(
    connection,
    say,
    () => reconnecting.status.lastReason ?? "",
    run.where,
  );
  run.clientTunnels.start(connection);
  // Session sharing (session_share.ts): later clients to the same place
  // ask the host for their session over this connection.
  const sharing = run.sharePath === undefined ? null : shareConnection(
    connection,
    connection.channel(CONTROL_CHANNEL),
    run.sharePath,
  );
  if (run.noTerminal) {
    try {
      return await runTunnelsOnly(connection, run, reconnecting, say, sharing);
    } finally {
      await sharing?.close();
    }
  }

  if (run.pty) {
    local.enterRaw();
  }
  // --- predictive echo (src/client/prediction/): null means the plain path
  echo = await startPredictiveEcho(run, local);
  // ---
  let detaching = false;
  // Set once the detach is held by the connection (sent or to be resent).
  let detachHeld = false;
  // The session acknowledges a detach, then drops the pipe: that drop must
  // not start a redial. Checked at the drop itself (listeners run before
  // the redial loop wakes); a drop before the ack redials, and the resume
  // carries the detach.
  connection.onEvent((event) => {
    if (
      event.type === "disconnected" && detachHeld &&
      connection.unacknowledgedBytes === 0
    ) leaving.abort();
  });
  // Without a pty, a pipe's reader that leaves (`et host -c cmd | head`)
  // ends the remote command as under ssh: its output there is closed.
  const copies = new OutputCopies(
    run.pty ? {} : {
      onReaderGone: (channel) => {
        log.info(`the reader of channel ${channel} left: closing it remotely`);
        connection.channel(CONTROL_CHANNEL).write(
          encodeControl({
            type: "output-closed",
            channel: channel === STDERR_CHANNEL
              ? STDERR_CHANNEL
              : TERMINAL_CHANNEL,
          }),
        ).catch(() => {}); // the session is over anyway
      },
    },
  );
  // Leaving on purpose: the copies stop, and the session learns exactly
  // how much of each output its local side took, so the next client gets
  // the rest (what sat received but unwritten here included). `budgetMs`
  // bounds the whole (a signal's cleanup has 300 ms). Only the session's
  // ack proves the detach arrived: a pipe cut as it went out (or just
  // before, unnoticed) lost it, so redialling goes on until the ack or the
  // budget's end, and the resume resends it. Past the budget the session
  // knows only what was acknowledged (PROTOCOL.md section 8). True when
  // the session acknowledged it.
  const detach = async (why: string, budgetMs = 250) => {
    log.info(`detaching: ${why}`);
    detaching = true;
    const deadline = performance.now() + budgetMs;
    const written = await copies.stop(Math.min(100, budgetMs / 3));
    // Bounded: with the connection down and its window full, the write
    // would wait for a reconnect that may never come.
    await withDeadline(
      connection.channel(CONTROL_CHANNEL).write(
        encodeControl({ type: "detach", written }),
      ).then(() => {
        detachHeld = true;
      }),
      Math.max(0, deadline - performance.now()),
      "detach not sent in time",
    ).catch(() => {});
    await withDeadline(
      connection.allAcknowledged(),
      Math.max(0, deadline - performance.now()),
      "detach not acknowledged in time",
    ).catch(() => {});
    leaving.abort();
    const told = detachHeld && connection.unacknowledgedBytes === 0;
    if (!told) log.info("detach not acknowledged: the session may replay");
    return told;
  };
  local.guardSignals(async () => {
    // The share socket goes too (no FFI wait may outlive the process).
    await Promise.all([detach("a signal"), sharing?.close()]);
  });

  const terminal = connection.channel(TERMINAL_CHANNEL);
  const control = connection.channel(CONTROL_CHANNEL);
  let exitCode: number | null = null;
  const controlReading = (async () => {
    const decoder = new ControlDecoder({ onDropped: refusedControlLine });
    for (let data; (data = await control.read()) !== null;) {
      for (const message of decoder.push(data)) {
        if (message.type === "exit") exitCode = message.code;
        else if (message.type === "session-answer") {
          sharing?.answer(message.tag, message.answer);
        } else if (message.type.startsWith("tunnel-")) {
          run.clientTunnels.handle(message as TunnelMessage);
        }
      }
    }
  })();

  // Set by `~.`: the detach under way. Stopping the output copies ends
  // them, which settles the race below before this detach is through;
  // the race's winner waits for it.
  let escapeDetach: Promise<unknown> | null = null;
  let stopDump = () => {};
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
                escapeDetach = detach("~. typed");
                await escapeDetach;
                return;
              }
            }
          }
          const predictive = echo;
          const typed = predictive ? predictive.takeInput(bytes) : bytes;
          if (typed.length === 0) continue;
          const sending = terminal.write(typed);
          // Sent first, predicted (and shown, where shown) once the
          // connection holds them: by then a keystroke is on the wire (the
          // write pump was woken first and writes at once), and the
          // predictor's work after an idle spell is off the echo's path.
          // A keystroke that must wait for room is predicted only then.
          await (predictive === null
            ? sending
            : sending.finally(() => predictive.predict(typed)));
        }
        // End of input: the remote program's stdin ends too (no pty).
        if (!run.pty) await terminal.closeWrite();
      } catch {
        // session over
      }
    })();

    const copying = copies.add(terminal, echo?.sink ?? local);
    stopDump = dumpOnSignal(
      log,
      () => [describeSession(connection, copying, local, echo)],
    );
    if (!run.pty) {
      copies.add(connection.channel(STDERR_CHANNEL), StdOutput.open(2));
    }
    const outcome = await Promise.race([
      copies.ended,
      copies.failed,
      input.then(() => {
        if (escapeDetach !== null) return;
        return new Promise<never>(() => {}); // input ending alone ends nothing
      }),
    ]);
    if (outcome instanceof LocalOutputError) {
      return await leaveLocalOutputGone(outcome, {
        detach,
        local,
        resumeHint,
        pty: run.pty,
      });
    }
    await echo?.finish().catch(() => {});
    if (escapeDetach !== null) {
      await escapeDetach;
      local.restore();
      local.resetModes();
      say(`detached; the session keeps running: ${resumeHint}`);
      return 0;
    }
    const end = await connection.closed;
    await Promise.allSettled([reconnecting, controlReading]);
    local.restore();
    if (exitCode !== null) return exitCode;
    if (end.error instanceof SshAuthError) throw new Error(end.error.message);
    if (end.error instanceof ReconnectGaveUpError && !end.error.everConnected) {
      throw new Error(
        `cannot connect to ${run.reaching()} at ${run.where()} within ${
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
    stopDump();
    local.restore();
    await sharing?.close();
  }
}

/**
 * `-N`: no terminal; carries the tunnels until SIGINT, SIGTERM or SIGHUP,
 * which end the session at both ends (an authenticated goodbye), or until
 * the session ends or is given up. Resolves with 0 after a signal.
 */
async function runTunnelsOnly(
  connection: EternalConnection,
  run: SessionRun,
  reconnecting: ReconnectLoop,
  say: (text: string) => void,
  sharing: ConnectionSharing | null,
): Promise<number> {
  // No terminal to disturb: say on stderr why a connection failed, as ssh
  // does ("open failed: connect failed").
  run.clientTunnels.onRefused = (reason) =>
    notice(`tunnel connection refused by the remote side: ${reason}`, false);
  const control = connection.channel(CONTROL_CHANNEL);
  const controlReading = (async () => {
    const decoder = new ControlDecoder({ onDropped: refusedControlLine });
    try {
      for (let data; (data = await control.read()) !== null;) {
        for (const message of decoder.push(data)) {
          if (message.type === "session-answer") {
            sharing?.answer(message.tag, message.answer);
          } else if (message.type.startsWith("tunnel-")) {
            run.clientTunnels.handle(message as TunnelMessage);
          }
        }
      }
    } catch { /* session over */ }
  })();
  let interrupted = false;
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM", "SIGHUP"];
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    log.info("interrupted: ending the session (-N)");
    run.clientTunnels.close();
    // Said to the session itself, so it ends too; bounded if it is away.
    connection.close("tunnels closed by the client (-N)", 1000)
      .catch(() => {});
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  try {
    const end = await connection.closed;
    await Promise.allSettled([reconnecting, controlReading]);
    if (interrupted) return 0;
    if (end.error instanceof ReconnectGaveUpError && !end.error.everConnected) {
      throw new Error(
        `cannot connect to ${run.reaching()} at ${run.where()} within ${
          formatAge(end.error.timeoutMs)
        }: ${reconnecting.status.lastReason ?? "no answer"}`,
      );
    }
    say(`tunnels ended: ${end.reason}`);
    return 1;
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
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
  const made = await run.echo?.catch(() => undefined);
  const echo = made ?? await PredictiveEcho.create(
    mode,
    cols,
    rows,
    (bytes, how) => writeAll(local, bytes, how),
  );
  // Made ahead at the size then: a resize since is its to follow.
  if (made) await echo.resize(cols, rows);
  echo.locate().catch(() => {});
  return echo;
}

/** Logs a control line from the host dropped for its length. */
function refusedControlLine(length: number) {
  log.warn(
    `control line of ${length}+ chars refused (over ${CONTROL_LINE_LIMIT})`,
  );
}

/**
 * A local output failed for real (the terminal is gone, stdout closed):
 * et cannot show the session any more, so it detaches, telling the
 * session exactly how much it showed, says so in one line on stderr and
 * ends with {@linkcode LOCAL_OUTPUT_GONE_EXIT}. The session keeps running;
 * `--attach` gets what this client did not show.
 */
async function leaveLocalOutputGone(
  failure: LocalOutputError,
  how: {
    detach: (why: string, budgetMs: number) => Promise<boolean>;
    local: LocalTerminal;
    resumeHint: string;
    pty: boolean;
  },
): Promise<number> {
  const what = failure.channel === STDERR_CHANNEL
    ? "stderr"
    : how.pty && how.local.isOutputTty
    ? "the terminal"
    : "stdout";
  log.warn(`local output failed (${what}): ${failure.message}; detaching`);
  // Longer than a signal's budget: nothing else hurries us, and a session
  // that has the counts keeps every byte for the next client.
  const told = await how.detach("the local output failed", 3000);
  how.local.restore();
  how.local.resetModes();
  const loss = told ? "" : " (it may not have learnt where output stopped)";
  notice(
    `cannot write to ${what} (${failure.message}): detached; ` +
      `the session keeps running${loss}: ${how.resumeHint}`,
    false,
  );
  return LOCAL_OUTPUT_GONE_EXIT;
}

/**
 * One line of the session's state for the SIGUSR2 debug dump: the
 * transport (see {@linkcode EternalConnection.describe}), where the output
 * copy is and since when, and the local terminal's pending slow write.
 */
function describeSession(
  connection: EternalConnection,
  output: CopyState,
  local: LocalTerminal,
  echo: PredictiveEcho | null,
): string {
  const ago = (performance.now() - output.since).toFixed(0);
  return `${connection.describe()}; output ${output.step} for ${ago} ms` +
    ` after ${output.bytes} bytes; ${local.describe()}` +
    (echo ? `; ${echo.describe()}` : "");
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
  where: () => string,
) {
  let everConnected = false;
  let announced = false;
  const reason = () => lastFailure() ? ` (${lastFailure()})` : "";
  let pending: ReturnType<typeof setTimeout> | undefined = setTimeout(() => {
    pending = undefined;
    if (connection.connected || connection.isEnding) return;
    announced = true;
    say(`connecting to ${where()}…${reason()}`);
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
      if (!everConnected) stage("connected (handshake done)");
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
