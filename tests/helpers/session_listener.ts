/**
 * A loopback listener that runs the server handshake on every connection,
 * for tests that drive the client side themselves (their own dial,
 * deadlines and status).
 *
 * @module
 */

import {
  acceptEach,
  type EternalConnection,
  serverHandshake,
  type SessionLookup,
} from "../../src/transport/mod.ts";

/** A listening server end and the means to stop it. */
export interface SessionListener {
  /** Port on 127.0.0.1. */
  port: number;
  /** Stops listening and waits for handshakes in progress. */
  close(): Promise<void>;
}

/**
 * Listens on 127.0.0.1 (`port`, or any free one) and hands each connection
 * to `serverHandshake`.
 */
export function listenForSessions(
  lookup: SessionLookup | EternalConnection,
  port = 0,
): SessionListener {
  const find: SessionLookup = typeof lookup === "function"
    ? lookup
    : () => lookup;
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const handshakes = new Set<Promise<unknown>>();
  const loop = acceptEach(listener, (conn) => {
    conn.setNoDelay(true);
    const handshake = serverHandshake(conn, find);
    handshakes.add(handshake);
    handshake.finally(() => handshakes.delete(handshake));
  });
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await loop;
      await Promise.allSettled([...handshakes]);
    },
  };
}

/** A loopback port nothing listens on (it was free a moment ago). */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}
