/**
 * `et terminal`, the launcher: what the client runs over ssh, as the user.
 * It reads the one bootstrap line from stdin and does one of three things,
 * then prints its ready line (the marker and a JSON report) and exits so
 * that ssh ends while the session lives on:
 *
 * - `new`: hands the line to the user's host process (`et terminal
 *   --host`, started detached from ssh if none runs) over its owner-only
 *   socket, and waits until clients can reach the new session (registered
 *   with the daemon, or served on the host's own port in no-root mode);
 *   with `killOthers`, ends this user's other sessions first.
 * - `attach`: finds the session and hands it the new client's passkey
 *   over its owner-only control socket.
 * - `list`: reports this user's sessions.
 * - `jump`: starts a jump relay (`et terminal --relay`, see jump_relay.ts)
 *   the same way as a session process, and reports its port in no-root
 *   mode.
 *
 * For a session that serves itself (no-root mode) the ready report of
 * `new` and `attach` carries its port, which the client dials instead of
 * the daemon's.
 *
 * A client speaking another protocol version is refused before anything
 * else with a refusal line on stdout instead (the client shows it as its
 * one error line); so is a new session that no client could reach (with
 * `--daemon-only` no daemon took it, or no port of the range was free).
 * On any other failure it prints one line on stderr (ssh carries it back).
 *
 * @module
 */

import { errorMessage } from "../log.ts";
import {
  bootstrapProtocol,
  decodeBootstrap,
  decodeReady,
  decodeRefusal,
  encodeReady,
  encodeRefusal,
  protocolMismatch,
  type ReadyReport,
} from "../session/terminal_protocol.ts";
import { privateRuntimeDir } from "../session/runtime_dir.ts";
import { PROTOCOL_VERSION } from "../transport/wire.ts";
import {
  chooseSession,
  controlRequest,
  findSessions,
} from "./control_socket.ts";
import { requestFromHost, startHostIfNone } from "./host_socket.ts";
import {
  LOGIN_ENV_NAMES,
  readStdinLine,
  spawnDetachedRole,
} from "./local_io.ts";

/** The session process refused the client: its line is the client's. */
class RefusedError extends Error {}

/** Options of the launcher. */
export interface LauncherOptions {
  /** The daemon's router socket (names the user's host too). */
  routerPath: string;
}

/**
 * The launcher. Returns the process exit code; on failure prints one line
 * to stderr.
 */
export async function launchTerminal(
  options: LauncherOptions,
): Promise<number> {
  let report: ReadyReport;
  try {
    const line = await readStdinLine(30_000);
    const mismatch = protocolMismatch(
      bootstrapProtocol(line),
      PROTOCOL_VERSION,
    );
    if (mismatch) {
      console.log(`\n${encodeRefusal(mismatch)}`);
      return 1;
    }
    const request = decodeBootstrap(line); // refuse garbage where it is seen
    const dir = await privateRuntimeDir();
    switch (request.op) {
      case "list":
        report = { sessions: (await findSessions(dir)).map((s) => s.info) };
        break;
      case "attach": {
        const session = chooseSession(await findSessions(dir), request.target);
        const answer = await controlRequest(session.controlPath, {
          op: "attach",
          passkey: [...request.passkey].map((b) =>
            b.toString(16).padStart(2, "0")
          ).join(""),
          cols: request.cols,
          rows: request.rows,
          keepaliveMs: request.keepaliveMs,
        });
        if (answer.ok !== true) {
          throw new Error(`cannot attach: ${answer.error ?? "refused"}`);
        }
        // A session that serves itself is dialed on its own port.
        report = { id: session.info.id, detached: 0, port: session.info.port };
        break;
      }
      case "new": {
        // With no host running, its start (a Deno start, ~40 ms) begins
        // now, beside the count of the other sessions.
        const hostUp = startHostIfNone(dir, options.routerPath);
        let others = await findSessions(dir);
        if (request.killOthers) {
          await Promise.allSettled(
            others.map((s) => controlRequest(s.controlPath, { op: "end" })),
          );
          others = [];
        }
        await hostUp;
        const started = await startSession(dir, options.routerPath, line);
        report = {
          ...started,
          detached: others.filter((s) => s.info.state === "detached").length,
        };
        break;
      }
      case "jump":
        report = { ...await startRelayProcess(line), detached: 0 };
        break;
    }
  } catch (error) {
    if (error instanceof RefusedError) {
      console.log(`\n${encodeRefusal(error.message)}`);
    } else {
      console.error(`et terminal: ${errorMessage(error)}`);
    }
    return 1;
  }
  // A fresh line first: a login script may have left a partial line.
  console.log(`\n${encodeReady(report)}`);
  return 0;
}

/**
 * Has the user's host start the session of bootstrap `line` (starting the
 * host if none runs). Resolves with the session id and, in no-root mode,
 * the host's port it is served on.
 */
async function startSession(
  dir: string,
  routerPath: string,
  line: string,
): Promise<{ id: string; port?: number }> {
  // The login environment ssh set up: the session's program starts in it.
  const env: Record<string, string> = {};
  for (const name of [...LOGIN_ENV_NAMES, "SSH_CONNECTION"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  const answer = await requestFromHost(dir, routerPath, {
    op: "new",
    bootstrap: line,
    env,
  });
  return readyOrThrow(answer);
}

/**
 * Starts a jump relay (`et terminal --relay`) detached from ssh with
 * `line` on its stdin, and waits for its ready line. Resolves with the
 * relay's session id and, without a daemon there, its port.
 */
async function startRelayProcess(
  line: string,
): Promise<{ id: string; port?: number }> {
  const answer = await spawnDetachedRole(
    "--relay",
    line,
    RELAY_START_TIMEOUT_MS,
    "the jump relay did not start in time",
  );
  return readyOrThrow(answer ?? "");
}

/** How long a jump relay may take to say it is ready. */
const RELAY_START_TIMEOUT_MS = 15_000;

/** The id (and port) of a ready line; a refusal or anything else throws. */
function readyOrThrow(answer: string): { id: string; port?: number } {
  const refusal = decodeRefusal(answer);
  if (refusal !== null) throw new RefusedError(refusal);
  const ready = decodeReady(answer);
  if (ready && "id" in ready) {
    return ready.port === undefined
      ? { id: ready.id }
      : { id: ready.id, port: ready.port };
  }
  throw new Error(
    answer.replace(/^error: /, "") || "the session failed to start",
  );
}
