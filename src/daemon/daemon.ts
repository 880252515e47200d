/**
 * `et server`: listens on TCP and routes each connection, by the session id
 * in its clear hello, to that session's terminal process over a Unix
 * socket. It relays sealed bytes only: it never holds a passkey, never sees
 * plaintext, and the handshake's proofs run end to end between the client
 * and the terminal process.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";
import {
  acceptEach,
  closeQuietly,
  encodeFrame,
  FrameReader,
  readHello,
  refuse,
  RefuseCode,
  toHex,
  writeAll,
} from "../transport/mod.ts";
import { SessionRouter } from "./router.ts";
import { checkTerminalSocket } from "./socket_check.ts";

const log = logger("server");

/** Options of {@link startDaemon}. */
export interface DaemonOptions {
  /** TCP port to listen on (0 picks a free one). */
  port: number;
  /**
   * Address to bind.
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /** Path of the router socket that terminal processes register on. */
  routerPath: string;
  /**
   * Longest wait for a new connection's hello.
   * @default {5000}
   */
  helloTimeoutMs?: number;
}

/** A running daemon. */
export interface Daemon {
  /** The TCP port actually bound. */
  port: number;
  /** The session registry. */
  router: SessionRouter;
  /** Stops listening and closes every relayed connection. */
  close(): Promise<void>;
}

/** Starts the daemon; resolves once it listens. */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const router = await SessionRouter.listen(options.routerPath);
  let listener: Deno.TcpListener;
  try {
    listener = Deno.listen({
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port,
    });
  } catch (error) {
    await router.close();
    throw error;
  }
  const port = (listener.addr as Deno.NetAddr).port;
  const open = new Set<Deno.Conn>();
  const relays = new Set<Promise<void>>();
  const accepting = acceptEach(listener, (conn) => {
    open.add(conn);
    const relay = relayConnection(
      conn,
      router,
      options.helloTimeoutMs ?? 5000,
      open,
    ).finally(() => {
      open.delete(conn);
      relays.delete(relay);
    });
    relays.add(relay);
  });
  log.info(
    `listening on ${
      options.hostname ?? "0.0.0.0"
    }:${port}, router ${options.routerPath}`,
  );
  return {
    port,
    router,
    async close() {
      listener.close();
      for (const conn of open) closeQuietly(conn);
      await accepting;
      await Promise.allSettled([...relays]);
      await router.close();
    },
  };
}

/** Handles one client connection from hello to close. Never throws. */
async function relayConnection(
  tcp: Deno.TcpConn,
  router: SessionRouter,
  helloTimeoutMs: number,
  open: Set<Deno.Conn>,
) {
  const peer = `${(tcp.remoteAddr as Deno.NetAddr).hostname}:${
    (tcp.remoteAddr as Deno.NetAddr).port
  }`;
  try {
    tcp.setNoDelay(true);
  } catch {
    // already dead: the hello read below finds out and cleans up.
  }
  const frames = new FrameReader(tcp);
  const timer = setTimeout(() => closeQuietly(tcp), helloTimeoutMs);
  let unix: Deno.Conn | null = null;
  try {
    let hello;
    try {
      hello = await readHello(frames);
    } catch (error) {
      log.warn(`${peer}: refused: ${errorMessage(error)}`);
      await refuse(tcp, RefuseCode.Malformed, "expected a hello");
      return;
    } finally {
      clearTimeout(timer);
    }
    const idHex = toHex(hello.hello.sessionId);
    const registration = router.lookup(idHex);
    if (!registration) {
      log.warn(`${peer}: refused unknown session ${idHex.slice(0, 8)}`);
      await refuse(tcp, RefuseCode.UnknownSession, "unknown session");
      return;
    }
    try {
      // Checked again now: the registrant owns that directory and could
      // have swapped the socket since it registered.
      await checkTerminalSocket(registration.socketPath);
      unix = await Deno.connect({
        transport: "unix",
        path: registration.socketPath,
      });
    } catch (error) {
      log.warn(
        `${peer}: session ${idHex.slice(0, 8)} unreachable: ${
          errorMessage(error)
        }`,
      );
      await refuse(tcp, RefuseCode.UnknownSession, "session unreachable");
      return;
    }
    open.add(unix);
    log.info(`${peer}: relaying session ${idHex.slice(0, 8)}`);
    // Forward the hello and anything read after it, then relay blindly.
    await writeAll(unix, encodeFrame(hello.body));
    const rest = frames.takeBuffered();
    if (rest.length > 0) await writeAll(unix, rest);
    const a = pump(tcp, unix);
    const b = pump(unix, tcp);
    await Promise.race([a, b]);
    closeQuietly(tcp);
    closeQuietly(unix);
    await Promise.allSettled([a, b]);
  } catch (error) {
    log.info(`${peer}: relay ended: ${errorMessage(error)}`);
  } finally {
    closeQuietly(tcp);
    if (unix) {
      closeQuietly(unix);
      open.delete(unix);
    }
  }
}

async function pump(from: Deno.Conn, to: Deno.Conn) {
  const buffer = new Uint8Array(64 * 1024);
  try {
    for (let n; (n = await from.read(buffer)) !== null;) {
      await writeAll(to, buffer.subarray(0, n));
    }
  } catch {
    // either side closed: the caller closes both.
  }
}
