/**
 * `et terminal`, the launcher: what the client runs over ssh, as the user.
 * It reads the one bootstrap line from stdin and does one of three things,
 * then prints its ready line (the marker and a JSON report) and exits so
 * that ssh ends while the session lives on:
 *
 * - `new`: starts a session process (`et terminal --serve`) detached from
 *   ssh, hands it the line over a private pipe, waits until clients can
 *   reach it (registered with the daemon, or listening on its own port in
 *   no-root mode); with `killOthers`, ends this user's other sessions
 *   first.
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

import { withDeadline } from "../deadline.ts";
import { errorMessage } from "../log.ts";
import {
  bootstrapProtocol,
  decodeBootstrap,
  decodeReady,
  decodeRefusal,
  encodeReady,
  encodeRefusal,
  LineReader,
  privateRuntimeDir,
  protocolMismatch,
  type ReadyReport,
} from "../session/mod.ts";
import { PROTOCOL_VERSION } from "../transport/mod.ts";
import {
  chooseSession,
  controlRequest,
  findSessions,
} from "./control_socket.ts";
import { readStdinLine, selfCommand } from "./local_io.ts";

const encoder = new TextEncoder();

/** How long the session process may take to report ready. */
const START_TIMEOUT_MS = 20_000;

/** The session process refused the client: its line is the client's. */
class RefusedError extends Error {}

/**
 * The launcher. Returns the process exit code; on failure prints one line
 * to stderr.
 */
export async function launchTerminal(): Promise<number> {
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
        let others = await findSessions(dir);
        if (request.killOthers) {
          await Promise.allSettled(
            others.map((s) => controlRequest(s.controlPath, { op: "end" })),
          );
          others = [];
        }
        const started = await startSessionProcess(line);
        report = {
          ...started,
          detached: others.filter((s) => s.info.state === "detached").length,
        };
        break;
      }
      case "jump":
        report = { ...await startSessionProcess(line, "--relay"), detached: 0 };
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
 * Starts the session process (`role` `--serve`; a jump relay: `--relay`)
 * detached from ssh with `line` on its stdin, and waits for its ready line
 * (the launcher's own format). Resolves with the session id and, in
 * no-root mode, its port.
 */
async function startSessionProcess(
  line: string,
  role: "--serve" | "--relay" = "--serve",
): Promise<{ id: string; port?: number }> {
  const [program, ...args] = selfCommand();
  const child = new Deno.Command(program, {
    args: [...args, "terminal", role],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
    detached: true,
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(encoder.encode(line + "\n"));
  await writer.close();
  const reader = child.stdout.getReader();
  const source = {
    async read(buffer: Uint8Array) {
      const { value, done } = await reader.read();
      if (done || !value) return null;
      buffer.set(value.subarray(0, buffer.length));
      return Math.min(value.length, buffer.length);
    },
  };
  let answer: string | null = null;
  try {
    answer = await withDeadline(
      new LineReader(source, 4096).next(),
      START_TIMEOUT_MS,
      "the session process did not start in time",
      () => reader.cancel().catch(() => {}),
    );
  } finally {
    reader.cancel().catch(() => {});
    child.unref();
  }
  const refusal = answer === null ? null : decodeRefusal(answer);
  if (refusal !== null) throw new RefusedError(refusal);
  const ready = answer === null ? null : decodeReady(answer);
  if (ready && "id" in ready) {
    return ready.port === undefined
      ? { id: ready.id }
      : { id: ready.id, port: ready.port };
  }
  throw new Error(
    answer?.replace(/^error: /, "") || "session process failed to start",
  );
}
