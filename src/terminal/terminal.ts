/**
 * `et terminal` (ET's etterminal), in two steps:
 *
 * 1. The launcher, started by the client over ssh as the user: reads the
 *    bootstrap line (session secret, TERM) from stdin, starts the session
 *    process detached from ssh, hands it the line over a private pipe, waits
 *    until it is registered, prints the ready marker and exits so ssh can
 *    finish while the session lives on.
 * 2. The session process (`et terminal --serve`): owns the pty and the
 *    login shell, listens on a private Unix socket for the daemon's relayed
 *    connections, and runs the server end of the eternal connection.
 *
 * @module
 */

import {
  configureLog,
  errorMessage,
  fileSink,
  logger,
  type LogLevel,
} from "../log.ts";
import { Pty } from "../pty/mod.ts";
import {
  type BootstrapRequest,
  CONTROL_CHANNEL,
  ControlDecoder,
  decodeBootstrap,
  encodeControl,
  privateRuntimeDir,
  READY_MARKER,
  TERMINAL_CHANNEL,
} from "../session/mod.ts";
import {
  acceptEach,
  EternalConnection,
  type EternalConnectionOptions,
  serverHandshake,
  toHex,
} from "../transport/mod.ts";
import { loginAccount, readStdinLine, selfCommand } from "./local_io.ts";
import { registerSession } from "../session/mod.ts";

const log = logger("terminal");
const encoder = new TextEncoder();

/** Options of the terminal role. */
export interface TerminalOptions {
  /** The daemon's router socket. */
  routerPath: string;
  /** Transport tuning (tests shorten timers). */
  connection?: EternalConnectionOptions;
}

/**
 * The launcher step. Returns the process exit code; on failure prints one
 * line to stderr (which ssh carries back to the client's terminal).
 */
export async function launchTerminal(): Promise<number> {
  let line: string;
  try {
    line = await readStdinLine(30_000);
    decodeBootstrap(line); // refuse garbage here, where the user sees it
  } catch (error) {
    console.error(`et terminal: ${errorMessage(error)}`);
    return 2;
  }
  const [program, ...args] = selfCommand();
  const child = new Deno.Command(program, {
    args: [...args, "terminal", "--serve"],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
    detached: true,
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(encoder.encode(line + "\n"));
  await writer.close();
  const reader = child.stdout.getReader();
  let answer = "";
  const timer = setTimeout(() => reader.cancel().catch(() => {}), 20_000);
  try {
    while (!answer.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      answer += new TextDecoder().decode(value);
    }
  } finally {
    clearTimeout(timer);
  }
  reader.cancel().catch(() => {});
  child.unref();
  const first = answer.split("\n")[0];
  if (first === READY_MARKER) {
    // A fresh line first: a login script may have left a partial line.
    console.log(`\n${READY_MARKER}`);
    return 0;
  }
  console.error(
    `et terminal: ${
      first.replace(/^error: /, "") || "session process failed to start"
    }`,
  );
  return 1;
}

/** The session step: runs until the session ends. Returns an exit code. */
export async function serveTerminal(options: TerminalOptions): Promise<number> {
  let request: BootstrapRequest;
  let dir: string;
  try {
    request = decodeBootstrap(await readStdinLine(10_000));
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
  const socketPath = `${dir}/${
    toHex(crypto.getRandomValues(new Uint8Array(8)))
  }.sock`;
  let listener: Deno.UnixListener;
  let pty: Pty;
  let connection: EternalConnection;
  try {
    connection = await EternalConnection.create(
      request.secret,
      "server",
      options.connection,
    );
    listener = Deno.listen({ transport: "unix", path: socketPath });
    await Deno.chmod(socketPath, 0o600);
    pty = await startShell(request.term);
  } catch (error) {
    console.log(`error: ${errorMessage(error)}`);
    return 1;
  }
  let registration: Deno.Conn;
  try {
    registration = await registerSession(options.routerPath, idHex, socketPath);
  } catch (error) {
    console.log(`error: ${errorMessage(error)}`);
    pty.kill("SIGHUP");
    await pty.close();
    listener.close();
    await Deno.remove(socketPath).catch(() => {});
    return 1;
  }
  log.info(`session ${idHex.slice(0, 8)} ready, shell pid ${pty.pid}`);
  console.log(READY_MARKER);
  try {
    Deno.stdout.close();
  } catch { /* already closed */ }

  const stayRegistered = keepRegistered(
    registration,
    options.routerPath,
    idHex,
    socketPath,
    connection,
  );
  const accepting = acceptRelayed(listener, connection);
  const code = await runSession(connection, pty);
  listener.close();
  await Promise.allSettled([accepting, stayRegistered]);
  await Deno.remove(socketPath).catch(() => {});
  log.info(`session ${idHex.slice(0, 8)} over, shell exit ${code}`);
  return 0;
}

function logLevelFromEnv(value: string | undefined): LogLevel {
  const levels: LogLevel[] = ["debug", "info", "warn", "error", "silent"];
  return levels.find((level) => level === value) ?? "info";
}

async function startShell(term: string): Promise<Pty> {
  const account = await loginAccount();
  const env: Record<string, string> = {
    TERM: term,
    HOME: account.home,
    USER: account.user,
    LOGNAME: account.user,
    SHELL: account.shell,
    PATH: Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
  };
  for (const name of ["LANG", "LC_ALL", "LC_CTYPE", "TZ", "MAIL"]) {
    const value = Deno.env.get(name);
    if (value) env[name] = value;
  }
  return Pty.spawn({
    command: account.shell,
    args: ["-l"],
    env,
    cwd: account.home,
    cols: 80,
    rows: 24,
  });
}

/** Hands every relayed connection to the handshake. */
async function acceptRelayed(
  listener: Deno.UnixListener,
  connection: EternalConnection,
) {
  const ours = toHex(connection.sessionId);
  await acceptEach(listener, (conn) => {
    serverHandshake(
      conn,
      (id) => toHex(id) === ours ? connection : undefined,
      { peer: "relay" },
    );
  });
}

/**
 * Holds the daemon registration; if the daemon restarts, registers again
 * so the session stays reachable.
 */
async function keepRegistered(
  registration: Deno.Conn,
  routerPath: string,
  idHex: string,
  socketPath: string,
  connection: EternalConnection,
) {
  let current: Deno.Conn | null = registration;
  connection.closed.then(() => {
    try {
      current?.close();
    } catch { /* closed */ }
  });
  while (!connection.isClosed) {
    if (current) {
      const sink = new Uint8Array(64);
      try {
        while ((await current.read(sink)) !== null) { /* nothing expected */ }
      } catch { /* closed */ }
      current = null;
      if (connection.isClosed) return;
      log.warn("lost the daemon registration; registering again");
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    try {
      current = await registerSession(routerPath, idHex, socketPath);
      log.info("registered again with the daemon");
    } catch (error) {
      log.info(`register again failed: ${errorMessage(error)}`);
    }
  }
}

/** Moves bytes between pty and channels until the shell exits. */
async function runSession(
  connection: EternalConnection,
  pty: Pty,
): Promise<number> {
  const terminal = connection.channel(TERMINAL_CHANNEL);
  const control = connection.channel(CONTROL_CHANNEL);

  const output = (async () => {
    try {
      for (let chunk; (chunk = await pty.read()) !== null;) {
        await terminal.write(chunk);
      }
    } catch (error) {
      log.info(`output pump ended: ${errorMessage(error)}`);
    }
  })();
  (async () => {
    try {
      for (let data; (data = await terminal.read()) !== null;) {
        await pty.write(data);
      }
    } catch (error) {
      log.info(`input pump ended: ${errorMessage(error)}`);
    }
  })();
  (async () => {
    const decoder = new ControlDecoder();
    for (let data; (data = await control.read()) !== null;) {
      for (const message of decoder.push(data)) {
        if (message.type === "resize") pty.resize(message.cols, message.rows);
      }
    }
  })();

  const status = await pty.exited;
  // Let the last output drain; a background job holding the tty open must
  // not keep the session alive after its shell is gone.
  await Promise.race([output, new Promise((r) => setTimeout(r, 500))]);
  await pty.close();
  try {
    await control.write(encodeControl({ type: "exit", code: status.code }));
    // Linger so a client that is away right now still gets the last output
    // and the exit status when it comes back.
    await connection.close("shell exited", 60 * 60 * 1000);
  } catch (error) {
    log.info(`session end: ${errorMessage(error)}`);
  }
  return status.code;
}
