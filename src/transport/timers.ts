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
/**
 * Packets received before an ack is sent without waiting for the timer.
 * Eight bulk packets are half the default 1 MiB window, so the sender
 * never runs dry waiting; every standalone ack is a packet the other end
 * must take in, and at 4 a bulk stream's client spent more CPU on them
 * (issue #10: loopback sends of ~0.1 ms each).
 */
export const ACK_EVERY_PACKETS = 8;
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
/**
 * The same wait once the session is idle (the keepalive interval has
 * backed off): a wake from sleep is then noticed within this, or at the
 * first keystroke ({@link Liveness.sent} asks for a check at once). One
 * second keeps the lifecycle's promise (a dead path after a wake is seen
 * within 1 s) at about 0.01 % CPU.
 */
export const CLIENT_IDLE_CHECK_MS = 1000;
/** Shortest wait between two liveness checks (a deadline just passed). */
const MIN_CHECK_MS = 20;

/** What a liveness tick asks the connection to do. */
export type LivenessVerdict =
  | { action: "none" }
  | { action: "keepalive" }
  | { action: "dead"; reason: string };

/**
 * Longest keepalive interval an idle session backs off to (with the
 * default 1 s keepalive): while nothing but keepalives flows, each end's
 * interval doubles after every keepalive the peer answered, up to this.
 */
export const IDLE_KEEPALIVE_MS = 15_000;
/** The back-off stops at this many keepalive intervals (a short `-k`). */
const IDLE_KEEPALIVE_FACTOR = 16;
/**
 * Shortest wait for data sent to be acknowledged: data outstanding with no
 * acknowledgement for this long (or twice the
 * path's retransmission timeout, if longer, never more than the
 * dead-after) means the pipe is dead, however long the idle keepalive
 * interval had grown.
 */
export const SUSPECT_AFTER_MS = 2000;

/** What arrived: DATA, CONTROL, or CONTROL marked as an answer. */
export type ReceivedKind = "data" | "control" | "answer";

/** The clocks a {@link Liveness} reads; real ones unless a test steps them. */
export interface LivenessClock {
  /** Monotonic milliseconds (every interval is measured on this). */
  mono(): number;
  /** Wall-clock milliseconds (read only to notice a suspend). */
  wall(): number;
}

const REAL_CLOCK: LivenessClock = {
  mono: monotonicNow,
  wall: () => Date.now(),
};

/**
 * The longest keepalive interval of a policy: what an idle end backs off
 * to. Both ends derive it from the same keepalive interval (the client
 * passes its `-k` in the bootstrap), so each knows the other's longest.
 */
export function idleKeepaliveFor(keepaliveMs: number): number {
  return Math.max(
    keepaliveMs,
    Math.min(IDLE_KEEPALIVE_MS, keepaliveMs * IDLE_KEEPALIVE_FACTOR),
  );
}

/**
 * The liveness state of one end: when it last sent and received, what it
 * waits an answer for, how far its keepalive interval has backed off, and
 * where both clocks stood at the last check. Pure bookkeeping, synchronous,
 * on the clocks it is given; the connection acts on the verdicts and arms
 * one timer for the next check.
 *
 * The policy (docs/PROTOCOL.md section 7):
 * - A keepalive goes when nothing was sent for the current interval. The
 *   interval starts at `keepaliveMs` and doubles at each keepalive while
 *   only keepalives flow and the previous one was answered, up to
 *   {@link idleKeepaliveFor}; any data, either way, resets it.
 * - A keepalive that finds this end owing nothing (it sent nothing since it
 *   last heard from the peer) is answered at once ({@link received} says
 *   so): each end's keepalive is answered within a round trip, by a peer
 *   of any interval, and an older peer that never backs off hears from
 *   this end at least every other keepalive of its own.
 * - Dead: data sent and not acknowledged, with no ack progress for the
 *   suspect bound ({@link SUSPECT_AFTER_MS} or two retransmission
 *   timeouts, at most `deadAfterMs`);
 *   a keepalive unanswered for `deadAfterMs`; nothing received at all for
 *   `deadAfterMs` plus the longest idle interval beyond `keepaliveMs`.
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
  /** Shortest keepalive interval: the one used while data flows. */
  readonly keepaliveMs: number;
  /** A keepalive unanswered for this long means the pipe is dead. */
  readonly deadAfterMs: number;
  /** Longest keepalive interval, reached while only keepalives flow. */
  readonly idleKeepaliveMs: number;
  /** A wall-clock lead over the monotonic clock beyond this is a sleep. */
  readonly sleepJumpMs: number;
  #clock: LivenessClock;
  #interval: number;
  #lastReceived = 0;
  #lastSent = 0;
  // When data last went either way (resets the back-off).
  #lastData = -Infinity;
  // The keepalive this end sent on its own timer last (not answers).
  #lastKeepalive = -Infinity;
  // Since when sent data waits for (more of) its acknowledgement.
  #awaitingData: number | null = null;
  // The own keepalive sent first since the peer was last heard from.
  #awaitingKeepalive: number | null = null;
  // Time from a send to the next thing heard, smoothed, and its variation
  // (RFC 6298); unknown until the first answer.
  #smoothedRttMs: number | null = null;
  #rttVariationMs = 0;
  #tickMono: number;
  #tickWall: number;

  /**
   * Sets the policy; `sleepJumpMs` defaults to {@link SLEEP_JUMP_MS}, the
   * idle interval to {@link idleKeepaliveFor}, the clocks to the real ones.
   */
  constructor(
    keepaliveMs: number,
    deadAfterMs: number,
    sleepJumpMs = SLEEP_JUMP_MS,
    options: { idleKeepaliveMs?: number; clock?: LivenessClock } = {},
  ) {
    this.keepaliveMs = keepaliveMs;
    this.deadAfterMs = deadAfterMs;
    this.sleepJumpMs = sleepJumpMs;
    this.idleKeepaliveMs = Math.max(
      keepaliveMs,
      options.idleKeepaliveMs ?? idleKeepaliveFor(keepaliveMs),
    );
    this.#clock = options.clock ?? REAL_CLOCK;
    this.#interval = keepaliveMs;
    this.#tickMono = this.#clock.mono();
    this.#tickWall = this.#clock.wall();
  }

  /** The keepalive interval now (grows while idle, back to the minimum on data). */
  get intervalMs(): number {
    return this.#interval;
  }

  /**
   * How long data sent may go without anything heard back before the pipe
   * is dead: {@link SUSPECT_AFTER_MS}, or twice the retransmission timeout
   * of RFC 6298 (smoothed round trip plus four variations) if longer,
   * never more than the dead-after, which is also the bound until the
   * first answer has measured the path.
   */
  get suspectAfterMs(): number {
    if (this.#smoothedRttMs === null) return this.deadAfterMs;
    const rto = this.#smoothedRttMs + 4 * this.#rttVariationMs;
    return Math.min(this.deadAfterMs, Math.max(SUSPECT_AFTER_MS, 2 * rto));
  }

  /** Silence past this is dead whatever was sent: the peer's longest gap. */
  get silenceLimitMs(): number {
    return this.deadAfterMs + this.idleKeepaliveMs - this.keepaliveMs;
  }

  /**
   * A pipe was attached: it counts as heard from now, and owed a send. The
   * sleep check starts over too: ticks run only while a pipe is attached,
   * so the gap since the last one says nothing about this pipe. The
   * keepalive interval starts from the minimum again (a new path).
   */
  attached() {
    const now = this.#clock.mono();
    this.#lastReceived = now;
    this.#lastSent = -Infinity;
    this.#lastData = now;
    this.#lastKeepalive = -Infinity;
    this.#awaitingData = null;
    this.#awaitingKeepalive = null;
    this.#interval = this.keepaliveMs;
    this.#tickMono = now;
    this.#tickWall = this.#clock.wall();
  }

  /**
   * Something arrived on the pipe: a DATA packet, a CONTROL one (an ack
   * or a keepalive), or a CONTROL one marked as an answer (PROTOCOL.md
   * section 7: odd counter). Returns true when it should be answered at
   * once: an unmarked CONTROL packet that finds this end waiting for
   * nothing (neither data nor a keepalive of its own is unanswered) is the
   * peer's keepalive. Answers are never answered, so two ends cannot
   * bounce them forever.
   */
  received(kind: ReceivedKind = "control"): boolean {
    const now = this.#clock.mono();
    const data = kind === "data";
    const answer = kind === "control" && this.#awaitingData === null &&
      this.#awaitingKeepalive === null;
    // A keepalive and its answer measure a round trip (crossing
    // keepalives would measure one way only).
    if (this.#awaitingKeepalive !== null && kind === "answer") {
      this.#sampleRtt(now - this.#awaitingKeepalive);
    }
    this.#awaitingKeepalive = null;
    this.#lastReceived = now;
    if (data) this.#dataFlowed(now);
    return answer;
  }

  /**
   * Something was written to the pipe: `data` when it held DATA packets
   * (they ask for an ack), else only CONTROL ones. Returns true when this
   * is the first data after an idle spell: the connection should check at
   * once (a machine that slept is found at the first keystroke) and then
   * on the short schedule again.
   */
  sent(data = false): boolean {
    const now = this.#clock.mono();
    this.#lastSent = now;
    if (!data) return false;
    const wasIdle = this.#interval > this.keepaliveMs;
    this.#awaitingData ??= now;
    this.#dataFlowed(now);
    return wasIdle;
  }

  /**
   * Longest wait between a client's checks: {@link CLIENT_CHECK_MS} while
   * data flows, {@link CLIENT_IDLE_CHECK_MS} once its keepalive interval
   * has backed off (each check is a wake of the process).
   */
  clientCheckMs(): number {
    return this.#interval > this.keepaliveMs
      ? CLIENT_IDLE_CHECK_MS
      : CLIENT_CHECK_MS;
  }

  /**
   * The peer acknowledged more of the data sent; `all` when nothing sent
   * is unacknowledged any more. Data still outstanding must see progress
   * within the suspect bound again, counted from now (as TCP restarts its
   * retransmission timer on each new ack).
   */
  acknowledged(all: boolean) {
    const now = this.#clock.mono();
    if (this.#awaitingData !== null) {
      this.#sampleRtt(now - this.#awaitingData);
    }
    this.#awaitingData = all ? null : now;
  }

  #sampleRtt(sample: number) {
    if (this.#smoothedRttMs === null) {
      this.#smoothedRttMs = sample;
      this.#rttVariationMs = sample / 2;
      return;
    }
    this.#rttVariationMs = 0.75 * this.#rttVariationMs +
      0.25 * Math.abs(this.#smoothedRttMs - sample);
    this.#smoothedRttMs = 0.875 * this.#smoothedRttMs + 0.125 * sample;
  }

  #dataFlowed(now: number) {
    this.#lastData = now;
    this.#interval = this.keepaliveMs;
  }

  /**
   * Milliseconds until the next check is worth making while a pipe is
   * attached: when a keepalive falls due or a deadline passes, never
   * longer than `maxMs` or the current keepalive interval, nor shorter than
   * 20 ms. The connection arms one timer for it instead of ticking at a
   * fixed rate, so an idle session wakes for its keepalives and little
   * else.
   */
  nextCheckInMs(maxMs = this.#interval): number {
    const now = this.#clock.mono();
    const due = Math.min(
      this.#lastSent + this.#interval - now,
      this.#lastReceived + this.silenceLimitMs - now,
      this.#awaitingData === null
        ? Infinity
        : this.#awaitingData + this.suspectAfterMs - now,
      this.#awaitingKeepalive === null
        ? Infinity
        : this.#awaitingKeepalive + this.deadAfterMs - now,
    );
    const limit = Math.min(maxMs, this.#interval);
    return Math.max(MIN_CHECK_MS, Math.min(limit, Math.ceil(due)));
  }

  /** Decides, on a check, what the connection should do now. */
  tick(hasPipe: boolean): LivenessVerdict {
    const mono = this.#clock.mono();
    const wall = this.#clock.wall();
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
    if (
      this.#awaitingData !== null &&
      mono - this.#awaitingData > this.suspectAfterMs
    ) {
      return {
        action: "dead",
        reason: `nothing received for ${
          Math.round(mono - this.#awaitingData)
        } ms that acknowledges the data sent`,
      };
    }
    if (
      this.#awaitingKeepalive !== null &&
      mono - this.#awaitingKeepalive > this.deadAfterMs
    ) {
      return {
        action: "dead",
        reason: `nothing received for ${this.deadAfterMs} ms`,
      };
    }
    if (mono - this.#lastReceived > this.silenceLimitMs) {
      return {
        action: "dead",
        reason: `nothing received for ${this.silenceLimitMs} ms`,
      };
    }
    if (mono - this.#lastSent >= this.#interval) {
      // Back off only when nothing but keepalives flowed since the last
      // one and it was answered: a silent peer keeps the short interval.
      const answered = this.#lastReceived > this.#lastKeepalive;
      if (answered && this.#lastData < this.#lastKeepalive) {
        this.#interval = Math.min(this.#interval * 2, this.idleKeepaliveMs);
      }
      this.#lastKeepalive = mono;
      this.#lastSent = mono;
      this.#awaitingKeepalive ??= mono;
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
