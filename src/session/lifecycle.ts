/**
 * The life of a session, one state machine for both ends. It is pure data:
 * events and the current time go in, the new state and the next deadline
 * come out. The terminal process and the client wrap it with timers and
 * act on the states (see docs/ARCHITECTURE.md for the drawing).
 *
 *     starting ──connected──▶ connected ◀──connected── away
 *        │                     │   └────disconnected────▶ │
 *        │ timeout             └─program exited─┐         │ timeout
 *        ▼                                      ▼         ▼
 *     expired ◀──────timeout (client away)── draining   expired
 *                                               │
 *                                   finished ───▶ ended
 *
 * `ended` also follows an end request in any live state (`-x`, an
 * authenticated end from the peer). Every state but `connected` has a
 * deadline; `connected` cannot outlive the transport's dead-pipe timer.
 *
 * @module
 */

/** Where a session is in its life. */
export type SessionState =
  | "starting"
  | "connected"
  | "away"
  | "draining"
  | "ended"
  | "expired";

/** What can happen to a session. */
export type LifecycleEvent =
  /** A client's connection was authenticated and attached. */
  | "connected"
  /** The connection under the session was lost (or the client detached). */
  | "disconnected"
  /** The program exited: deliver what is left, then end. */
  | "program-exited"
  /** Everything was delivered and acknowledged. */
  | "finished"
  /** Someone with the right to end the session asked to. */
  | "end-requested"
  /** The current state's deadline passed. */
  | "timeout";

/** Timeouts of a session's states. */
export interface LifecycleLimits {
  /** From start: how long the first client may take. */
  connectTimeoutMs: number;
  /** How long a client may stay away; 0 means forever. */
  sessionTimeoutMs: number;
}

const FINAL: ReadonlySet<SessionState> = new Set(["ended", "expired"]);

/** The transitions, state by state; a missing entry leaves the state as is. */
const TRANSITIONS: Record<
  SessionState,
  Partial<Record<LifecycleEvent, SessionState>>
> = {
  starting: {
    connected: "connected",
    "program-exited": "draining",
    "end-requested": "ended",
    timeout: "expired",
  },
  connected: {
    disconnected: "away",
    "program-exited": "draining",
    "end-requested": "ended",
  },
  away: {
    connected: "connected",
    "program-exited": "draining",
    "end-requested": "ended",
    timeout: "expired",
  },
  draining: {
    finished: "ended",
    "end-requested": "ended",
    timeout: "expired",
  },
  ended: {},
  expired: {},
};

/**
 * One session's lifecycle.
 *
 * @example
 * ```ts
 * const life = new SessionLifecycle({ connectTimeoutMs: 30_000, sessionTimeoutMs: 0 }, now);
 * life.apply("connected", now);   // "connected"
 * life.apply("disconnected", now); // "away"
 * life.deadline();                 // null: sessionTimeoutMs 0 waits forever
 * ```
 */
export class SessionLifecycle {
  #state: SessionState = "starting";
  #limits: LifecycleLimits;
  #startedAt: number;
  #lastSeenAt: number;
  #present = false;
  #everConnected = false;

  /** A session in `starting`, at time `now` (ms, any monotonic clock). */
  constructor(limits: LifecycleLimits, now: number) {
    this.#limits = limits;
    this.#startedAt = now;
    this.#lastSeenAt = now;
  }

  /** The current state. */
  get state(): SessionState {
    return this.#state;
  }

  /** True once the session is over (ended or expired). */
  get isFinal(): boolean {
    return FINAL.has(this.#state);
  }

  /** True while a client is connected (in `connected`, or draining to one). */
  get clientPresent(): boolean {
    return this.#present;
  }

  /** When a client was last connected (or the start, if never). */
  get lastSeenAt(): number {
    return this.#lastSeenAt;
  }

  /**
   * Applies `event` at time `now` and returns the new state. Events that
   * do not apply in the current state change nothing; a final state never
   * changes again.
   */
  apply(event: LifecycleEvent, now: number): SessionState {
    if (event === "connected" || event === "disconnected") {
      if (!this.isFinal) {
        // Leaving or arriving, the client was there until now.
        if (this.#present || event === "connected") this.#lastSeenAt = now;
        this.#present = event === "connected";
        if (this.#present) this.#everConnected = true;
      }
    }
    if (event === "timeout") {
      const deadline = this.deadline();
      if (deadline === null || now < deadline) return this.#state;
    }
    const next = TRANSITIONS[this.#state][event];
    if (next !== undefined) this.#state = next;
    return this.#state;
  }

  /**
   * When the current state times out (same clock as `now`), or null if it
   * cannot: while connected, once final, or when away forever is allowed.
   */
  deadline(): number | null {
    switch (this.#state) {
      case "starting":
        return this.#startedAt + this.#limits.connectTimeoutMs;
      case "away":
        return this.#awayDeadline();
      case "draining":
        return this.#present ? null : this.#awayDeadline();
      default:
        return null;
    }
  }

  #awayDeadline(): number | null {
    // A client that never came cannot be waited for longer than the first
    // connection was allowed to take.
    if (!this.#everConnected) {
      return this.#startedAt + this.#limits.connectTimeoutMs;
    }
    if (this.#limits.sessionTimeoutMs <= 0) return null;
    return this.#lastSeenAt + this.#limits.sessionTimeoutMs;
  }
}
