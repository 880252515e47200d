/**
 * No-root mode: when no `et server` routes clients to it, the user's host
 * process listens on a TCP port of its own, as mosh-server does: the first
 * free port of a range, on the address the client reached over ssh. One
 * port serves all of the host's sessions, told apart by the session id of
 * each connection's HELLO, as the daemon does. Each connection it accepts
 * goes to the same server handshake as one the daemon hands over; only
 * the way in differs.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";
import type { PortRange } from "../session/mod.ts";
import { acceptEach, closeQuietly } from "../transport/mod.ts";

const log = logger("own-port");

/**
 * Most connections in their handshake at once. A client overlaps at most
 * 12 attempts; past the cap the oldest pending connection is dropped for
 * the new one, as the daemon does: an honest client's handshake finishes
 * a round trip or two after its connect, so silent connections age out
 * first, and what unauthenticated peers can make the session hold stays
 * bounded (this many sockets and frame buffers).
 */
export const MAX_PENDING_HANDSHAKES = 64;

/**
 * The address to listen on: the server's side of the ssh connection
 * (`$SSH_CONNECTION` is "client-ip client-port server-ip server-port"),
 * the one address the client is known to reach; all addresses
 * (`0.0.0.0`) only when ssh did not say.
 *
 * @example
 * ```ts
 * listenAddress("203.0.113.9 51234 192.0.2.10 22"); // "192.0.2.10"
 * listenAddress(undefined); // "0.0.0.0"
 * ```
 */
export function listenAddress(sshConnection: string | undefined): string {
  const server = sshConnection?.trim().split(/\s+/)[2];
  if (!server) return "0.0.0.0";
  // An IPv4 client of a dual-stack socket, written the IPv6 way.
  return server.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, "$1");
}

/**
 * Listens on the first free port of `range` on `hostname`. Throws a
 * one-line Error when every port is taken or the address cannot be used.
 */
export function listenInRange(
  hostname: string,
  range: PortRange,
): Deno.TcpListener {
  for (let port = range.first; port <= range.last; port++) {
    try {
      return Deno.listen({ hostname, port });
    } catch (error) {
      if (
        error instanceof Deno.errors.AddrInUse ||
        error instanceof Deno.errors.PermissionDenied
      ) continue;
      throw new Error(
        `cannot listen on ${hostname} port ${port}: ${errorMessage(error)}`,
      );
    }
  }
  throw new Error(
    `no free port in ${range.first}-${range.last} on ${hostname} (--port-range)`,
  );
}

/** `host:port` of an accepted connection's peer, for logs. */
function peerOf(conn: Deno.TcpConn): string {
  const { hostname, port } = conn.remoteAddr;
  return hostname.includes(":")
    ? `[${hostname}]:${port}`
    : `${hostname}:${port}`;
}

/**
 * Hands every connection accepted on `listener` to `handshake` until
 * `signal` aborts, which closes the listener. At most
 * {@link MAX_PENDING_HANDSHAKES} are in their handshake at once (a
 * connection leaves that count when `handshake` settles). Never throws.
 *
 * @example
 * ```ts
 * const listener = listenInRange("127.0.0.1", { first: 2022, last: 2122 });
 * await serveOwnPort(listener, (conn, peer) =>
 *   serverHandshake(conn, lookup, { peer }), signal);
 * ```
 */
export async function serveOwnPort(
  listener: Deno.TcpListener,
  handshake: (conn: Deno.TcpConn, peer: string) => Promise<unknown>,
  signal: AbortSignal,
): Promise<void> {
  // A Set iterates in insertion order: its first entry is the oldest.
  const pending = new Set<Deno.TcpConn>();
  let droppedSince = 0;
  let lastDropLog = -Infinity;
  const stop = () => {
    try {
      listener.close();
    } catch { /* closed */ }
    for (const conn of pending) closeQuietly(conn);
  };
  if (signal.aborted) stop();
  signal.addEventListener("abort", stop, { once: true });
  await acceptEach(listener, (conn) => {
    if (signal.aborted) {
      closeQuietly(conn);
      return;
    }
    if (pending.size >= MAX_PENDING_HANDSHAKES) {
      const oldest: Deno.TcpConn = pending.values().next().value!;
      pending.delete(oldest);
      closeQuietly(oldest);
      droppedSince++;
      // A flood must not flood the log too: a line a second at most.
      if (performance.now() - lastDropLog >= 1000) {
        log.warn(
          `${MAX_PENDING_HANDSHAKES} handshakes pending: dropped the oldest ` +
            `(${droppedSince} since the last line)`,
        );
        lastDropLog = performance.now();
        droppedSince = 0;
      }
    }
    try {
      conn.setNoDelay(true);
    } catch { /* reset already: the handshake finds out */ }
    pending.add(conn);
    handshake(conn, peerOf(conn))
      .catch(() => {})
      .finally(() => pending.delete(conn));
  });
}

/**
 * The host's own ports (no-root mode): one listener per address, shared by
 * every session served on that address whose port range holds its port;
 * a session whose range does not gets a listener of its own range. All of
 * them hand their connections to one handshake, which finds the session
 * by the HELLO's id. They close with `signal` (the host's end), or all at
 * once with {@link OwnPorts.closeAll} (a host left without a session holds
 * no port while it lingers; the next session opens one again).
 *
 * @example
 * ```ts
 * const ports = new OwnPorts(handshake, signal);
 * const port = ports.portFor("127.0.0.1", { first: 2022, last: 2122 });
 * ```
 */
export class OwnPorts {
  readonly #handshake: (conn: Deno.TcpConn, peer: string) => Promise<unknown>;
  readonly #signal: AbortSignal;
  #listeners: { hostname: string; port: number }[] = [];
  /** Stops the listeners open now (closeAll), with the host's signal. */
  #current = new AbortController();
  /** Settles once every listener stopped (after `signal`). */
  readonly serving: Promise<unknown>[] = [];

  /** Listeners hand connections to `handshake` until `signal` aborts. */
  constructor(
    handshake: (conn: Deno.TcpConn, peer: string) => Promise<unknown>,
    signal: AbortSignal,
  ) {
    this.#handshake = handshake;
    this.#signal = signal;
    signal.addEventListener("abort", () => this.#current.abort(), {
      once: true,
    });
  }

  /** Closes every listener (and the handshakes pending on them). */
  closeAll(): void {
    this.#current.abort();
    this.#current = new AbortController();
    if (this.#signal.aborted) this.#current.abort();
    this.#listeners = [];
  }

  /**
   * A port of ours on `hostname` inside `range`: one already listening,
   * else the first free one of the range, opened now. Throws a one-line
   * Error when none is free.
   */
  portFor(hostname: string, range: PortRange): number {
    const open = this.#listeners.find((l) =>
      l.hostname === hostname && l.port >= range.first &&
      l.port <= range.last
    );
    if (open) return open.port;
    const listener = listenInRange(hostname, range);
    const port = listener.addr.port;
    this.#listeners.push({ hostname, port });
    this.serving.push(
      serveOwnPort(listener, this.#handshake, this.#current.signal),
    );
    return port;
  }
}
