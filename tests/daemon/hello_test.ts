/**
 * The daemon's hello reader: exactly a HELLO's bytes, whatever the peer
 * announces or sends after it.
 */
import assert from "node:assert/strict";
import { HELLO_FRAME_BYTES, readHelloFrame } from "../../src/daemon/hello.ts";
import {
  accept,
  closeSocket,
  listenUnix,
  receive,
  WOULD_BLOCK,
} from "../../src/platform/socket.ts";
import { reactor } from "../../src/platform/reactor.ts";
import {
  type BytePipe,
  clientHandshake,
  encodeFrame,
  EternalConnection,
  generateSessionSecret,
  toHex,
} from "../../src/transport/mod.ts";

/** A connected pair of Unix sockets: [ours to write, the daemon's side]. */
async function pair(): Promise<[Deno.Conn, number, () => Promise<void>]> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/h.sock`;
  const listener = listenUnix(path);
  const conn = await Deno.connect({ transport: "unix", path });
  let accepted = accept(listener);
  while (!accepted) {
    await reactor().readable(listener);
    accepted = accept(listener);
  }
  closeSocket(listener);
  const fd = accepted.fd;
  return [conn, fd, async () => {
    try {
      conn.close();
    } catch { /* closed */ }
    closeSocket(fd);
    await Deno.remove(dir, { recursive: true });
  }];
}

/** The first frame a real client sends. */
async function realHello(): Promise<Uint8Array> {
  const secret = generateSessionSecret();
  const connection = await EternalConnection.create(secret, "client");
  let first: Uint8Array | null = null;
  let hangUp = () => {};
  const closed = new Promise<null>((resolve) => hangUp = () => resolve(null));
  const pipe: BytePipe = {
    read: () => closed,
    write: (data) => {
      first ??= data.slice();
      return Promise.resolve(data.length);
    },
    close: () => hangUp(),
  };
  const stop = new AbortController();
  const attempt = clientHandshake(connection, pipe, stop.signal).catch(
    () => {},
  );
  while (!first) await new Promise((r) => setTimeout(r, 1));
  stop.abort();
  await attempt;
  connection.fail(new Error("done"));
  return first;
}

Deno.test("hello: the size the daemon reads is the size a client sends", async () => {
  const hello = await realHello();
  assert.equal(hello.length, HELLO_FRAME_BYTES);
});

Deno.test("hello: read whole, in pieces, and not a byte further", async () => {
  const [conn, fd, done] = await pair();
  try {
    const hello = await realHello();
    const reading = readHelloFrame(fd, new AbortController().signal, 5000);
    await conn.write(hello.subarray(0, 3));
    await new Promise((r) => setTimeout(r, 20));
    await conn.write(hello.subarray(3, 30));
    await new Promise((r) => setTimeout(r, 20));
    await conn.write(new Uint8Array([...hello.subarray(30), 0xaa, 0xbb]));
    const outcome = await reading;
    assert.equal(outcome.kind, "hello");
    if (outcome.kind !== "hello") return;
    assert.deepEqual(outcome.frame, hello);
    assert.equal(outcome.sessionId, toHex(hello.subarray(6, 22)));
    // What follows the hello is still in the socket.
    const rest = new Uint8Array(8);
    let n = receive(fd, rest);
    while (n === WOULD_BLOCK) {
      await reactor().readable(fd);
      n = receive(fd, rest);
    }
    assert.deepEqual(rest.subarray(0, n), new Uint8Array([0xaa, 0xbb]));
  } finally {
    await done();
  }
});

Deno.test("hello: a header announcing anything else is refused at once", async () => {
  for (const length of [128 * 1024, 0, 49, 51, 0xffffffff]) {
    const [conn, fd, done] = await pair();
    try {
      const header = new Uint8Array(4);
      new DataView(header.buffer).setUint32(0, length);
      const started = performance.now();
      const reading = readHelloFrame(fd, new AbortController().signal, 5000);
      await conn.write(header);
      const outcome = await reading;
      assert.equal(outcome.kind, "malformed", `length ${length}`);
      assert.ok(performance.now() - started < 1000);
    } finally {
      await done();
    }
  }
  // The right length but another frame type.
  const [conn, fd, done] = await pair();
  try {
    const reading = readHelloFrame(fd, new AbortController().signal, 5000);
    await conn.write(encodeFrame(new Uint8Array(50).fill(0x10)));
    assert.equal((await reading).kind, "malformed");
  } finally {
    await done();
  }
});

Deno.test("hello: silence times out, an abort ends the wait, an early close is closed", async () => {
  {
    const [, fd, done] = await pair();
    const started = performance.now();
    const outcome = await readHelloFrame(fd, new AbortController().signal, 200);
    assert.equal(outcome.kind, "timeout");
    assert.ok(performance.now() - started >= 190);
    await done();
  }
  {
    const [, fd, done] = await pair();
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 50);
    assert.equal((await readHelloFrame(fd, stop.signal, 5000)).kind, "aborted");
    await done();
  }
  {
    const [conn, fd, done] = await pair();
    conn.close();
    assert.equal(
      (await readHelloFrame(fd, new AbortController().signal, 5000)).kind,
      "closed",
    );
    await done();
  }
  {
    const [conn, fd, done] = await pair();
    const header = new Uint8Array(10);
    new DataView(header.buffer).setUint32(0, 50);
    header[4] = 1;
    await conn.write(header);
    conn.close();
    assert.equal(
      (await readHelloFrame(fd, new AbortController().signal, 5000)).kind,
      "malformed",
    );
    await done();
  }
  await reactor().idle();
});
