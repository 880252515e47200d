/**
 * Asking, without a key, whether a session still exists where a relay
 * sends its connections: a HELLO for its id, and the first frame back.
 * The server end answers a live session with a CHALLENGE, and an ended or
 * unknown one with REFUSE(1) (the daemon's plain one once the session
 * process is gone, or the terminal's signed one). The probe then closes:
 * the server end sees a client that left before its AUTH, which it drops
 * without a word. Only a hint (an unsigned answer could be forged on the
 * path): a relay may end on it, never a session.
 *
 * @module
 */

import { withDeadline } from "../deadline.ts";
import { encodeFrame, FrameReader } from "./frame.ts";
import { type BytePipe, closeQuietly, writeAll } from "./pipe.ts";
import {
  encodeHello,
  FrameType,
  HANDSHAKE_NONCE_BYTES,
  PROTOCOL_VERSION,
  RefuseCode,
} from "./wire.ts";

/**
 * What a probe learned: `"alive"` (a CHALLENGE), `"gone"` (REFUSE(1), or
 * the connection refused: nothing listens there any more), or
 * `"unknown"` (no answer in time, another refusal, an unreachable host).
 */
export type SessionProbeAnswer = "alive" | "gone" | "unknown";

/**
 * Probes session `sessionId` at what `dial` connects to; resolves within
 * about `timeoutMs`, never throws.
 *
 * @example
 * ```ts
 * const answer = await probeSession(
 *   () => Deno.connect({ hostname: "10.0.0.5", port: 2022 }),
 *   sessionId,
 * );
 * if (answer === "gone") console.log("the session ended");
 * ```
 */
export async function probeSession(
  dial: () => Promise<BytePipe>,
  sessionId: Uint8Array,
  timeoutMs = 5000,
): Promise<SessionProbeAnswer> {
  let pipe: BytePipe | undefined;
  try {
    return await withDeadline(
      (async () => {
        try {
          pipe = await dial();
        } catch (error) {
          return error instanceof Deno.errors.ConnectionRefused
            ? "gone"
            : "unknown";
        }
        await writeAll(
          pipe,
          encodeFrame(encodeHello({
            version: PROTOCOL_VERSION,
            sessionId,
            clientNonce: crypto.getRandomValues(
              new Uint8Array(HANDSHAKE_NONCE_BYTES),
            ),
          })),
        );
        const body = await new FrameReader(pipe).next();
        if (body?.[0] === FrameType.Challenge) return "alive";
        // The code byte's high bit only says that a MAC follows.
        if (
          body?.[0] === FrameType.Refuse &&
          (body[1] & 0x7f) === RefuseCode.UnknownSession
        ) return "gone";
        return "unknown";
      })(),
      timeoutMs,
      "no answer",
      () => pipe && closeQuietly(pipe),
    );
  } catch {
    return "unknown";
  } finally {
    if (pipe) closeQuietly(pipe);
  }
}
