/**
 * Command line entry: parses arguments and dispatches to the client, the
 * daemon or the terminal role. Nothing else lives here.
 *
 * @module
 */

import { type OptionTable, parseOptions } from "./args.ts";
import {
  parseDestination,
  parsePort,
  parseUserName,
} from "../client/destination.ts";
import { parseJumpHosts } from "../client/jump.ts";
import {
  configureLog,
  errorMessage,
  fileSink,
  type LogLevel,
  type LogSink,
} from "../log.ts";
import { DEFAULT_ESCAPE_CHAR } from "../client/escape.ts";
import { parsePortRange } from "../client/port_range.ts";
import { parsePredictMode } from "../client/prediction/mod.ts";
import {
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_MAX_BACKLOG_BYTES,
  DEFAULT_SERVER_PORT,
  DEFAULT_SESSION_TIMEOUT_MS,
  MAX_BACKLOG_CAP_BYTES,
  parseResumeMode,
  privateRuntimeDir,
  routerPathFromEnv,
} from "../session/mod.ts";
import { PROTOCOL_VERSION } from "../transport/wire.ts";
import {
  checkSshOption,
  parseDuration,
  parseEscapeChar,
  parseKeepalive,
  parseSize,
} from "./units.ts";
import {
  CLIENT_HELP,
  RELAY_HELP,
  SERVER_HELP,
  TERMINAL_HELP,
  VERSION,
} from "./help.ts";
import { usageMessage } from "./suggest.ts";
import { forwardingOptions } from "./forwarding.ts";
import {
  internalRole,
  runTerminalRole,
  TerminalEnvError,
} from "./terminal_role.ts";

/** Bad command line: one line on stderr, exit 2. */
class UsageError extends Error {}

/** Parses `args` against `options`; a bad command line is a usage error. */
function parse(args: string[], options: OptionTable, help = "et --help") {
  try {
    return parseOptions(args, options);
  } catch (error) {
    throw new UsageError(usageMessage(errorMessage(error), options, help));
  }
}

/** Runs a parser of user input, turning its error into a usage error. */
function usage<T>(parseInput: () => T): T {
  try {
    return parseInput();
  } catch (error) {
    throw new UsageError(errorMessage(error));
  }
}

async function defaultClientLog(): Promise<string> {
  // Windows has no uid to own a /tmp directory: the user's local app data.
  const state = Deno.env.get("XDG_STATE_HOME") ??
    (Deno.build.os === "windows" ? Deno.env.get("LOCALAPPDATA") : undefined);
  if (state) {
    await Deno.mkdir(`${state}/et`, { recursive: true, mode: 0o700 });
    return `${state}/et/client.log`;
  }
  return `${await privateRuntimeDir()}/client.log`;
}

/** `--logdir DIR`: DIR (created 0700 if missing) holds client.log. */
async function clientLogIn(dir: string): Promise<string> {
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new UsageError(`--logdir ${dir}: ${errorMessage(error)}`);
  }
  return `${dir}/client.log`;
}

/**
 * `--logtostdout`: log lines on stdout, as ET does; on a terminal in raw
 * mode a line needs its carriage return.
 */
const stdoutSink: LogSink = (line) => {
  const end = Deno.stdout.isTerminal() ? "\r\n" : "\n";
  try {
    Deno.stdout.writeSync(new TextEncoder().encode(line + end));
  } catch {
    // stdout closed: nowhere to log.
  }
};

/**
 * The client's options. Unknown-option hints read this table: an option
 * added here is hinted without more code.
 */
export const CLIENT_OPTIONS: OptionTable = {
  username: { type: "string", short: "u" },
  port: { type: "string", short: "p" },
  "ssh-option": { type: "string", multiple: true },
  keepalive: { type: "string", short: "k" },
  logdir: { type: "string", short: "l" },
  logtostdout: { type: "boolean" },
  silent: { type: "boolean" },
  serverfifo: { type: "string" },
  command: { type: "string", short: "c" },
  noexit: { type: "boolean", short: "e" },
  pty: { type: "boolean" },
  "no-pty": { type: "boolean" },
  attach: { type: "boolean" },
  list: { type: "boolean" },
  "kill-other-sessions": { type: "boolean", short: "x" },
  "connect-timeout": { type: "string" },
  "session-timeout": { type: "string" },
  "max-backlog": { type: "string" },
  "escape-char": { type: "string" },
  predict: { type: "string" },
  resume: { type: "string" },
  "port-range": { type: "string" },
  "no-daemon": { type: "boolean" },
  "no-reuse": { type: "boolean" },
  "daemon-only": { type: "boolean" },
  "over-ssh": { type: "boolean" },
  "install-remote": { type: "boolean" },
  binaries: { type: "string" },
  ssh: { type: "string" },
  "terminal-path": { type: "string" },
  tunnel: { type: "string", short: "t", multiple: true },
  reversetunnel: { type: "string", short: "r", multiple: true },
  "no-terminal": { type: "boolean", short: "N" },
  "forward-ssh-agent": { type: "boolean", short: "f" },
  "ssh-socket": { type: "string" },
  jumphost: { type: "string" },
  jport: { type: "string" },
  verbose: { type: "boolean", short: "v", multiple: true },
  "log-file": { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean" },
};

/**
 * Splits `[options] destination [--] [command...]` like ssh does: options
 * end at the first word that is not an option or an option's value; the
 * words after the destination are the remote command, options or not.
 */
function splitAtDestination(
  args: string[],
  spec: OptionTable,
): { options: string[]; rest: string[] } {
  const takesValue = (flag: string) => {
    if (flag.startsWith("--")) {
      const name = flag.slice(2);
      return !name.includes("=") && spec[name]?.type === "string";
    }
    // A cluster like -vx or -p2022: only its last letter may take a value,
    // and only if nothing follows it.
    const letters = flag.slice(1);
    for (let i = 0; i < letters.length; i++) {
      const entry = Object.values(spec).find((o) => o.short === letters[i]);
      if (entry?.type === "string") return i === letters.length - 1;
    }
    return false;
  };
  let i = 0;
  while (i < args.length) {
    const arg = args[i];
    if (arg === "--") {
      return { options: args.slice(0, i), rest: args.slice(i + 1) };
    }
    if (!arg.startsWith("-") || arg === "-") break;
    i += takesValue(arg) ? 2 : 1;
  }
  return { options: args.slice(0, i), rest: args.slice(i) };
}

async function client(args: string[]): Promise<number> {
  const split = splitAtDestination(args, CLIENT_OPTIONS);
  const { values } = parse(split.options, CLIENT_OPTIONS);
  if (values.help) {
    console.log(CLIENT_HELP);
    return 0;
  }
  if (values.version) {
    console.log(`et ${VERSION} (protocol ${PROTOCOL_VERSION})`);
    return 0;
  }
  let positionals = split.rest;
  if (positionals[0] === "--") positionals = positionals.slice(1);
  let attachTarget = "";
  if (values.attach && positionals.length === 2) {
    attachTarget = positionals[0].toLowerCase();
    if (!/^[0-9a-f]{1,32}$/.test(attachTarget)) {
      throw new UsageError(
        `invalid session id '${positionals[0]}' (expected hex from et --list)`,
      );
    }
    positionals = positionals.slice(1);
  }
  if (positionals.length === 0) {
    throw new UsageError("missing destination [user@]host[:port]");
  }
  const destination = usage(() => parseDestination(positionals[0]));
  if (values.username !== undefined) {
    const user = usage(() => parseUserName(values.username as string));
    if (destination.user !== undefined && destination.user !== user) {
      throw new UsageError(
        "give the user either with -u or before the @, not both",
      );
    }
    destination.user = user;
  }
  const sshOptions = (values["ssh-option"] as string[] | undefined ?? []).map(
    (option) => usage(() => checkSshOption(option)),
  );
  const keepalive = values.keepalive === undefined
    ? undefined
    : usage(() => parseKeepalive(values.keepalive as string));
  if (values.serverfifo !== undefined && !values.silent) {
    console.error(
      "et: --serverfifo does not apply to this et (clients reach sessions by TCP and session id); ignored",
    );
  }
  if (values.silent && values.logtostdout) {
    throw new UsageError("--silent and --logtostdout contradict each other");
  }
  if (
    values.logtostdout &&
    (values.logdir !== undefined || values["log-file"] !== undefined)
  ) {
    throw new UsageError(
      "--logtostdout and a log file (--logdir, --log-file) exclude each other",
    );
  }
  if (values.logdir !== undefined && values["log-file"] !== undefined) {
    throw new UsageError("give either --logdir or --log-file, not both");
  }
  let remoteCommand = positionals.length > 1
    ? positionals.slice(1).join(" ")
    : undefined;
  if (values.port !== undefined) {
    destination.port = usage(() => parsePort(values.port as string));
  }
  if (values.command !== undefined) {
    if (remoteCommand !== undefined) {
      throw new UsageError(
        "give the command either with -c or after the host, not both",
      );
    }
    remoteCommand = values.command as string;
  }
  if (values.noexit && remoteCommand === undefined) {
    throw new UsageError("-e/--noexit needs a command (-c CMD)");
  }
  if (values["no-daemon"] && values["daemon-only"]) {
    throw new UsageError("--no-daemon and --daemon-only contradict each other");
  }
  const jumpPort = values.jport === undefined
    ? DEFAULT_SERVER_PORT
    : usage(() => parsePort(values.jport as string));
  const jumpHosts = values.jumphost === undefined
    ? []
    : usage(() => parseJumpHosts(values.jumphost as string, jumpPort));
  const portRange = values["port-range"] === undefined
    ? undefined
    : usage(() => parsePortRange(values["port-range"] as string));
  if (values.pty && values["no-pty"]) {
    throw new UsageError("--pty and --no-pty contradict each other");
  }
  const exclusive = [values.attach, values.list, remoteCommand !== undefined]
    .filter(Boolean).length;
  if (exclusive > 1) {
    throw new UsageError("--attach, --list and a command exclude each other");
  }
  if ((values.attach || values.list) && positionals.length > 1) {
    throw new UsageError(`unexpected argument '${positionals[1]}'`);
  }
  const forwarding = usage(() =>
    forwardingOptions(values, {
      command: remoteCommand !== undefined,
      attach: Boolean(values.attach),
      list: Boolean(values.list),
      authSock: Deno.env.get("SSH_AUTH_SOCK"),
    })
  );
  const duration = (name: string, fallback: number) =>
    values[name] === undefined
      ? fallback
      : usage(() => parseDuration(values[name] as string, `--${name}`));
  const connectTimeoutMs = duration(
    "connect-timeout",
    DEFAULT_CONNECT_TIMEOUT_MS,
  );
  if (connectTimeoutMs <= 0) {
    throw new UsageError("--connect-timeout must be above 0");
  }
  const sessionTimeoutMs = duration(
    "session-timeout",
    DEFAULT_SESSION_TIMEOUT_MS,
  );
  const maxBacklogBytes = values["max-backlog"] === undefined
    ? DEFAULT_MAX_BACKLOG_BYTES
    : usage(() => parseSize(values["max-backlog"] as string, "--max-backlog"));
  const predict = values.predict === undefined
    ? "adaptive"
    : usage(() => parsePredictMode(values.predict as string));
  const resume = values.resume === undefined
    ? "bytes"
    : usage(() => parseResumeMode(values.resume as string));
  if (values.resume !== undefined && (values.attach || values.list)) {
    throw new UsageError(
      "--resume is for a new session (an attached one keeps its own)",
    );
  }
  if (resume === "screen" && (values["no-pty"] || forwarding.noTerminal)) {
    throw new UsageError(
      "--resume screen needs a pty: not with --no-pty or -N",
    );
  }
  const escapeChar = values["escape-char"] === undefined
    ? DEFAULT_ESCAPE_CHAR
    : usage(() => parseEscapeChar(values["escape-char"] as string));

  const verbosity = (values.verbose as boolean[] | undefined)?.length ?? 0;
  const level: LogLevel = verbosity >= 2
    ? "debug"
    : verbosity === 1
    ? "info"
    : "warn";
  configureLog({
    level,
    sink: values.logtostdout ? stdoutSink : fileSink(
      (values["log-file"] as string | undefined) ??
        (values.logdir !== undefined
          ? await clientLogIn(values.logdir as string)
          : await defaultClientLog()),
    ),
  });
  const bothTerminals = Deno.stdin.isTerminal() && Deno.stdout.isTerminal();
  const typed = Boolean(values.noexit);
  // Like ssh: an interactive shell gets a pty; a command gets one only
  // when it runs between two terminals, unless told.
  const pty = values["no-pty"]
    ? false
    : values.pty || remoteCommand === undefined || typed || bothTerminals;
  // Each role loads only its own modules (the launcher starts over ssh for
  // every session: what it does not load, it does not pay for).
  const { runClient } = await import("../client/client.ts");
  return await runClient({
    destination,
    ssh: (values.ssh as string | undefined) ?? "ssh",
    terminalPath: (values["terminal-path"] as string | undefined) ?? "et",
    mode: values.list
      ? { kind: "list" }
      : values.attach
      ? { kind: "attach", target: attachTarget }
      : {
        kind: "new",
        command: typed ? undefined : remoteCommand,
        typeCommand: typed ? remoteCommand : undefined,
        pty: Boolean(pty),
        killOthers: Boolean(values["kill-other-sessions"]),
        noTerminal: forwarding.noTerminal,
        resume,
      },
    connectTimeoutMs,
    sessionTimeoutMs,
    maxBacklogBytes: Math.min(maxBacklogBytes, MAX_BACKLOG_CAP_BYTES),
    escapeChar,
    predict,
    daemon: values["no-daemon"]
      ? "never"
      : values["daemon-only"]
      ? "only"
      : "auto",
    portRange,
    verbosity,
    overSsh: Boolean(values["over-ssh"]),
    reuse: !values["no-reuse"],
    ship: {
      version: VERSION,
      installRemote: Boolean(values["install-remote"]),
      binariesDir: values.binaries as string | undefined,
    },
    sshOptions,
    silent: Boolean(values.silent),
    connection: keepalive,
    tunnels: forwarding.tunnels,
    agentSocket: forwarding.agentSocket,
    jumpHosts,
    jumpPort,
  });
}

/** `et server`'s options; hints read this table as the client's do. */
export const SERVER_OPTIONS: OptionTable = {
  port: { type: "string", short: "p" },
  bind: { type: "string", multiple: true },
  router: { type: "string" },
  verbose: { type: "boolean", short: "v" },
  help: { type: "boolean", short: "h" },
};

async function server(args: string[]): Promise<number> {
  const { values, positionals } = parse(
    args,
    SERVER_OPTIONS,
    "et server --help",
  );
  if (values.help) {
    console.log(SERVER_HELP);
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument '${positionals[0]}'`);
  }
  const port = values.port === undefined
    ? DEFAULT_SERVER_PORT
    : usage(() => parsePort(values.port as string, true));
  configureLog({ level: values.verbose ? "debug" : "info" });
  const routerPath = (values.router as string | undefined) ??
    routerPathFromEnv();
  const { startDaemon } = await import("../daemon/daemon.ts");
  const daemon = await startDaemon({
    port,
    hostname: values.bind as string[] | undefined,
    routerPath,
  });
  console.error(
    `et server: listening on port ${daemon.port} (${
      daemon.addresses.join(", ")
    }), router ${routerPath}`,
  );
  const stop = async () => {
    await daemon.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await new Promise(() => {}); // serve until a signal
  return 0;
}

async function terminal(args: string[]): Promise<number> {
  let role = internalRole(args);
  if (role === null) {
    const { values, positionals } = parse(args, {
      host: { type: "boolean" },
      relay: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    }, "et terminal --help");
    if (values.help) {
      console.log(TERMINAL_HELP);
      return 0;
    }
    if (positionals.length > 0) {
      throw new UsageError(`unexpected argument '${positionals[0]}'`);
    }
    role = values.host ? "--host" : values.relay ? "--relay" : "";
  }
  try {
    return await runTerminalRole(role);
  } catch (error) {
    if (error instanceof TerminalEnvError) throw new UsageError(error.message);
    throw error;
  }
}

/** `et relay ID`: run by the client's ssh (`--over-ssh`); copies bytes. */
async function relay(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(RELAY_HELP);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "relay needs a session id (see et relay --help)"
        : `unexpected argument '${positionals[1]}'`,
    );
  }
  configureLog({ level: "silent" });
  const { runRelay } = await import("../terminal/relay.ts");
  return await runRelay(positionals[0]);
}

/**
 * The one line `et` prints, exiting 1, when the role named by `role` (the
 * first word: `server`, `terminal`, else the client) cannot run on `os`;
 * null when it can. The daemon and the terminal role need pseudo-terminals,
 * Unix sockets and descriptor passing; on Windows only the client runs.
 *
 * @example
 * ```ts
 * roleRefusal("server", "windows");
 * // "et server runs on Linux and macOS; on Windows only the client runs"
 * ```
 */
export function roleRefusal(
  role: string | undefined,
  os: typeof Deno.build.os,
): string | null {
  const serverRoles = ["server", "terminal", "relay"];
  if (os !== "windows" || !serverRoles.includes(role ?? "")) {
    return null;
  }
  return `et ${role} runs on Linux and macOS; on Windows only the client runs`;
}

/** Runs `et` with `args`; resolves with the process exit code. Never throws. */
export async function main(args: string[]): Promise<number> {
  const refusal = roleRefusal(args[0], Deno.build.os);
  if (refusal !== null) {
    console.error(refusal);
    return 1;
  }
  try {
    if (args[0] === "server") return await server(args.slice(1));
    if (args[0] === "terminal") return await terminal(args.slice(1));
    if (args[0] === "relay") return await relay(args.slice(1));
    return await client(args);
  } catch (error) {
    console.error(`et: ${errorMessage(error)}`);
    return error instanceof UsageError ? 2 : 1;
  }
}
