/**
 * `et relay <session-id>`: what a client's ssh runs on the remote when the
 * session is carried over ssh (`--over-ssh`, or when no TCP port of the
 * host is reachable). It asks the session process, over its owner-only
 * control socket, to take the connection as a client's; prints the
 * {@link RELAY_READY_MARKER} line; then copies bytes both ways between its
 * stdio (ssh's channel) and that socket until either side closes, and
 * exits. It holds no key and reads nothing it copies: the session runs
 * the usual handshake and sealing with the client through it. Works with
 * or without a daemon, and needs no TCP listener.
 *
 * @module
 */

import { withDeadline } from "../deadline.ts";
import { errorMessage } from "../log.ts";
import {
  encodeRefusal,
  privateRuntimeDir,
  RELAY_READY_MARKER,
  RELAY_SESSION_ID,
} from "../session/mod.ts";
import { controlSocketPath } from "./control_socket.ts";
import { StdOutput } from "../platform/std_output.ts";

const encoder = new TextEncoder();

/** Longest wait for the session's answer to the relay request. */
const ANSWER_TIMEOUT_MS = 5000;

/** Size of each copy's buffer: a few sealed frames' worth. */
const COPY_BUFFER_BYTES = 64 * 1024;

/** A readable and writable end, as both stdio and a socket are. */
interface Reader {
  read(buffer: Uint8Array): Promise<number | null>;
}
interface Writer {
  write(data: Uint8Array): Promise<number>;
}

/**
 * Runs the relay for session `idHex` (32 hex digits). Returns the exit
 * code: 0 once either side closed after joining; 1 with a refusal line on
 * stdout (the client shows it) when the session could not be joined.
 */
export async function runRelay(idHex: string): Promise<number> {
  const refuse = (message: string) => {
    writeLineSync(encodeRefusal(message));
    return 1;
  };
  if (!RELAY_SESSION_ID.test(idHex)) {
    return refuse(`et relay: not a session id: '${idHex.slice(0, 40)}'`);
  }
  let conn: Deno.UnixConn;
  try {
    const path = controlSocketPath(await privateRuntimeDir(), idHex);
    conn = await Deno.connect({ transport: "unix", path });
  } catch (error) {
    return refuse(
      error instanceof Deno.errors.NotFound ||
        error instanceof Deno.errors.ConnectionRefused
        ? `session ${idHex.slice(0, 8)} is not running on this host`
        : `et relay: ${errorMessage(error)}`,
    );
  }
  try {
    await writeAll(conn, encoder.encode(`{"op":"relay"}\n`));
    const answer = await withDeadline(
      readAnswerLine(conn),
      ANSWER_TIMEOUT_MS,
      "the session did not answer",
      () => conn.close(),
    );
    if (!JSON.parse(answer)?.ok) {
      return refuse(`session ${idHex.slice(0, 8)} refused the relay`);
    }
  } catch (error) {
    try {
      conn.close();
    } catch { /* closed */ }
    return refuse(`et relay: ${errorMessage(error)}`);
  }
  writeLineSync(RELAY_READY_MARKER);
  // Whichever direction ends first ends the relay: ssh gone (stdin EOF) or
  // the session dropped the connection (socket EOF).
  await Promise.race([
    copy(Deno.stdin, conn),
    // Not Deno.stdout: its buffer can write a frame's bytes twice when
    // stdout is non-blocking (platform/std_output.ts).
    copy(conn, StdOutput.open(1)),
  ]);
  try {
    conn.close();
  } catch { /* closed */ }
  return 0;
}

/**
 * Reads the session's one-line answer a byte at a time, so that no byte
 * after it (none is sent before the client's HELLO anyway) is taken from
 * the stream the copy loop owns.
 */
async function readAnswerLine(conn: Deno.Conn): Promise<string> {
  const bytes: number[] = [];
  const one = new Uint8Array(1);
  while (bytes.length < 4096) {
    const n = await conn.read(one);
    if (n === null) throw new Error("the session closed the connection");
    if (one[0] === 0x0a) return new TextDecoder().decode(new Uint8Array(bytes));
    bytes.push(one[0]);
  }
  throw new Error("the session's answer is too long");
}

/** Copies until end of stream or an error (a closed side); never throws. */
async function copy(from: Reader, to: Writer): Promise<void> {
  const buffer = new Uint8Array(COPY_BUFFER_BYTES);
  try {
    for (let n; (n = await from.read(buffer)) !== null;) {
      await writeAll(to, buffer.subarray(0, n));
    }
  } catch {
    // a side closed: the relay is over
  }
}

async function writeAll(to: Writer, data: Uint8Array) {
  for (let at = 0; at < data.length;) at += await to.write(data.subarray(at));
}

/**
 * Writes one line to stdout synchronously (before the copy starts), on a
 * fresh line: a login script may have left one unfinished.
 */
function writeLineSync(line: string) {
  const bytes = encoder.encode(`\n${line}\n`);
  for (let at = 0; at < bytes.length;) {
    at += Deno.stdout.writeSync(bytes.subarray(at));
  }
}
