/**
 * No-root mode's own port: the address taken from `$SSH_CONNECTION`, the
 * first free port of a range, the cap on connections still in their
 * handshake (the oldest is dropped for a new one), and the host's ports
 * closed all at once while it lingers without a session.
 */

import assert from "node:assert/strict";
import { configureLog } from "../../src/log.ts";
import {
  listenAddress,
  listenInRange,
  MAX_PENDING_HANDSHAKES,
  OwnPorts,
  serveOwnPort,
} from "../../src/terminal/own_port.ts";

// The cap's warning would land among the test output.
configureLog({ level: "silent" });

Deno.test("listenAddress: the server's side of SSH_CONNECTION, else every address", () => {
  assert.equal(listenAddress("203.0.113.9 51234 192.0.2.10 22"), "192.0.2.10");
  assert.equal(
    listenAddress("2001:db8::9 51234 2001:db8::10 22"),
    "2001:db8::10",
  );
  assert.equal(
    listenAddress("::ffff:10.0.0.9 5 ::ffff:10.0.0.1 22"),
    "10.0.0.1",
  );
  assert.equal(listenAddress(undefined), "0.0.0.0");
  assert.equal(listenAddress(""), "0.0.0.0");
  assert.equal(listenAddress("1.2.3.4 5"), "0.0.0.0");
});

Deno.test("listenInRange: the first free port of the range; one line when none is", () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = taken.addr.port;
  try {
    // The range's first port is taken: the next one (if free) is used.
    let next: Deno.TcpListener | undefined;
    try {
      next = listenInRange("127.0.0.1", { first: port, last: port + 1 });
      assert.equal(next.addr.port, port + 1);
    } catch (error) {
      // port + 1 happened to be taken by someone else: the same message.
      assert.match(String(error), /no free port/);
    } finally {
      next?.close();
    }
    assert.throws(
      () => listenInRange("127.0.0.1", { first: port, last: port }),
      new RegExp(`^Error: no free port in ${port}-${port} on 127\\.0\\.0\\.1`),
    );
  } finally {
    taken.close();
  }
});

Deno.test({
  name:
    "serveOwnPort: past the cap the oldest pending connection is dropped; abort closes the listener and the rest",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const listener = listenInRange("127.0.0.1", {
      first: 20_000,
      last: 30_000,
    });
    const port = listener.addr.port;
    const stop = new AbortController();
    let started = 0;
    // A handshake that waits for bytes that never come (a silent peer).
    const serving = serveOwnPort(listener, async (conn) => {
      started++;
      await conn.read(new Uint8Array(1)).catch(() => null);
    }, stop.signal);
    const clients: Deno.TcpConn[] = [];
    for (let i = 0; i <= MAX_PENDING_HANDSHAKES; i++) {
      clients.push(await Deno.connect({ hostname: "127.0.0.1", port }));
      const want = i + 1;
      while (started < want) await new Promise((r) => setTimeout(r, 5));
    }
    // The first (oldest) was closed for the last one; the second was not.
    const buffer = new Uint8Array(1);
    assert.equal(await clients[0].read(buffer), null);
    const second = await Promise.race([
      clients[1].read(buffer),
      new Promise((r) => setTimeout(() => r("open"), 200)),
    ]);
    assert.equal(second, "open");
    stop.abort();
    await serving;
    assert.equal(await clients[1].read(buffer), null, "closed at abort");
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }));
    for (const client of clients) {
      try {
        client.close();
      } catch { /* closed */ }
    }
  },
});

/** True if something accepts TCP connections on 127.0.0.1:`port`. */
async function accepts(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "OwnPorts.closeAll: every listener closes and a later session opens its port again; the host's end stops that one too",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const stop = new AbortController();
    const handshakes: string[] = [];
    const ports = new OwnPorts((conn, peer) => {
      handshakes.push(peer);
      conn.close();
      return Promise.resolve();
    }, stop.signal);
    const range = { first: 20000, last: 40000 };
    const port = ports.portFor("127.0.0.1", range);
    assert.equal(ports.portFor("127.0.0.1", range), port, "one port shared");
    assert.ok(await accepts(port));
    ports.closeAll();
    await Promise.allSettled(ports.serving);
    assert.equal(await accepts(port), false, "no port held after closeAll");
    const again = ports.portFor("127.0.0.1", range);
    assert.ok(await accepts(again), "a new session's port is served");
    stop.abort();
    await Promise.allSettled(ports.serving);
    assert.equal(await accepts(again), false, "the host's end closes it");
    assert.ok(handshakes.length >= 2, `handshakes: ${handshakes}`);
  },
});
