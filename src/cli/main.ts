/**
 * Command line entry: parses arguments and dispatches to the client, the
 * daemon or the terminal role. Nothing else lives here.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { runClient } from "../client/mod.ts";
import { parseDestination, parsePort } from "../client/mod.ts";
import { configureLog, errorMessage, fileSink, type LogLevel } from "../log.ts";
import { startDaemon } from "../daemon/mod.ts";
import { launchTerminal, serveTerminal } from "../terminal/mod.ts";
import {
  DEFAULT_SERVER_PORT,
  privateRuntimeDir,
  routerPathFromEnv,
} from "../session/mod.ts";
import { CLIENT_HELP, SERVER_HELP, TERMINAL_HELP, VERSION } from "./help.ts";

/** Bad command line: one line on stderr, exit 2. */
class UsageError extends Error {}

type OptionSpec = NonNullable<
  NonNullable<Parameters<typeof parseArgs>[0]>["options"]
>;

function parse(args: string[], options: OptionSpec) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (error) {
    const message = errorMessage(error)
      .split("\n")[0]
      .replace(
        /^Unknown option '([^']*)'.*$/,
        "unknown option '$1' (see et --help)",
      );
    throw new UsageError(message);
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
  const state = Deno.env.get("XDG_STATE_HOME");
  if (state) {
    await Deno.mkdir(`${state}/et`, { recursive: true, mode: 0o700 });
    return `${state}/et/client.log`;
  }
  return `${await privateRuntimeDir()}/client.log`;
}

async function client(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    port: { type: "string", short: "p" },
    command: { type: "string", short: "c" },
    noexit: { type: "boolean", short: "e" },
    ssh: { type: "string" },
    "terminal-path": { type: "string" },
    verbose: { type: "boolean", short: "v", multiple: true },
    "log-file": { type: "string" },
    help: { type: "boolean", short: "h" },
    version: { type: "boolean" },
  });
  if (values.help) {
    console.log(CLIENT_HELP);
    return 0;
  }
  if (values.version) {
    console.log(`et ${VERSION}`);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? "missing destination [user@]host[:port]"
        : `unexpected argument '${positionals[1]}'`,
    );
  }
  const destination = usage(() => parseDestination(positionals[0]));
  if (values.port !== undefined) {
    destination.port = usage(() => parsePort(values.port as string));
  }
  if (values.noexit && values.command === undefined) {
    throw new UsageError("-e/--noexit needs -c/--command");
  }
  const verbosity = (values.verbose as boolean[] | undefined)?.length ?? 0;
  const level: LogLevel = verbosity >= 2
    ? "debug"
    : verbosity === 1
    ? "info"
    : "warn";
  configureLog({
    level,
    sink: fileSink(
      (values["log-file"] as string | undefined) ?? await defaultClientLog(),
    ),
  });
  return await runClient({
    destination,
    ssh: (values.ssh as string | undefined) ?? "ssh",
    terminalPath: (values["terminal-path"] as string | undefined) ?? "et",
    command: values.command as string | undefined,
    noExit: Boolean(values.noexit),
  });
}

async function server(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, {
    port: { type: "string", short: "p" },
    bind: { type: "string" },
    router: { type: "string" },
    verbose: { type: "boolean", short: "v" },
    help: { type: "boolean", short: "h" },
  });
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
  const daemon = await startDaemon({
    port,
    hostname: values.bind as string | undefined,
    routerPath,
  });
  console.error(
    `et server: listening on port ${daemon.port}, router ${routerPath}`,
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
  const { values, positionals } = parse(args, {
    serve: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(TERMINAL_HELP);
    return 0;
  }
  if (positionals.length > 0) {
    throw new UsageError(`unexpected argument '${positionals[0]}'`);
  }
  if (values.serve) {
    // The router comes from the environment only: the launcher and the
    // session process it starts must agree, and ssh carries no flags here.
    return await serveTerminal({ routerPath: routerPathFromEnv() });
  }
  configureLog({ level: "silent" });
  return await launchTerminal();
}

/** Runs `et` with `args`; resolves with the process exit code. Never throws. */
export async function main(args: string[]): Promise<number> {
  try {
    if (args[0] === "server") return await server(args.slice(1));
    if (args[0] === "terminal") return await terminal(args.slice(1));
    return await client(args);
  } catch (error) {
    console.error(`et: ${errorMessage(error)}`);
    return error instanceof UsageError ? 2 : 1;
  }
}
