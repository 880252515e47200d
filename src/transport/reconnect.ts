/**
 * The client's side of "never dies": keeps a session connected by dialing
 * again whenever its pipe drops — at once, then backing off up to a cap,
 * forever, until the session ends or the server refuses it for good.
 *
 * An attempt stuck on a silent path does not hold up the next one: a new
 * attempt starts on the backoff timer while older ones still wait (a few
 * at most), and the first to complete its handshake wins.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";
import type { EternalConnection } from "./connection.ts";
import { clientHandshake, HandshakeRefusedError } from "./handshake.ts";
import type { BytePipe } from "./pipe.ts";

const log = logger("reconnect");

/** Options of {@link keepConnected}. */
export interface KeepConnectedOptions {
  /** Opens a fresh pipe to the server (or relay). */
  dial: () => Promise<BytePipe>;
  /**
   * Longest wait between attempts. Short enough that a session resumes
   * well within a second of the path coming back.
   * @default {500}
   */
  maxBackoffMs?: number;
  /**
   * Attempts allowed in flight at once (attempts on a silent path wait
   * out the handshake timeout, so this covers timeout / backoff).
   * @default {12}
   */
  maxPendingAttempts?: number;
  /** Told about each failed attempt (for status lines and logs). */
  onAttemptFailed?: (error: Error) => void;
}

interface Attempt {
  abort: AbortController;
  proving: boolean;
}

/**
 * Dials with a time limit: a connect whose SYNs go unanswered can hang for
 * minutes, and attempts stuck there would hold every slot. A pipe that
 * arrives after the limit or after the attempt was abandoned is closed.
 */
function dialBounded(
  dial: () => Promise<BytePipe>,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<BytePipe> {
  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (error: Error | null, pipe?: BytePipe) => {
      if (done) {
        pipe?.close();
        return;
      }
      done = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      if (error) {
        pipe?.close();
        reject(error);
      } else resolve(pipe!);
    };
    const onAbort = () => finish(new Error("attempt abandoned"));
    const timer = setTimeout(
      () => finish(new Error(`connect timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    signal.addEventListener("abort", onAbort);
    dial().then(
      (pipe) => finish(null, pipe),
      (error) =>
        finish(error instanceof Error ? error : new Error(String(error))),
    );
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Runs until `connection` is closed: every time it has no pipe, dials and
 * handshakes until one is attached. A refusal from the server is final and
 * fails the session with that error.
 */
export async function keepConnected(
  connection: EternalConnection,
  options: KeepConnectedOptions,
): Promise<void> {
  const maxBackoff = options.maxBackoffMs ?? 500;
  const maxPending = options.maxPendingAttempts ?? 12;
  const pending = new Set<Attempt>();
  let delay = 0;
  let settled: () => void = () => {};

  const start = () => {
    const attempt: Attempt = {
      abort: new AbortController(),
      proving: false,
    };
    pending.add(attempt);
    (async () => {
      try {
        const pipe = await dialBounded(
          options.dial,
          connection.options.handshakeTimeoutMs,
          attempt.abort.signal,
        );
        await clientHandshake(
          connection,
          pipe,
          attempt.abort.signal,
          () => attempt.proving = true,
        );
      } catch (error) {
        if (attempt.abort.signal.aborted) return;
        if (error instanceof HandshakeRefusedError) {
          connection.fail(error);
          return;
        }
        log.info(`attempt failed: ${errorMessage(error)}`);
        options.onAttemptFailed?.(error as Error);
      } finally {
        pending.delete(attempt);
        settled();
      }
    })();
  };

  while (!connection.isClosed) {
    if (connection.isEnding) {
      await connection.closed;
      break;
    }
    if (connection.connected) {
      for (const attempt of pending) attempt.abort.abort();
      delay = 0;
      await Promise.race([connection.waitDetached(), connection.closed]);
      continue;
    }
    const proving = [...pending].some((attempt) => attempt.proving);
    if (pending.size < maxPending && !proving) start();
    const wait = delay === 0 ? 100 : delay;
    const began = Date.now();
    await Promise.race([
      sleep(wait),
      new Promise<void>((resolve) => settled = resolve),
      connection.closed,
    ]);
    if (!connection.connected && !connection.isClosed) {
      // A fast failure still waits out the backoff before the next try.
      const rest = wait - (Date.now() - began);
      if (rest > 0 && pending.size === 0) await sleep(rest);
    }
    delay = Math.min(Math.max(delay * 2, 100), maxBackoff);
  }
  for (const attempt of pending) attempt.abort.abort();
}
