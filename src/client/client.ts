/**
 * The `et` client: bootstrap the session over ssh, connect to the daemon,
 * and join the local terminal to the remote one until the remote shell
 * exits — through every disconnect in between.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";
import {
  CONTROL_CHANNEL,
  ControlDecoder,
  DEFAULT_SERVER_PORT,
  encodeBootstrap,
  encodeControl,
  TERMINAL_CHANNEL,
} from "../session/mod.ts";
import {
  clientHandshake,
  EternalConnection,
  type EternalConnectionOptions,
  generateSessionSecret,
  keepConnected,
} from "../transport/mod.ts";
import { type Destination, sshTarget } from "./destination.ts";
import { LocalTerminal, notice } from "./local_terminal.ts";
import {
  resolveWithSsh,
  splitCommandLine,
  startRemoteTerminal,
} from "./ssh.ts";

const log = logger("client");

/** An outage is announced on stderr once it has lasted this long. */
const OUTAGE_NOTICE_DELAY_MS = 1000;

/** Everything the client needs to start a session. */
export interface ClientOptions {
  destination: Destination;
  /** The ssh command line (`ssh` by default, may carry options). */
  ssh: string;
  /** Command that runs et on the remote. */
  terminalPath: string;
  /** Typed into the remote shell once connected. */
  command?: string;
  /** With `command`: keep the shell open after it. */
  noExit?: boolean;
  /** Transport tuning. */
  connection?: EternalConnectionOptions;
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

/**
 * Runs a whole session; resolves with the exit code for `et` (the remote
 * shell's status). Throws a one-line Error when the session cannot start.
 */
export async function runClient(options: ClientOptions): Promise<number> {
  const ssh = splitCommandLine(options.ssh);
  if (ssh.length === 0) throw new Error("--ssh is empty");
  const target = sshTarget(options.destination);
  const port = options.destination.port ?? DEFAULT_SERVER_PORT;
  const resolved = await resolveWithSsh(ssh, target);
  log.info(`${target} resolves to ${resolved.hostname}, et port ${port}`);

  const secret = generateSessionSecret();
  await startRemoteTerminal({
    ssh,
    target,
    terminalPath: options.terminalPath,
    bootstrapLine: encodeBootstrap({
      secret,
      term: Deno.env.get("TERM") || "xterm-256color",
    }),
  });

  const connection = await EternalConnection.create(
    secret,
    "client",
    options.connection,
  );
  const dial = () => dialOnce(resolved.hostname, port);
  try {
    await clientHandshake(connection, await dial());
  } catch (error) {
    connection.fail(error as Error);
    throw new Error(
      `cannot connect to the et server at ${resolved.hostname}:${port}: ${
        errorMessage(error)
      }`,
    );
  }
  return await joinTerminals(connection, options, dial);
}

async function joinTerminals(
  connection: EternalConnection,
  options: ClientOptions,
  dial: () => Promise<Deno.TcpConn>,
): Promise<number> {
  const local = new LocalTerminal();
  const terminal = connection.channel(TERMINAL_CHANNEL);
  const control = connection.channel(CONTROL_CHANNEL);
  let exitCode: number | null = null;

  const restoreAndExit = (code: number) => {
    local.restore();
    Deno.exit(code);
  };
  for (const signal of ["SIGTERM", "SIGHUP"] as const) {
    Deno.addSignalListener(
      signal,
      () => restoreAndExit(128 + (signal === "SIGTERM" ? 15 : 1)),
    );
  }

  local.enterRaw();
  try {
    const sendSize = () =>
      control.write(encodeControl({ type: "resize", ...local.size() })).catch(
        () => {},
      );
    // The notices scrolled whatever was on screen: a size change one row
    // down and back makes a full-screen program (vi, top) repaint itself.
    const redrawRemote = () => {
      const { cols, rows } = local.size();
      if (rows < 2) return;
      control.write(encodeControl({ type: "resize", cols, rows: rows - 1 }))
        .then(() => sendSize()).catch(() => {});
    };

    // Announce only outages that last: a cut healed in milliseconds is
    // invisible to the user and should stay so (no lines on the screen).
    let announced = false;
    let pending: ReturnType<typeof setTimeout> | undefined;
    connection.onEvent((event) => {
      if (event.type === "disconnected") {
        log.info(`disconnected: ${event.reason}`);
        if (pending === undefined && !announced && !connection.isEnding) {
          pending = setTimeout(() => {
            pending = undefined;
            if (connection.connected || connection.isEnding) return;
            announced = true;
            notice("connection lost, reconnecting…", local.isTty);
          }, OUTAGE_NOTICE_DELAY_MS);
        }
      } else {
        clearTimeout(pending);
        pending = undefined;
        if (announced) {
          notice("reconnected", local.isTty);
          redrawRemote();
        }
        announced = false;
      }
    });
    const reconnecting = keepConnected(connection, {
      dial,
      onAttemptFailed: (error) =>
        log.info(`reconnect failed: ${errorMessage(error)}`),
    });

    sendSize();
    local.onResize(sendSize);

    if (options.command !== undefined) {
      const line = options.noExit
        ? `${options.command}\n`
        : `${options.command}; exit\n`;
      terminal.write(new TextEncoder().encode(line)).catch(() => {});
    }

    // Keystrokes: read without waiting for the network; the channel buffers
    // them (bounded) while disconnected and delivers them on resume.
    (async () => {
      const buffer = new Uint8Array(16 * 1024);
      try {
        for (let n; (n = await local.read(buffer)) !== null;) {
          await terminal.write(buffer.slice(0, n));
        }
      } catch {
        // session over
      }
    })();

    (async () => {
      const decoder = new ControlDecoder();
      for (let data; (data = await control.read()) !== null;) {
        for (const message of decoder.push(data)) {
          if (message.type === "exit") exitCode = message.code;
        }
      }
    })();

    for (let data; (data = await terminal.read()) !== null;) {
      await Deno.stdout.write(data);
    }
    const end = await connection.closed;
    clearTimeout(pending);
    await reconnecting;
    local.restore();
    if (exitCode !== null) return exitCode;
    if (end.error) throw new Error(`session ended: ${end.reason}`);
    return 0;
  } finally {
    local.restore();
  }
}
