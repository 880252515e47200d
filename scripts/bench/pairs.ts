/**
 * In-process eternal connection pairs over loopback TCP for the transport
 * benchmarks: one server listener that hands each accepted socket to the
 * server handshake, and clients that dial it through `keepConnected`, the
 * same way `tests/helpers/session_pair.ts` builds one pair. Many pairs share
 * one listener so the idle-memory count is about connections, not listeners.
 *
 * @module
 */

import {
  acceptEach,
  EternalConnection,
  generateSessionSecret,
  keepConnected,
  serverHandshake,
  toHex,
} from "../../src/transport/mod.ts";

/** One connected client/server pair. */
export interface Pair {
  client: EternalConnection;
  server: EternalConnection;
  /** The client's redial loop; settles when the client session ends. */
  clientLoop: Promise<void>;
}

/** A listener that serves any number of pairs. */
export class PairHost {
  readonly #listener: Deno.TcpListener;
  readonly #sessions = new Map<string, EternalConnection>();
  readonly #pairs: Pair[] = [];
  readonly #handshakes = new Set<Promise<unknown>>();
  readonly #accepting: Promise<void>;

  constructor() {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#listener = listener;
    this.#accepting = acceptEach(listener, (conn) => {
      conn.setNoDelay(true);
      const handshake = serverHandshake(
        conn,
        (id) => this.#sessions.get(toHex(id)),
      );
      this.#handshakes.add(handshake);
      handshake.finally(() => this.#handshakes.delete(handshake));
    });
  }

  /** The listener's port on 127.0.0.1. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** Makes a session, starts its client dialing, resolves once both ends are attached. */
  async open(): Promise<Pair> {
    const secret = generateSessionSecret();
    const [client, server] = await Promise.all([
      EternalConnection.create(secret, "client"),
      EternalConnection.create(secret, "server"),
    ]);
    this.#sessions.set(toHex(secret.id), server);
    const port = this.port;
    const clientLoop = keepConnected(client, {
      dial: async () => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        conn.setNoDelay(true);
        return conn;
      },
    });
    const pair = { client, server, clientLoop };
    this.#pairs.push(pair);
    // Both ends must hold a pipe: the client attaches after ACCEPT, the
    // server a moment before, so wait for both rather than either.
    const deadline = Date.now() + 10_000;
    while (!(client.connected && server.connected)) {
      if (Date.now() > deadline) throw new Error("pair did not connect");
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    return pair;
  }

  /** Ends every session and the listener. */
  async close(): Promise<void> {
    for (const { client, server } of this.#pairs) {
      client.fail(new Error("benchmark over"));
      server.fail(new Error("benchmark over"));
    }
    this.#listener.close();
    await this.#accepting;
    await Promise.allSettled([...this.#handshakes]);
    await Promise.allSettled(this.#pairs.map((pair) => pair.clientLoop));
    this.#pairs.length = 0;
    this.#sessions.clear();
  }
}
