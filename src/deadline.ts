/**
 * The one deadline wrapper every layer uses: a task that must finish within
 * a time, and what to do (close a socket, kill a child) when it does not.
 * It imports nothing from the rest of `et`.
 *
 * @module
 */

/** A task did not finish in time. */
export class DeadlineError extends Error {
  override name = "DeadlineError";
}

/**
 * Resolves like `task`, or rejects with a DeadlineError(`message`) after
 * `ms`, calling `onExpire` first (to close whatever the task waits on, so
 * it does not linger). The timer never keeps the process alive by itself
 * once the task settles.
 *
 * @example
 * ```ts
 * const line = await withDeadline(reader.next(), 5000, "no answer", () => conn.close());
 * ```
 */
export async function withDeadline<T>(
  task: Promise<T>,
  ms: number,
  message: string,
  onExpire?: () => void,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      try {
        onExpire?.();
      } finally {
        reject(new DeadlineError(message));
      }
    }, ms);
  });
  try {
    return await Promise.race([task, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * As {@linkcode withDeadline}, for the first waits of the short-lived
 * launcher (its bootstrap line, the host lock): its timer is
 * `AbortSignal.timeout`'s (~0.5 ms to arm), where the first `setTimeout`
 * of a Deno 2.9 process costs ~5 ms on the spot (the global timers are
 * node's, loaded on first use). The timer cannot be cleared: once `task`
 * settles it still fires, unheard, after `ms`; with no listener left it
 * keeps nothing alive.
 */
export async function withEarlyDeadline<T>(
  task: Promise<T>,
  ms: number,
  message: string,
): Promise<T> {
  const signal = AbortSignal.timeout(ms);
  let onAbort: (() => void) | undefined;
  const expired = new Promise<never>((_, reject) => {
    onAbort = () => reject(new DeadlineError(message));
    signal.addEventListener("abort", onAbort, { once: true });
  });
  try {
    return await Promise.race([task, expired]);
  } finally {
    signal.removeEventListener("abort", onAbort!);
  }
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
