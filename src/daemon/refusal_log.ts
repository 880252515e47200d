/**
 * Refusals logged without letting a flood of them flood the log: at most
 * one line per reason per interval, and the next line that gets through
 * says how many like it were left out.
 *
 * @module
 */

import type { Logger } from "../log.ts";

/**
 * A rate-limited warning log keyed by reason.
 *
 * @example
 * ```ts
 * const refusals = new RefusalLog(logger("server"));
 * refusals.refused("unknown session", `${peer}: refused unknown session 0f1e2d3c`);
 * ```
 */
export class RefusalLog {
  #log: Logger;
  #intervalMs: number;
  #now: () => number;
  #reasons = new Map<string, { last: number; suppressed: number }>();

  /**
   * Logs through `log`. `intervalMs` is the shortest gap between two lines
   * of one reason; `now` is the clock (tests pass their own).
   */
  constructor(
    log: Logger,
    intervalMs = 1000,
    now: () => number = () => performance.now(),
  ) {
    this.#log = log;
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /**
   * Records one refusal. `reason` must be one of a fixed set of strings
   * (never text from the peer: it keys a map); `line` is what gets logged.
   */
  refused(reason: string, line: string): void {
    const now = this.#now();
    const state = this.#reasons.get(reason);
    if (state && now - state.last < this.#intervalMs) {
      state.suppressed++;
      return;
    }
    const suppressed = state?.suppressed ?? 0;
    this.#reasons.set(reason, { last: now, suppressed: 0 });
    this.#log.warn(
      suppressed > 0
        ? `${line} (and ${suppressed} more "${reason}" since the last such line)`
        : line,
    );
  }
}
