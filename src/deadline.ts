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

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
