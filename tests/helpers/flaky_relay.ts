/**
 * A tiny stand-in for `et server` (the daemon): it reads each connection's
 * hello and either relays it to the terminal's listener or, while "down"
 * (the daemon restarting, the terminal not yet registered again), answers
 * a plain REFUSE(unknown session) as the real daemon does.
 *
 * @module
 */

import {
  acceptEach,
  encodeFrame,
  FrameReader,
  readHello,
  refuse,
  RefuseCode,
  writeAll,
} from "../../src/transport/mod.ts";

/** Relays to `targetPort` on 127.0.0.1 unless told to refuse. */
export class FlakyRelay {
  /** Port clients dial, on 127.0.0.1. */
  readonly port: number;
  /** Connections refused so far. */
  refused = 0;
  #listener: Deno.TcpListener;
  #loop: Promise<void>;
  #targetPort: number;
  #refusing = false;
  #open = new Set<Deno.Conn>();
  #tasks = new Set<Promise<void>>();

  /** Starts listening; relays to `targetPort`. */
  constructor(targetPort: number) {
    this.#targetPort = targetPort;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#loop = acceptEach(this.#listener, (conn) => {
      const task = this.#serve(conn);
      this.#tasks.add(task);
      task.finally(() => this.#tasks.delete(task));
    });
  }

  /** While on, every hello is refused as an unknown session. */
  setRefusing(on: boolean) {
    this.#refusing = on;
  }

  /** Closes every relayed connection (as a daemon restart does). */
  cutAll() {
    for (const conn of this.#open) {
      try {
        conn.close();
      } catch { /* already */ }
    }
    this.#open.clear();
  }

  /** Stops listening and closes everything. */
  async close() {
    this.#listener.close();
    await this.#loop;
    this.cutAll();
    await Promise.allSettled([...this.#tasks]);
  }

  async #serve(inbound: Deno.TcpConn) {
    const frames = new FrameReader(inbound);
    let hello;
    try {
      hello = await readHello(frames);
    } catch {
      await refuse(inbound, RefuseCode.Malformed, "expected a hello");
      return;
    }
    if (this.#refusing) {
      this.refused++;
      await refuse(inbound, RefuseCode.UnknownSession, "unknown session");
      return;
    }
    let outbound: Deno.TcpConn;
    try {
      outbound = await Deno.connect({
        hostname: "127.0.0.1",
        port: this.#targetPort,
      });
    } catch {
      await refuse(inbound, RefuseCode.UnknownSession, "session unreachable");
      return;
    }
    this.#open.add(inbound);
    this.#open.add(outbound);
    const pump = async (from: Deno.Conn, to: Deno.Conn, first: Uint8Array) => {
      try {
        await writeAll(to, first);
        const buffer = new Uint8Array(64 * 1024);
        for (let n; (n = await from.read(buffer)) !== null;) {
          await writeAll(to, buffer.subarray(0, n));
        }
      } catch { /* either side closed */ }
      for (const conn of [from, to]) {
        try {
          conn.close();
        } catch { /* already */ }
        this.#open.delete(conn);
      }
    };
    const rest = frames.takeBuffered();
    await Promise.all([
      pump(
        inbound,
        outbound,
        new Uint8Array([...encodeFrame(hello.body), ...rest]),
      ),
      pump(outbound, inbound, new Uint8Array()),
    ]);
  }
}
