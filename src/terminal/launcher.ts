/**
 * `et terminal`, the launcher: what the client runs over ssh, as the user.
 * It reads the one bootstrap line from stdin and does one of three things,
 * then prints its ready line (the marker and a JSON report) and exits so
 * that ssh ends while the session lives on:
 *
 * - `new`: hands the line to the user's host process over its owner-only
 *   socket, and waits until clients can reach the new session (registered
 *   with the daemon, or served on the host's own port in no-root mode);
 *   with `killOthers`, ends this user's other sessions first. With no host
 *   running, the launcher becomes the host itself when the client ends its
 *   ssh (`endsSsh`): it prints the ready line, lets go of ssh's pipes and
 *   stays; otherwise it starts `et terminal --host` detached from ssh.
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

import { errorMessage, logger } from "../log.ts";
import { detachStandardStreams } from "../platform/libc.ts";
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
import type { OpenedHost } from "./user_host.ts";

const log = logger("launcher");

/** The session process refused the client: its line is the client's. */
class RefusedError extends Error {}

/** Options of the launcher. */
export interface LauncherOptions {
  /** The daemon's router socket (names the user's host too). */
  routerPath: string;
  /** How long a host this launcher becomes lingers after its last session. */
  lingerMs?: number;
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
      printAnswer(encodeRefusal(mismatch));
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
        // With no host running, this process becomes it when it may stay
        // on (no second Deno start: ~30 ms of a cold start); else a host's
        // start begins now. Either beside the count of the other sessions.
        const hostUp = startHostIfNone(
          dir,
          options.routerPath,
          mayStayOn(request.endsSsh) ? () => becomeHost(options) : undefined,
        );
        let others = await findSessions(dir);
        if (request.killOthers) {
          await Promise.allSettled(
            others.map((s) => controlRequest(s.controlPath, { op: "end" })),
          );
          others = [];
        }
        const detached = others.filter((s) =>
          s.info.state === "detached"
        ).length;
        const ownHost = await hostUp;
        if (ownHost !== null) return await hostFirst(ownHost, line, detached);
        const started = await startSession(dir, options.routerPath, line);
        report = { ...started, detached };
        break;
      }
      case "jump":
        report = { ...await startRelayProcess(line), detached: 0 };
        break;
    }
  } catch (error) {
    if (error instanceof RefusedError) {
      printAnswer(encodeRefusal(error.message));
    } else {
      console.error(`et terminal: ${errorMessage(error)}`);
    }
    return 1;
  }
  printAnswer(encodeReady(report));
  return 0;
}

/**
 * Whether this launcher may stay on as the user's host: the client ends
 * its ssh itself (else ssh would wait for our exit), on Linux (where the
 * standard streams can be pointed at /dev/null), and not on a terminal
 * (an ssh config's `RequestTTY force`: its hangup, once ssh ends, would
 * end the host with all its sessions).
 */
function mayStayOn(endsSsh: boolean | undefined): boolean {
  return endsSsh === true && Deno.build.os === "linux" &&
    !Deno.stdin.isTerminal();
}

/** This process as the user's host (its modules loaded now). */
async function becomeHost(options: LauncherOptions): Promise<OpenedHost> {
  const { openHost } = await import("./user_host.ts");
  return await openHost(options);
}

/**
 * The launcher became the user's host: starts the session of bootstrap
 * `line` in this process, prints the ready line, lets go of ssh's pipes
 * and serves as the host until it is left without a session; resolves
 * with the exit code. A failed first session with nothing else hosted
 * closes the host and throws, as any launcher fails; with another session
 * hosted meanwhile (a launcher that found our socket) the host stays, and
 * the failure goes out as a refusal line: no exit status will follow.
 */
async function hostFirst(
  host: OpenedHost,
  line: string,
  detached: number,
): Promise<number> {
  let answer: string;
  try {
    answer = encodeReady({
      ...readyOrThrow(await host.answerNew(line, loginEnvironment())),
      detached,
    });
  } catch (error) {
    if (host.closeIfIdle("its first session did not start")) {
      await host.finished;
      throw error;
    }
    answer = encodeRefusal(errorMessage(error));
  }
  printAnswer(answer);
  try {
    detachStandardStreams();
  } catch (error) {
    // The sessions matter more than ssh's pipes: carry on with them held.
    log.warn(`kept ssh's pipes: ${errorMessage(error)}`);
  }
  return await host.finished;
}

/**
 * Prints the launcher's answer (a ready or refusal line) for the client,
 * on a fresh line: a login script may have left a partial one.
 */
function printAnswer(line: string): void {
  console.log(`\n${line}`);
}

/** The login environment ssh set up: the session's program starts in it. */
function loginEnvironment(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of [...LOGIN_ENV_NAMES, "SSH_CONNECTION"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) env[name] = value;
  }
  return env;
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
  const answer = await requestFromHost(dir, routerPath, {
    op: "new",
    bootstrap: line,
    env: loginEnvironment(),
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
