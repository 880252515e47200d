/**
 * The epoll reactor with real sockets: readiness, cancellation, many
 * descriptors at once, and no FFI call left pending once nobody waits
 * (the test sanitizers would report a leaked op).
 */
import assert from "node:assert/strict";
import { reactor } from "../../src/platform/reactor.ts";
import {
  accept,
  closeSocket,
  connectUnix,
  listenUnix,
  receive,
  sendSome,
} from "../../src/platform/socket.ts";

async function pairs(count: number) {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/r.sock`;
  const listener = listenUnix(path);
  const out: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    const a = connectUnix(path);
    let b = accept(listener);
    while (!b) {
      await reactor().readable(listener);
      b = accept(listener);
    }
    out.push([a, b.fd]);
  }
  closeSocket(listener);
  await Deno.remove(dir, { recursive: true });
  return out;
}

Deno.test("reactor: readable on data, false on abort and on forget, idle after", async () => {
  const [[a, b]] = await pairs(1);
  try {
    const waiting = reactor().readable(b);
    assert.equal(reactor().waiting, 1);
    sendSome(a, new Uint8Array([1]));
    assert.equal(await waiting, true);
    assert.equal(receive(b, new Uint8Array(4)), 1);

    const stop = new AbortController();
    const aborted = reactor().readable(b, stop.signal);
    stop.abort();
    assert.equal(await aborted, false);

    const forgotten = reactor().readable(b);
    reactor().forget(b);
    assert.equal(await forgotten, false);

    // Readable again after a forget; and a hang-up counts as readable.
    const hangup = reactor().readable(b);
    closeSocket(a);
    assert.equal(await hangup, true);
    assert.equal(receive(b, new Uint8Array(4)), 0);
    await reactor().idle();
    assert.equal(reactor().waiting, 0);
  } finally {
    closeSocket(b);
  }
});

Deno.test("reactor: hundreds of descriptors wait on one thread and each wakes once ready", async () => {
  const all = await pairs(300);
  try {
    const woken = all.map(([, b]) => reactor().readable(b));
    assert.equal(reactor().waiting, 300);
    const order = [...all.keys()].sort(() => Math.random() - 0.5);
    for (const i of order) sendSome(all[i][0], new Uint8Array([i & 0xff]));
    assert.deepEqual(await Promise.all(woken), all.map(() => true));
    for (const [i, [, b]] of all.entries()) {
      const byte = new Uint8Array(1);
      assert.equal(receive(b, byte), 1);
      assert.equal(byte[0], i & 0xff);
    }
    await reactor().idle();
  } finally {
    for (const [a, b] of all) {
      closeSocket(a);
      closeSocket(b);
    }
  }
});
