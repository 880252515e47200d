/**
 * Every liveness and retry policy of the transport, in one place (as in
 * wireguard-go's timers.go): when to send a keepalive, when to ack, when a
 * silent pipe is dead, when the machine has slept, how fast to redial.
 *
 * All elapsed times are measured on the monotonic clock
 * (`performance.now()`): a wall-clock step (NTP, a user changing the date)
 * must never make a live pipe look dead or a dead one look alive. The wall
 * clock is read for one thing only: comparing it with the monotonic clock
 * tells that the machine was asleep, because the monotonic clock stops
 * during suspend and the wall clock does not.
 *
 * @module
 */

/** Send a keepalive when nothing was sent for this long. */
export const KEEPALIVE_MS = 1000;
/** A pipe that delivered nothing for this long is dead. */
export const DEAD_AFTER_MS = 6000;
/** Longest wait for each handshake step (and for each connect). */
export const HANDSHAKE_TIMEOUT_MS = 5000;
/** Longest delay of a standalone ack. */
export const ACK_DELAY_MS = 5;
/** Packets received before an ack is sent without waiting for the timer. */
export const ACK_EVERY_PACKETS = 4;
/**
 * The wall clock ran this much further than the monotonic clock between
 * two liveness ticks: the machine slept, and the pipe's path is suspect.
 */
export const SLEEP_JUMP_MS = 2000;
/** Wait before the second dial of an outage (the first is immediate). */
export const FIRST_RETRY_MS = 100;
/** Longest wait between dials: well under a second. */
export const MAX_BACKOFF_MS = 500;
/** Dials allowed in flight at once (silent ones wait out their timeout). */
export const MAX_PENDING_ATTEMPTS = 12;

/** The monotonic clock, in milliseconds. */
export function monotonicNow(): number {
  return performance.now();
}

/**
 * Longest wait between two liveness checks of a client: a machine waking
 * from sleep is noticed (and the client redials) at most this long after
 * it wakes. The monotonic clock stops during suspend, so a timer armed
 * before it fires this long after the wake, not at once.
 */
export const CLIENT_CHECK_MS = 500;
/** Shortest wait between two liveness checks (a deadline just passed). */
const MIN_CHECK_MS = 20;

/** What a liveness tick asks the connection to do. */
export type LivenessVerdict =
  | { action: "none" }
  | { action: "keepalive" }
  | { action: "dead"; reason: string };

/**
 * The liveness state of one end: when it last sent and received, and where
 * both clocks stood at the last check. Pure bookkeeping; the connection
 * acts on the verdicts and arms one timer for the next check.
 *
 * @example
 * ```ts
 * const liveness = new Liveness(1000, 6000);
 * liveness.attached();
 * const check = () => {
 *   const verdict = liveness.tick(true);
 *   if (verdict.action === "dead") return dropPipe(verdict.reason);
 *   setTimeout(check, liveness.nextCheckInMs(CLIENT_CHECK_MS));
 * };
 * check();
 * ```
 */
export class Liveness {
  /** Send a keepalive after this long without sending. */
  readonly keepaliveMs: number;
  /** The pipe is dead after this long without receiving. */
  readonly deadAfterMs: number;
  /** A wall-clock lead over the monotonic clock beyond this is a sleep. */
  readonly sleepJumpMs: number;
  #lastReceived = 0;
  #lastSent = 0;
  #tickMono = monotonicNow();
  #tickWall = Date.now();

  /** Sets the policy; `sleepJumpMs` defaults to {@link SLEEP_JUMP_MS}. */
  constructor(
    keepaliveMs: number,
    deadAfterMs: number,
    sleepJumpMs = SLEEP_JUMP_MS,
  ) {
    this.keepaliveMs = keepaliveMs;
    this.deadAfterMs = deadAfterMs;
    this.sleepJumpMs = sleepJumpMs;
  }

  /**
   * A pipe was attached: it counts as heard from now, and owed a send. The
   * sleep check starts over too: ticks run only while a pipe is attached,
   * so the gap since the last one says nothing about this pipe.
   */
  attached() {
    this.#lastReceived = monotonicNow();
    this.#lastSent = -Infinity;
    this.#tickMono = monotonicNow();
    this.#tickWall = Date.now();
  }

  /** Something arrived on the pipe. */
  received() {
    this.#lastReceived = monotonicNow();
  }

  /** Something was written to the pipe. */
  sent() {
    this.#lastSent = monotonicNow();
  }

  /**
   * Milliseconds until the next check is worth making while a pipe is
   * attached: when a keepalive falls due or the pipe would be dead, never
   * longer than `maxMs` or the keepalive interval, nor shorter than 20 ms.
   * The connection arms one timer for it instead of ticking at a fixed
   * rate, so an idle session wakes for its keepalives and little else.
   */
  nextCheckInMs(maxMs = this.keepaliveMs): number {
    const now = monotonicNow();
    const due = Math.min(
      this.#lastSent + this.keepaliveMs - now,
      this.#lastReceived + this.deadAfterMs - now,
    );
    const limit = Math.min(maxMs, this.keepaliveMs);
    return Math.max(MIN_CHECK_MS, Math.min(limit, Math.ceil(due)));
  }

  /** Decides, on a check, what the connection should do now. */
  tick(hasPipe: boolean): LivenessVerdict {
    const mono = monotonicNow();
    const wall = Date.now();
    // Only a forward gap counts: a backwards wall step gives a negative one.
    const slept = (wall - this.#tickWall) - (mono - this.#tickMono);
    this.#tickMono = mono;
    this.#tickWall = wall;
    if (!hasPipe) return { action: "none" };
    if (slept > this.sleepJumpMs) {
      return {
        action: "dead",
        reason: `the machine slept (${Math.round(slept / 1000)} s)`,
      };
    }
    if (mono - this.#lastReceived > this.deadAfterMs) {
      return {
        action: "dead",
        reason: `nothing received for ${this.deadAfterMs} ms`,
      };
    }
    if (mono - this.#lastSent >= this.keepaliveMs) {
      this.#lastSent = mono;
      return { action: "keepalive" };
    }
    return { action: "none" };
  }
}

/** Keepalives a silent pipe may miss before it is dead (6 by default). */
export const KEEPALIVES_BEFORE_DEAD = DEAD_AFTER_MS / KEEPALIVE_MS;
/** Shortest keepalive interval a user may ask for. */
export const MIN_KEEPALIVE_MS = 500;
/** Longest keepalive interval a user may ask for. */
export const MAX_KEEPALIVE_MS = 600_000;

/**
 * The liveness policy for a keepalive interval the user chose (`et -k`):
 * the dead-after scales with it, so a pipe is dead after as many missed
 * keepalives as by default, never sooner than the default dead-after.
 * Both ends of a session use the same policy (the client passes it in the
 * bootstrap), so neither end's keepalives are too sparse for the other.
 *
 * @example
 * ```ts
 * livenessForKeepalive(5000); // { keepaliveMs: 5000, deadAfterMs: 30000 }
 * ```
 */
export function livenessForKeepalive(
  keepaliveMs: number,
): { keepaliveMs: number; deadAfterMs: number } {
  const interval = Math.min(
    MAX_KEEPALIVE_MS,
    Math.max(MIN_KEEPALIVE_MS, keepaliveMs),
  );
  return {
    keepaliveMs: interval,
    deadAfterMs: Math.max(DEAD_AFTER_MS, interval * KEEPALIVES_BEFORE_DEAD),
  };
}
