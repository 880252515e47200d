/**
 * TunnelMux: one end's tunnel connections over a session. It gives each
 * connection accepted locally a channel and asks the peer to dial, dials
 * for the peer's requests, and splices each local socket to its channel
 * in both directions, with half-close passed on (a local EOF becomes
 * CHANNEL_END, a CHANNEL_END becomes the local socket's write shutdown).
 * Both ends run one; they differ only in their channel ids and in what
 * they agree to dial.
 *
 * @module
 */

import { DeadlineError, withDeadline } from "../deadline.ts";
import { errorMessage, logger } from "../log.ts";
import type { Channel, EternalConnection } from "../transport/mod.ts";
import { CONTROL_CHANNEL, encodeControl } from "./terminal_protocol.ts";
import {
  FIRST_CLIENT_TUNNEL_CHANNEL,
  FIRST_SERVER_TUNNEL_CHANNEL,
  isTunnelChannelOf,
  MAX_TUNNEL_CHANNEL,
  MAX_TUNNEL_CONNECTIONS,
  type TunnelMessage,
  type TunnelSide,
} from "./tunnel_protocol.ts";
import type { TunnelEndpoint } from "./tunnel_spec.ts";

const log = logger("tunnel");

/** Bytes read from a local socket at a time (one channel message). */
const READ_BYTES = 64 * 1024;
/** Channel writes a connection may have waiting at once (8 × 64 KiB). */
const WRITES_IN_FLIGHT = 8;
/** Longest a dial may take before the connection is refused. */
const DIAL_TIMEOUT_MS = 10_000;

/** What a peer's open request asks this side to reach. */
export type OpenRequest =
  | { target: TunnelEndpoint }
  | { tunnel: number };

/** Options of a {@link TunnelMux}. */
export interface TunnelMuxOptions {
  /** Which end this is (it picks even ids as client, odd as server). */
  side: TunnelSide;
  /**
   * Dials what the peer asked for, or throws a one-line Error (the
   * refusal the peer is told). Only called for valid requests.
   */
  dial(request: OpenRequest): Promise<Deno.Conn>;
  /**
   * Told when the peer refused to open a connection this side carried
   * (its one-line reason), e.g. to show it to the user.
   * @default {log it}
   */
  onRefused?(reason: string): void;
}

/** One local socket joined to a channel. */
interface Carried {
  channel: Channel;
  conn: Deno.Conn | null;
  /** Tears the connection down (abort, not half close). */
  abort(tellPeer: boolean): void;
}

/**
 * The tunnel connections of one end of one session.
 *
 * @example
 * ```ts
 * const mux = new TunnelMux({ side: "client", dial: dialReverse });
 * mux.use(connection);
 * mux.carry(acceptedConn, { target: { kind: "tcp", host: "127.0.0.1", port: 80 } });
 * // control reader: if (isTunnel(message)) mux.handle(message);
 * ```
 */
export class TunnelMux {
  readonly #side: TunnelSide;
  readonly #dial: TunnelMuxOptions["dial"];
  readonly #onRefused: (reason: string) => void;
  #connection: EternalConnection | null = null;
  #nextId: number;
  // The peer's ids only rise: an id at or below this was used already.
  #peerHighest = 0;
  readonly #active = new Map<number, Carried>();
  #closed = false;

  /** A mux for one side; give it a connection with `use`. */
  constructor(options: TunnelMuxOptions) {
    this.#side = options.side;
    this.#dial = options.dial;
    this.#onRefused = options.onRefused ?? (() => {});
    this.#nextId = this.#firstId();
  }

  /** Tunnel connections open now. */
  get activeCount(): number {
    return this.#active.size;
  }

  /**
   * Carries connections over `connection` from now on. Connections on a
   * previous one (a session taken over by a new client) are torn down:
   * their channels died with it. Ids start afresh, as the new peer's do.
   */
  use(connection: EternalConnection) {
    if (this.#connection === connection) return;
    for (const carried of [...this.#active.values()]) carried.abort(false);
    this.#active.clear();
    this.#connection = connection;
    this.#nextId = this.#firstId();
    this.#peerHighest = 0;
  }

  /**
   * Carries a connection accepted locally: picks a channel, asks the peer
   * to dial (`request`), and splices. Closes `conn` at once when no
   * session or no id is left, or too many connections are open.
   */
  carry(conn: Deno.Conn, request: OpenRequest) {
    // Keystroke-sized writes (an ssh inside the tunnel) go out at once.
    if (conn.remoteAddr.transport === "tcp") {
      (conn as Deno.TcpConn).setNoDelay(true);
    }
    const connection = this.#connection;
    if (
      this.#closed || connection === null || connection.isClosed ||
      this.#active.size >= MAX_TUNNEL_CONNECTIONS ||
      this.#nextId > MAX_TUNNEL_CHANNEL
    ) {
      log.warn(
        `tunnel connection refused locally: ${
          this.#active.size >= MAX_TUNNEL_CONNECTIONS
            ? `${MAX_TUNNEL_CONNECTIONS} already open`
            : "no session"
        }`,
      );
      closeQuietly(conn);
      return;
    }
    const id = this.#nextId;
    this.#nextId += 2;
    this.#control(connection, { type: "tunnel-open", channel: id, ...request });
    this.#splice(connection, connection.channel(id), conn);
  }

  /** Acts on a tunnel message from the peer. */
  handle(message: TunnelMessage) {
    const connection = this.#connection;
    if (connection === null || this.#closed) return;
    switch (message.type) {
      case "tunnel-open":
        this.#opened(connection, message);
        return;
      case "tunnel-refused": {
        const carried = this.#active.get(message.channel);
        log.warn(
          `tunnel connection ${message.channel} refused: ${message.error}`,
        );
        carried?.abort(false);
        if (carried) this.#onRefused(message.error);
        return;
      }
      case "tunnel-close":
        this.#active.get(message.channel)?.abort(false);
        return;
    }
  }

  /** Tears every tunnel connection down (the session is over). */
  close() {
    this.#closed = true;
    for (const carried of [...this.#active.values()]) carried.abort(false);
    this.#active.clear();
  }

  #firstId(): number {
    return this.#side === "client"
      ? FIRST_CLIENT_TUNNEL_CHANNEL
      : FIRST_SERVER_TUNNEL_CHANNEL;
  }

  #opened(
    connection: EternalConnection,
    message: Extract<TunnelMessage, { type: "tunnel-open" }>,
  ) {
    const id = message.channel;
    const peer = this.#side === "client" ? "server" : "client";
    if (!isTunnelChannelOf(peer, id) || id <= this.#peerHighest) {
      // Not the peer's to pick, or used already: its channel may be live.
      log.warn(`tunnel open on channel ${id} ignored: not a fresh peer id`);
      return;
    }
    this.#peerHighest = id;
    const channel = connection.channel(id);
    if (this.#active.size >= MAX_TUNNEL_CONNECTIONS) {
      this.#refuse(
        connection,
        channel,
        `${MAX_TUNNEL_CONNECTIONS} tunnel connections already open`,
      );
      return;
    }
    // Hold the place (a close may come while dialing).
    let aborted = false;
    const placeholder: Carried = {
      channel,
      conn: null,
      abort: () => {
        aborted = true;
      },
    };
    this.#active.set(id, placeholder);
    const request: OpenRequest = "target" in message
      ? { target: message.target }
      : { tunnel: message.tunnel };
    const dialing = this.#dial(request);
    withDeadline(
      dialing,
      DIAL_TIMEOUT_MS,
      `dial timed out after ${DIAL_TIMEOUT_MS / 1000} s`,
    ).then((conn) => {
      if (
        aborted || this.#closed || this.#connection !== connection ||
        connection.isClosed
      ) {
        closeQuietly(conn);
        if (this.#active.get(id) === placeholder) this.#active.delete(id);
        this.#drainAndEnd(channel);
        return;
      }
      this.#splice(connection, channel, conn);
    }, (error) => {
      // A dial that completes after its deadline must not leak its socket.
      if (error instanceof DeadlineError) dialing.then(closeQuietly, () => {});
      if (this.#active.get(id) === placeholder) this.#active.delete(id);
      log.info(`tunnel ${id}: ${errorMessage(error)}`);
      this.#refuse(connection, channel, errorMessage(error));
    });
  }

  #refuse(connection: EternalConnection, channel: Channel, error: string) {
    this.#control(connection, {
      type: "tunnel-refused",
      channel: channel.id,
      error,
    });
    this.#drainAndEnd(channel);
  }

  /** Ends our side of a channel and reads the peer's to its end, so it is freed. */
  #drainAndEnd(channel: Channel) {
    channel.closeWrite().catch(() => {});
    (async () => {
      try {
        while ((await channel.read()) !== null) { /* discarded */ }
      } catch { /* session over */ }
    })();
  }

  #control(connection: EternalConnection, message: TunnelMessage) {
    connection.channel(CONTROL_CHANNEL).write(encodeControl(message))
      .catch(() => {});
  }

  /** Joins `conn` and `channel` both ways until both directions ended. */
  #splice(connection: EternalConnection, channel: Channel, conn: Deno.Conn) {
    const id = channel.id;
    let torn = false;
    const carried: Carried = {
      channel,
      conn,
      abort: (tellPeer) => {
        if (torn) return;
        torn = true;
        if (tellPeer && !connection.isClosed) {
          this.#control(connection, { type: "tunnel-close", channel: id });
        }
        closeQuietly(conn);
        // The downstream loop stays the channel's only reader (a second
        // one would take its wake-up): it discards the rest to the end.
        channel.closeWrite().catch(() => {});
        if (this.#active.get(id) === carried) this.#active.delete(id);
      },
    };
    this.#active.set(id, carried);
    const upstream = (async () => {
      // Several chunks in flight, so the next read overlaps the sealing of
      // the last (the channel keeps their order) — but no more than the
      // peer's credit covers: a stalled peer leaves one chunk waiting here,
      // not a window's worth.
      const inFlight: Array<{ done: Promise<void>; bytes: number }> = [];
      let queued = 0;
      const settleOne = async () => {
        const oldest = inFlight.shift()!;
        await oldest.done;
        queued -= oldest.bytes;
      };
      try {
        while (true) {
          // A fresh buffer per read: the channel holds on to what it was
          // given until it is sealed, and allocating beats copying.
          const buffer = new Uint8Array(READ_BYTES);
          const n = await conn.read(buffer);
          if (n === null) break;
          const done = channel.write(buffer.subarray(0, n));
          done.catch(() => {}); // awaited in settleOne; never unhandled
          inFlight.push({ done, bytes: n });
          queued += n;
          while (
            inFlight.length >= WRITES_IN_FLIGHT ||
            (inFlight.length > 1 && queued > channel.credit)
          ) await settleOne();
        }
        while (inFlight.length > 0) await settleOne();
        await channel.closeWrite();
        return true;
      } catch {
        return false;
      }
    })();
    const downstream = (async () => {
      // One local write in flight while the next chunk is read (which
      // grants the peer credit sooner); a stalled reader holds one more
      // chunk at most.
      let writing: Promise<void> = Promise.resolve();
      let ok = false;
      try {
        for (let data; (data = await channel.read()) !== null;) {
          if (torn) break;
          await writing;
          writing = writeAll(conn, data);
          writing.catch(() => {}); // awaited on the next turn or below
        }
        await writing;
        if (!torn && !connection.isClosed) {
          await conn.closeWrite();
          ok = true;
        }
      } catch {
        // the local socket failed: torn down below
      }
      if (!ok) {
        // Tell the peer first (it ends its side in answer), then read its
        // side to the end (discarded), so the channel is freed once both
        // directions are over.
        carried.abort(true);
        try {
          while ((await channel.read()) !== null) { /* discarded */ }
        } catch { /* session over */ }
      }
      return ok;
    })();
    // Either direction failing (a reset, the session over) tears both down.
    upstream.then((ok) => ok || carried.abort(true));
    Promise.all([upstream, downstream]).then(([up, down]) => {
      if (!up || !down || torn) return;
      torn = true;
      closeQuietly(conn);
      if (this.#active.get(id) === carried) this.#active.delete(id);
    });
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array) {
  for (let offset = 0; offset < data.length;) {
    offset += await conn.write(data.subarray(offset));
  }
}

function closeQuietly(conn: Deno.Conn) {
  try {
    conn.close();
  } catch { /* closed already */ }
}

/**
 * Dials an endpoint: a TCP host and port (`localhost` tries 127.0.0.1,
 * then ::1) or a Unix socket. Throws a one-line Error.
 */
export async function dialEndpoint(target: TunnelEndpoint): Promise<Deno.Conn> {
  switch (target.kind) {
    case "unix":
      try {
        return await Deno.connect({ transport: "unix", path: target.path });
      } catch (error) {
        throw new Error(
          `cannot connect to ${target.path}: ${errorMessage(error)}`,
        );
      }
    case "tcp": {
      const hosts = target.host === "localhost"
        ? ["127.0.0.1", "::1"]
        : [target.host];
      let last: unknown;
      for (const hostname of hosts) {
        try {
          const conn = await Deno.connect({ hostname, port: target.port });
          conn.setNoDelay(true);
          return conn;
        } catch (error) {
          last = error;
        }
      }
      throw new Error(
        `cannot connect to ${target.host}:${target.port}: ${
          errorMessage(last)
        }`,
      );
    }
    case "env":
      throw new Error("an ENVVAR socket is no target");
  }
}
