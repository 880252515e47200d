/**
 * A listener's accept loop that survives the network. `for await` over a
 * Deno listener ends at the first accept error, and Linux reports one for
 * a connection reset while it waited in the queue (NotConnected): one
 * client that connects and resets at once would stop the listener for
 * good. This loop skips such connections and ends only when the listener
 * is closed.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";

const log = logger("accept");

/** Errors that belong to one dead connection, not to the listener. */
function isConnectionError(error: unknown): boolean {
  return error instanceof Deno.errors.NotConnected ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.ConnectionReset;
}

/**
 * Calls `handle` with every accepted connection until the listener is
 * closed. Never throws.
 *
 * @example
 * ```ts
 * const listener = Deno.listen({ port: 2022 });
 * await acceptEach(listener, (conn) => serve(conn));
 * ```
 */
export async function acceptEach<C extends Deno.Conn>(
  listener: Deno.Listener<C>,
  handle: (conn: C) => void,
): Promise<void> {
  while (true) {
    let conn: C;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (
        error instanceof Deno.errors.BadResource ||
        error instanceof Deno.errors.Interrupted
      ) {
        return; // the listener was closed
      }
      if (!isConnectionError(error)) {
        // Out of descriptors and the like: do not spin while it lasts.
        log.warn(`accept failed: ${errorMessage(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      continue;
    }
    handle(conn);
  }
}
