/**
 * Builds a real client/server session pair over loopback TCP, optionally
 * through something in between (the fault proxy, a recorder), for tests.
 *
 * @module
 */

import { createHash } from "node:crypto";
import {
  acceptEach,
  type BytePipe,
  EternalConnection,
  type EternalConnectionOptions,
  generateSessionSecret,
  keepConnected,
  serverHandshake,
  type SessionSecret,
} from "../../src/transport/mod.ts";

/** A connected pair and the means to take it apart. */
export interface SessionPair {
  secret: SessionSecret;
  client: EternalConnection;
  server: EternalConnection;
  /** Port the server's listener is on. */
  serverPort: number;
  /** The client's reconnect loop; settles when the client session ends. */
  clientLoop: Promise<void>;
  /** Ends both sessions and the listener. */
  stop(): Promise<void>;
}

/** Options of {@link startSessionPair}. */
export interface SessionPairOptions {
  connection?: EternalConnectionOptions;
  /** Given the server's port, returns the port the client should dial. */
  via?: (serverPort: number) => Promise<number> | number;
  /** Wraps each dialed pipe (e.g. to record what the client sends). */
  wrapClientPipe?: (pipe: Deno.TcpConn) => BytePipe;
  /** Secret the server holds (defaults to the client's). */
  serverSecret?: SessionSecret;
}

/** Starts a server listener with one session and a client dialing it. */
export async function startSessionPair(
  options: SessionPairOptions = {},
): Promise<SessionPair> {
  const secret = generateSessionSecret();
  const client = await EternalConnection.create(
    secret,
    "client",
    options.connection,
  );
  const server = await EternalConnection.create(
    options.serverSecret ?? secret,
    "server",
    options.connection,
  );
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serverPort = (listener.addr as Deno.NetAddr).port;
  const handshakes = new Set<Promise<unknown>>();
  const accepting = acceptEach(listener, (conn) => {
    const handshake = serverHandshake(conn, () => server);
    handshakes.add(handshake);
    handshake.finally(() => handshakes.delete(handshake));
  });
  const dialPort = options.via ? await options.via(serverPort) : serverPort;
  const clientLoop = keepConnected(client, {
    dial: async () => {
      const conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: dialPort,
      });
      conn.setNoDelay(true);
      return options.wrapClientPipe ? options.wrapClientPipe(conn) : conn;
    },
  });
  return {
    secret,
    client,
    server,
    serverPort,
    clientLoop,
    async stop() {
      client.fail(new Error("test over"));
      server.fail(new Error("test over"));
      listener.close();
      await accepting;
      await Promise.allSettled([...handshakes]);
      await clientLoop;
      // let closed sockets' pending reads settle before sanitizers look.
      await new Promise((resolve) => setTimeout(resolve, 20));
    },
  };
}

/** Waits until `condition()` holds, polling; throws after `timeoutMs`. */
export async function waitUntil(
  condition: () => boolean,
  timeoutMs = 10_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Deterministic pseudo-random bytes (xorshift), cheap to regenerate. */
export function patternBytes(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Incremental hex sha256 (node:crypto), so 100 MB need not be held. */
export class StreamHash {
  #hash = createHash("sha256");
  #size = 0;
  /** Bytes fed so far. */
  get size(): number {
    return this.#size;
  }
  /** Adds bytes. */
  update(chunk: Uint8Array) {
    this.#hash.update(chunk);
    this.#size += chunk.length;
  }
  /** Hex digest of everything fed. */
  digest(): string {
    return this.#hash.digest("hex");
  }
}
