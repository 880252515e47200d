/**
 * The client's side of "never dies": keeps a session connected by dialing
 * again whenever its pipe drops — at once, then backing off up to a cap —
 * until the session ends, the server ends it with a signed word, or a
 * deadline the caller set passes.
 *
 * An attempt stuck on a silent path does not hold up the next one: a new
 * attempt starts on the backoff timer while older ones still wait (a few
 * at most), and the first to complete its handshake wins. A refusal counts
 * as one failed attempt unless it is authenticated and final (see
 * {@link HandshakeRefusedError}): six bytes injected on the path, or a relay
 * that briefly does not know the session, cannot end it.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";
import type { EternalConnection } from "./connection.ts";
import { clientHandshake, HandshakeRefusedError } from "./handshake.ts";
import type { BytePipe } from "./pipe.ts";
import {
  FIRST_RETRY_MS,
  MAX_BACKOFF_MS,
  MAX_PENDING_ATTEMPTS,
  monotonicNow,
} from "./timers.ts";

const log = logger("reconnect");

/** Options of {@link keepConnected}. */
export interface KeepConnectedOptions {
  /**
   * Opens a fresh pipe to the server (or relay). `signal` aborts once the
   * attempt is abandoned or its time is up, so a dial that holds
   * something (a process, a slot) can let go early.
   */
  dial: (signal: AbortSignal) => Promise<BytePipe>;
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
  /**
   * Give up (fail the session with a {@link ReconnectGaveUpError}) if the
   * first connection has not succeeded this long after the call. 0 or
   * absent: never. Ignored if the connection is already connected.
   * @default {0}
   */
  connectTimeoutMs?: number;
  /**
   * Give up if, after having been connected, no connection succeeded for
   * this long (counted from the moment the pipe was lost). 0 or absent:
   * never.
   * @default {0}
   */
  awayTimeoutMs?: number;
  /** Told about each failed attempt (for status lines and logs). */
  onAttemptFailed?: (error: Error) => void;
  /**
   * Stops the loop once aborted: no attempt starts after it, attempts in
   * flight are abandoned, and the connection is left as it is (not
   * closed). For an end that leaves on purpose without ending the
   * session: a pipe the peer drops then must not be dialled again.
   */
  signal?: AbortSignal;
}

/** What the redial loop is doing, for a status line. Read live. */
export interface ReconnectStatus {
  /** True while a pipe is attached. */
  readonly connected: boolean;
  /** True once any connection has succeeded. */
  readonly everConnected: boolean;
  /** Attempts that failed since the last connection (or the start). */
  readonly failedAttempts: number;
  /** The last failed attempt's error, since the last connection. */
  readonly lastError: Error | null;
  /**
   * The same in a few words for people ("connection refused",
   * "the server does not know this session …"), or null.
   */
  readonly lastReason: string | null;
  /** `performance.now()` when the loop began or last connected or lost. */
  readonly since: number;
}

/**
 * A running {@link keepConnected}: a promise that settles when the session
 * ends, and its live status.
 */
export type ReconnectLoop = Promise<void> & {
  /** Live status; the same object throughout. */
  readonly status: ReconnectStatus;
};

/**
 * A deadline of {@link keepConnected} passed: the session was failed with
 * this error. The message is one line naming the last failure.
 */
export class ReconnectGaveUpError extends Error {
  override name = "ReconnectGaveUpError";
  /** The deadline that passed, in milliseconds. */
  readonly timeoutMs: number;
  /** False when the first connection never succeeded (connectTimeoutMs). */
  readonly everConnected: boolean;
  /** The last failed attempt's error, if any attempt finished. */
  readonly lastError: Error | null;

  /** Makes the error and its message. */
  constructor(
    timeoutMs: number,
    everConnected: boolean,
    lastError: Error | null,
  ) {
    const seconds = `${Number((timeoutMs / 1000).toFixed(1))} s`;
    const why = lastError ? describeFailure(lastError) : "no answer";
    super(
      everConnected
        ? `no connection for ${seconds}: ${why}`
        : `could not connect within ${seconds}: ${why}`,
    );
    this.timeoutMs = timeoutMs;
    this.everConnected = everConnected;
    this.lastError = lastError;
  }
}

/**
 * A failure in a few words: the OS's "(os error N)" dropped and the first
 * letter lowered, so "Connection refused (os error 111)" reads
 * "connection refused".
 */
function describeFailure(error: Error): string {
  const text = errorMessage(error).replace(/\s*\(os error \d+\)\s*$/, "");
  return /^[A-Z][a-z]/.test(text)
    ? text[0].toLowerCase() + text.slice(1)
    : text;
}

interface Attempt {
  abort: AbortController;
  /** Set once the attempt has sent its proof: the server may attach it. */
  proving: boolean;
}

/**
 * Dials with a time limit: a connect whose SYNs go unanswered can hang for
 * minutes, and attempts stuck there would hold every slot. A pipe that
 * arrives after the limit or after the attempt was abandoned is closed.
 */
function dialBounded(
  dial: (signal: AbortSignal) => Promise<BytePipe>,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<BytePipe> {
  return new Promise((resolve, reject) => {
    let done = false;
    // Aborted for the dial when the attempt is abandoned or times out.
    const dialing = new AbortController();
    const finish = (error: Error | null, pipe?: BytePipe) => {
      if (done) {
        pipe?.close();
        return;
      }
      done = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      if (error) dialing.abort();
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
    dial(dialing.signal).then(
      (pipe) => finish(null, pipe),
      (error) =>
        finish(error instanceof Error ? error : new Error(String(error))),
    );
  });
}

/** Resolves after `ms`, or as soon as one of `wakers` settles. */
async function pause(ms: number, ...wakers: Promise<unknown>[]) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      new Promise((resolve) => timer = setTimeout(resolve, Math.max(0, ms))),
      ...wakers,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs until `connection` is closed: every time it has no pipe, dials and
 * handshakes until one is attached. Fails the session only on an
 * authenticated, final refusal or when a deadline passes; every other
 * failure is retried.
 *
 * @example
 * ```ts
 * const loop = keepConnected(connection, {
 *   dial: () => Deno.connect({ hostname, port }),
 *   connectTimeoutMs: 10_000,
 *   awayTimeoutMs: 0, // keep trying for as long as it takes
 * });
 * // status line: `connecting… (${loop.status.lastReason ?? "…"})`
 * const end = await connection.closed; // end.error: ReconnectGaveUpError…
 * await loop;
 * ```
 */
export function keepConnected(
  connection: EternalConnection,
  options: KeepConnectedOptions,
): ReconnectLoop {
  const status = {
    connected: connection.connected,
    everConnected: connection.connected,
    failedAttempts: 0,
    lastError: null as Error | null,
    lastReason: null as string | null,
    since: monotonicNow(),
  };
  return Object.assign(redial(connection, options, status), { status });
}

async function redial(
  connection: EternalConnection,
  options: KeepConnectedOptions,
  status: {
    -readonly [K in keyof ReconnectStatus]: ReconnectStatus[K];
  },
): Promise<void> {
  const maxBackoff = options.maxBackoffMs ?? MAX_BACKOFF_MS;
  const maxPending = options.maxPendingAttempts ?? MAX_PENDING_ATTEMPTS;
  const connectTimeout = options.connectTimeoutMs ?? 0;
  const awayTimeout = options.awayTimeoutMs ?? 0;
  const pending = new Set<Attempt>();
  // When the present outage began; the first one, at the call.
  let downSince = status.since;
  let delay = 0;
  let settled: () => void = () => {};
  const stop = options.signal;
  const stopped = new Promise<void>((resolve) => {
    if (stop?.aborted) resolve();
    stop?.addEventListener("abort", () => resolve(), { once: true });
  });

  const start = () => {
    const attempt: Attempt = { abort: new AbortController(), proving: false };
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
        if (error instanceof HandshakeRefusedError && error.final) {
          log.warn(`session refused: ${error.message}`);
          connection.fail(error);
          return;
        }
        if (connection.connected || connection.isClosed) {
          // A straggler: another attempt won meanwhile. Not a failure.
          log.debug(`attempt dropped: ${errorMessage(error)}`);
          return;
        }
        const failure = error instanceof Error
          ? error
          : new Error(String(error));
        status.failedAttempts++;
        status.lastError = failure;
        status.lastReason = describeFailure(failure);
        log.info(`attempt failed: ${failure.message}`);
        options.onAttemptFailed?.(failure);
      } finally {
        pending.delete(attempt);
        settled();
      }
    })();
  };

  while (!connection.isClosed && !stop?.aborted) {
    if (connection.isEnding) {
      await connection.closed;
      break;
    }
    if (connection.connected) {
      if (!status.connected) {
        status.connected = true;
        status.everConnected = true;
        status.failedAttempts = 0;
        status.lastError = null;
        status.lastReason = null;
        status.since = monotonicNow();
      }
      // Attempts that have not proved yet are dropped; one that has may
      // already be attached at the server, so it finishes and, being
      // newer, takes over (an older one is refused as stale).
      for (const attempt of pending) {
        if (!attempt.proving) attempt.abort.abort();
      }
      delay = 0;
      await Promise.race([
        connection.waitDetached(),
        connection.closed,
        stopped,
      ]);
      continue;
    }
    const now = monotonicNow();
    if (status.connected) {
      status.connected = false;
      status.since = downSince = now;
    }
    const limit = status.everConnected ? awayTimeout : connectTimeout;
    const deadline = limit > 0 ? downSince + limit : Infinity;
    if (now >= deadline) {
      const error = new ReconnectGaveUpError(
        limit,
        status.everConnected,
        status.lastError,
      );
      log.warn(`giving up: ${error.message}`);
      connection.fail(error);
      break;
    }
    if (pending.size < maxPending) start();
    const wait = delay === 0 ? FIRST_RETRY_MS : delay;
    const began = now;
    await pause(
      Math.min(wait, deadline - now),
      new Promise<void>((resolve) => settled = resolve),
      connection.closed,
      stopped,
    );
    if (!connection.connected && !connection.isClosed && !stop?.aborted) {
      // A fast failure still waits out the backoff before the next try.
      const after = monotonicNow();
      const rest = Math.min(wait - (after - began), deadline - after);
      if (rest > 0 && pending.size === 0) {
        await pause(rest, connection.closed, stopped);
      }
    }
    delay = Math.min(Math.max(delay * 2, FIRST_RETRY_MS), maxBackoff);
  }
  for (const attempt of pending) attempt.abort.abort();
}
