/**
 * A replay filter for packets that are not resent (acks, keepalives): their
 * counters must strictly increase for the life of the session, across
 * reconnects, so a control packet recorded on an earlier connection can
 * never be accepted again.
 *
 * @module
 */

/**
 * Accepts each counter at most once, and only in increasing order.
 *
 * @example
 * ```ts
 * const filter = new ReplayFilter();
 * filter.accept(1); // true
 * filter.accept(1); // false: replayed
 * ```
 */
export class ReplayFilter {
  #highest = -1;

  /**
   * True if `counter` is newer than every counter recorded. Check before
   * authenticating, record after: a forged counter must not move the mark.
   */
  isFresh(counter: number): boolean {
    return counter > this.#highest;
  }

  /** Marks `counter` (already authenticated) as seen. */
  record(counter: number) {
    if (counter > this.#highest) this.#highest = counter;
  }

  /** Checks and records in one step, for counters already authenticated. */
  accept(counter: number): boolean {
    if (!this.isFresh(counter)) return false;
    this.record(counter);
    return true;
  }
}
