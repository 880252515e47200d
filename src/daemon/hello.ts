/**
 * The one frame the daemon reads from a client: its HELLO, into a buffer
 * of exactly a HELLO's size. A length prefix announcing anything else is
 * refused as soon as its four bytes are in, so a peer announcing a large
 * frame makes the daemon allocate nothing and wait for nothing. Nothing
 * after the HELLO is read: the rest of the stream stays in the socket for
 * the terminal it is handed to.
 *
 * @module
 */

import { reactor } from "../platform/reactor.ts";
import { receive, WOULD_BLOCK } from "../platform/socket.ts";

/**
 * Bytes of a HELLO body: type, version, session id (16), client nonce
 * (32); docs/PROTOCOL.md section 4. Checked against the transport's own
 * encoding in tests/daemon/hello_test.ts.
 */
export const HELLO_BODY_BYTES = 2 + 16 + 32;

/** Bytes of a HELLO frame: the length prefix and the body. */
export const HELLO_FRAME_BYTES = 4 + HELLO_BODY_BYTES;

const HELLO_TYPE = 0x01;

/** What came of waiting for a connection's hello. */
export type HelloOutcome =
  | {
    kind: "hello";
    /** The whole frame, length prefix included, as the client sent it. */
    frame: Uint8Array;
    /** The session id, lowercase hex. */
    sessionId: string;
  }
  | { kind: "malformed"; reason: string }
  | { kind: "closed" }
  | { kind: "timeout" }
  | { kind: "aborted" };

/**
 * Reads a HELLO frame from non-blocking socket `fd`, giving up after
 * `timeoutMs` or when `signal` aborts. Never throws; never reads a byte
 * past the frame.
 */
export async function readHelloFrame(
  fd: number,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<HelloOutcome> {
  const frame = new Uint8Array(HELLO_FRAME_BYTES);
  let filled = 0;
  const waiting = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    waiting.abort();
  }, timeoutMs);
  const onAbort = () => waiting.abort();
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    while (filled < HELLO_FRAME_BYTES) {
      let n;
      try {
        n = receive(fd, frame.subarray(filled));
      } catch {
        return { kind: "closed" }; // reset
      }
      if (n === 0) {
        return filled === 0
          ? { kind: "closed" }
          : { kind: "malformed", reason: "closed inside its first frame" };
      }
      if (n === WOULD_BLOCK) {
        if (!(await reactor().readable(fd, waiting.signal))) {
          return timedOut ? { kind: "timeout" } : { kind: "aborted" };
        }
        continue;
      }
      const before = filled;
      filled += n;
      if (before < 4 && filled >= 4) {
        const length = new DataView(frame.buffer).getUint32(0);
        if (length !== HELLO_BODY_BYTES) {
          return {
            kind: "malformed",
            reason: `first frame announces ${length} bytes, not a hello`,
          };
        }
      }
      if (before < 5 && filled >= 5 && frame[4] !== HELLO_TYPE) {
        return { kind: "malformed", reason: "first frame is not a hello" };
      }
    }
    let sessionId = "";
    for (const byte of frame.subarray(6, 22)) {
      sessionId += byte.toString(16).padStart(2, "0");
    }
    return { kind: "hello", frame, sessionId };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener("abort", onAbort);
  }
}
