/**
 * `et server`: listens on TCP, reads each connection's clear HELLO, and
 * hands the connection itself (its socket descriptor, SCM_RIGHTS) to the
 * terminal process registered for that session id. After that the daemon
 * is out of the data path: the client and the terminal talk over the
 * client's own TCP connection. It never holds a passkey, never sees
 * plaintext, never connects to anything a user names; the handshake's
 * proofs run end to end between client and terminal.
 *
 * Before a connection is handed over it costs a descriptor, a timer and a
 * HELLO-sized buffer, within caps (`pending.ts`) and a deadline.
 *
 * @module
 */

import { errorMessage, logger, RefusalLog } from "../log.ts";
import { encodeFrame, encodeRefuse, RefuseCode } from "../transport/mod.ts";
import { acceptEachFd } from "../platform/accept_loop.ts";
import {
  type Accepted,
  closeSocket,
  type PeerAddress,
  raiseDescriptorLimit,
  sendSome,
  setNoDelay,
} from "../platform/socket.ts";
import { readHelloFrame } from "./hello.ts";
import { bindListeners, type BoundListeners } from "./listeners.ts";
import {
  MAX_PENDING,
  MAX_PENDING_PER_SOURCE,
  PendingConnections,
  sourceKey,
} from "./pending.ts";
import { MAX_ROUTER_CONNECTIONS, SessionRouter } from "./router.ts";

const log = logger("server");

/** Options of {@link startDaemon}. */
export interface DaemonOptions {
  /** TCP port to listen on (0 picks a free one). */
  port: number;
  /**
   * Addresses to bind (IP addresses or names to resolve), all on `port`.
   * @default {DEFAULT_BIND_ADDRESSES} (`0.0.0.0` and `::`; IPv4 only on a
   * host without IPv6)
   */
  hostname?: string | readonly string[];
  /** Path of the router socket that terminal processes register on. */
  routerPath: string;
  /**
   * Directory that keeps which user registered which session id, so a
   * restarted daemon gives ids back only to their users; null keeps it in
   * memory only.
   * @default {routerPath + ".sessions"}
   */
  stateDir?: string | null;
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
  /** The addresses bound (IP literals), all on {@link port}. */
  addresses: string[];
  /** The session registry and router socket. */
  router: SessionRouter;
  /** How many connections are waiting for their hello right now. */
  readonly pending: number;
  /** Stops listening and closes every connection not yet handed over. */
  close(): Promise<void>;
}

/** Starts the daemon; resolves once it listens. */
export async function startDaemon(options: DaemonOptions): Promise<Daemon> {
  const helloTimeoutMs = options.helloTimeoutMs ?? 5000;
  const descriptors = raiseDescriptorLimit();
  // Router connections get what the pending connections, the listeners
  // and Deno itself leave of the descriptor limit.
  const maxConnections = Math.max(
    64,
    Math.min(MAX_ROUTER_CONNECTIONS, descriptors - MAX_PENDING - 256),
  );
  if (maxConnections < MAX_ROUTER_CONNECTIONS) {
    log.warn(
      `descriptor limit ${descriptors}: at most ${maxConnections} router connections`,
    );
  }
  const router = await SessionRouter.listen(options.routerPath, {
    stateDir: options.stateDir,
    maxConnections,
  });
  let bound: BoundListeners;
  try {
    bound = await bindListeners({
      addresses: typeof options.hostname === "string"
        ? [options.hostname]
        : options.hostname,
      port: options.port,
      log,
    });
  } catch (error) {
    await router.close();
    throw error;
  }
  const pending = new PendingConnections();
  const refusals = new RefusalLog(log);
  const stop = new AbortController();
  const routing = new Set<Promise<void>>();
  const accepting = bound.listeners.map((listener) =>
    acceptEachFd(listener.fd, (connection) => {
      const done = routeConnection(connection, {
        router,
        pending,
        refusals,
        helloTimeoutMs,
      }).finally(() => routing.delete(done));
      routing.add(done);
    }, {
      signal: stop.signal,
      onError: (error) =>
        refusals.refused(
          "accept failed",
          `accept failed: ${errorMessage(error)}`,
        ),
    })
  );
  const addresses = bound.listeners.map((l) => l.address);
  log.info(
    `listening on ${
      addresses.map((a) => hostPort(a, bound.port)).join(", ")
    }, router ${options.routerPath}`,
  );
  return {
    port: bound.port,
    addresses,
    router,
    get pending() {
      return pending.size;
    },
    async close() {
      stop.abort();
      await Promise.all(accepting);
      for (const listener of bound.listeners) closeSocket(listener.fd);
      pending.clear();
      await Promise.allSettled([...routing]);
      await router.close();
    },
  };
}

interface RouteContext {
  router: SessionRouter;
  pending: PendingConnections;
  refusals: RefusalLog;
  helloTimeoutMs: number;
}

/**
 * One client connection from accept to hand-over (or refusal). Never
 * throws; always closes the daemon's descriptor.
 */
async function routeConnection(
  { fd, peer }: Accepted,
  { router, pending, refusals, helloTimeoutMs }: RouteContext,
) {
  const from = describePeer(peer);
  const source = sourceKey(peer);
  const { slot, evicted } = pending.admit(source);
  if (evicted === "source full") {
    refusals.refused(
      "pending per source",
      `${from}: dropped the oldest connection from ${source} still without a hello (${MAX_PENDING_PER_SOURCE} pending from there)`,
    );
  } else if (evicted === "all full") {
    refusals.refused(
      "pending in all",
      `${from}: dropped the oldest connection still without a hello (${MAX_PENDING} pending in all)`,
    );
  }
  try {
    try {
      setNoDelay(fd); // inherited by the terminal's copy
    } catch {
      // already dead: the read below finds out.
    }
    const outcome = await readHelloFrame(fd, slot.signal, helloTimeoutMs);
    switch (outcome.kind) {
      case "closed":
      case "aborted":
        return;
      case "timeout":
        refusals.refused(
          "hello timeout",
          `${from}: closed, no hello within ${helloTimeoutMs} ms`,
        );
        return;
      case "malformed":
        refusals.refused("malformed", `${from}: refused: ${outcome.reason}`);
        sendRefusal(fd, RefuseCode.Malformed, "expected a hello");
        return;
    }
    const tag = outcome.sessionId.slice(0, 8);
    const registration = router.lookup(outcome.sessionId);
    if (!registration) {
      refusals.refused(
        "unknown session",
        `${from}: refused unknown session ${tag}`,
      );
      sendRefusal(fd, RefuseCode.UnknownSession, "unknown session");
      return;
    }
    const failure = registration.handOver(fd, outcome.frame, from);
    if (failure) {
      refusals.refused(
        "hand-over failed",
        `${from}: session ${tag} unreachable: its terminal is ${failure}`,
      );
      sendRefusal(fd, RefuseCode.UnknownSession, "session unreachable");
      return;
    }
    log.info(
      `${from}: handed session ${tag} to its terminal (uid ${registration.owner.uid})`,
    );
  } catch (error) {
    log.warn(`${from}: ${errorMessage(error)}`);
  } finally {
    slot.release();
    closeSocket(fd);
  }
}

/**
 * Sends a plain REFUSE without waiting (a fresh socket's buffer always
 * has room for it); the caller closes.
 */
function sendRefusal(fd: number, code: number, reason: string) {
  try {
    sendSome(fd, encodeFrame(encodeRefuse({ code, reason })));
  } catch {
    // the peer is gone already.
  }
}

function describePeer(peer: PeerAddress | null): string {
  if (!peer) return "unknown peer";
  return hostPort(peer.address, peer.port);
}

/** `addr:port`, IPv6 in brackets. */
function hostPort(address: string, port: number): string {
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}
