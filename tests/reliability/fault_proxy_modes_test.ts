/**
 * The fault proxy's modes the reliability runs added: half-open paths
 * (one direction dropped silently, the other flowing), taps that see the
 * chunks and the pair, and rewriting what a pair forwards.
 */

import assert from "node:assert/strict";
import { FaultProxy } from "../helpers/fault_proxy.ts";

const HOST = "127.0.0.1";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

async function setup() {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const proxy = await FaultProxy.start({ targetPort: listener.addr.port });
  const connect = async (): Promise<[Deno.TcpConn, Deno.TcpConn]> => {
    const client = await Deno.connect({ hostname: HOST, port: proxy.port });
    return [client, await listener.accept()];
  };
  return {
    proxy,
    connect,
    async close() {
      await proxy.close();
      listener.close();
    },
  };
}

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function readSome(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(65536);
  const n = await conn.read(buffer);
  return n === null ? "" : decoder.decode(buffer.subarray(0, n));
}

Deno.test("setHalfOpen('up') drops client bytes silently while server bytes flow; new pairs after null are whole", async () => {
  const s = await setup();
  try {
    const [client, server] = await s.connect();
    await client.write(encoder.encode("before"));
    assert.equal(await readSome(server), "before");
    s.proxy.setHalfOpen("up");
    s.proxy.setHalfOpen(null);
    const upBefore = s.proxy.stats.bytesUp;
    await client.write(encoder.encode("lost"));
    await server.write(encoder.encode("down-flows"));
    assert.equal(await readSome(client), "down-flows");
    await sleep(200);
    assert.equal(s.proxy.stats.bytesUp, upBefore, "nothing went up");
    // The server's FIN still reaches the client; the pair then closes.
    server.closeWrite();
    assert.equal(await readSome(client), "");
    client.close();
    // A new connection goes through whole, both ways.
    const [c2, s2] = await s.connect();
    await c2.write(encoder.encode("up-again"));
    assert.equal(await readSome(s2), "up-again");
    await s2.write(encoder.encode("down-again"));
    assert.equal(await readSome(c2), "down-again");
    c2.close();
    s2.close();
  } finally {
    await s.close();
  }
});

Deno.test("setHalfOpen('down') drops server bytes silently while client bytes and FIN flow", async () => {
  const s = await setup();
  try {
    const [client, server] = await s.connect();
    s.proxy.setHalfOpen("down");
    const downBefore = s.proxy.stats.bytesDown;
    await server.write(encoder.encode("lost"));
    await client.write(encoder.encode("up-flows"));
    assert.equal(await readSome(server), "up-flows");
    await sleep(200);
    assert.equal(s.proxy.stats.bytesDown, downBefore, "nothing came down");
    s.proxy.setHalfOpen(null);
    // The client's FIN travels the live direction.
    client.close();
    assert.equal(await readSome(server), "", "end of stream");
    server.close();
  } finally {
    await s.close();
  }
});

Deno.test("the tap sees each chunk and its pair's number; pairs lists the open ones", async () => {
  const s = await setup();
  try {
    const seen: string[] = [];
    s.proxy.setTap((up, bytes, chunk, pair) => {
      seen.push(
        `${pair}:${up ? "up" : "down"}:${bytes}:${decoder.decode(chunk)}`,
      );
    });
    const [c1, s1] = await s.connect();
    const [c2, s2] = await s.connect();
    assert.deepEqual(s.proxy.pairs, [1, 2]);
    await c1.write(encoder.encode("one"));
    assert.equal(await readSome(s1), "one");
    await s2.write(encoder.encode("two"));
    assert.equal(await readSome(c2), "two");
    assert.deepEqual(seen, ["1:up:3:one", "2:down:3:two"]);
    s.proxy.cut();
    assert.deepEqual(s.proxy.pairs, []);
    for (const conn of [c1, s1, c2, s2]) conn.close();
  } finally {
    await s.close();
  }
});

Deno.test("setRewrite changes, holds back and adds bytes, in order", async () => {
  const s = await setup();
  try {
    let held: Uint8Array | null = null;
    s.proxy.setRewrite((chunk, up) => {
      if (!up) return chunk;
      const text = decoder.decode(chunk);
      if (text === "hold") {
        held = chunk;
        return new Uint8Array(0);
      }
      const out = encoder.encode(
        (held ? decoder.decode(held) : "") + text.toUpperCase() + "!",
      );
      held = null;
      return out;
    });
    const [client, server] = await s.connect();
    const upBefore = s.proxy.stats.bytesUp;
    await client.write(encoder.encode("hold"));
    await sleep(100);
    assert.equal(s.proxy.stats.bytesUp, upBefore, "held back");
    await client.write(encoder.encode("abc"));
    assert.equal(await readSome(server), "holdABC!");
    await server.write(encoder.encode("down as is"));
    assert.equal(await readSome(client), "down as is");
    client.close();
    server.close();
  } finally {
    await s.close();
  }
});
