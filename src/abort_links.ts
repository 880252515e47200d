/**
 * One action tied to many abort signals, each listened to once: a loop
 * handed the same signal with every chunk of output would otherwise add
 * and remove a listener per chunk (two EventTarget calls each, on the
 * keystroke echo's path too). It imports nothing from the rest of `et`.
 *
 * @module
 */

/**
 * Runs one action when any linked signal aborts.
 *
 * @example
 * ```ts
 * const links = new AbortLinks(() => wakeEveryWaiter());
 * links.link(signal); // once per signal, however often it is passed
 * ```
 */
export class AbortLinks {
  #linked = new WeakSet<AbortSignal>();
  #onAbort: () => void;

  /** `onAbort` runs on each linked signal's abort (once per signal). */
  constructor(onAbort: () => void) {
    this.#onAbort = onAbort;
  }

  /**
   * Runs the action when `signal` aborts, or now if it has; nothing when
   * `signal` was linked before.
   */
  link(signal: AbortSignal): void {
    if (this.#linked.has(signal)) return;
    this.#linked.add(signal);
    if (signal.aborted) this.#onAbort();
    else signal.addEventListener("abort", this.#onAbort, { once: true });
  }
}
