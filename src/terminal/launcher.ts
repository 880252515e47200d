/**
 * `et terminal`, the launcher: what the client runs over ssh, as the user.
 * It reads the one bootstrap line from stdin and does one of three things,
 * then prints its ready line (the marker and a JSON report) and exits so
 * that ssh ends while the session lives on:
 *
 * - `new`: starts a session process (`et terminal --serve`) detached from
 *   ssh, hands it the line over a private pipe, waits until it is
 *   registered; with `killOthers`, ends this user's other sessions first.
 * - `attach`: finds the session and hands it the new client's passkey
 *   over its owner-only control socket.
 * - `list`: reports this user's sessions.
 *
 * A client speaking another protocol version is refused before anything
 * else with a refusal line on stdout instead (the client shows it as its
 * one error line). On any other failure it prints one line on stderr (ssh
 * carries it back).
 *
 * @module
 */

import { withDeadline } from "../deadline.ts";
import { errorMessage } from "../log.ts";
import {
  bootstrapProtocol,
  decodeBootstrap,
  encodeReady,
  encodeRefusal,
  LineReader,
  privateRuntimeDir,
  protocolMismatch,
  READY_MARKER,
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
        });
        if (answer.ok !== true) {
          throw new Error(`cannot attach: ${answer.error ?? "refused"}`);
        }
        report = { id: session.info.id, detached: 0 };
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
        const id = await startSessionProcess(line);
        report = {
          id,
          detached: others.filter((s) => s.info.state === "detached").length,
        };
        break;
      }
    }
  } catch (error) {
    console.error(`et terminal: ${errorMessage(error)}`);
    return 1;
  }
  // A fresh line first: a login script may have left a partial line.
  console.log(`\n${encodeReady(report)}`);
  return 0;
}

/**
 * Starts the session process detached from ssh with `line` on its stdin,
 * and waits for its ready line. Resolves with the session id.
 */
async function startSessionProcess(line: string): Promise<string> {
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
  const match = answer?.match(new RegExp(`^${READY_MARKER} ([0-9a-f]{32})$`));
  if (match) return match[1];
  throw new Error(
    answer?.replace(/^error: /, "") || "session process failed to start",
  );
}
