import assert from "node:assert/strict";
import {
  deriveSessionKeys,
  generateSessionSecret,
  open,
  seal,
} from "../../src/transport/mod.ts";
import { openPacket, sealPacket } from "../../src/transport/packet.ts";
import { FrameType } from "../../src/transport/wire.ts";

const header = new Uint8Array([0x10, 0, 0, 0, 0, 0, 0, 0, 5]);
const message = new TextEncoder().encode("the quick brown fox");

Deno.test("what the client seals, the server opens, and back", async () => {
  const secret = generateSessionSecret();
  const client = await deriveSessionKeys(secret, "client");
  const server = await deriveSessionKeys(secret, "server");
  const sealed = await seal(client.send, 0, 5, header, message);
  assert.deepEqual(await open(server.receive, 0, 5, header, sealed), message);
  const back = await seal(server.send, 0, 5, header, message);
  assert.deepEqual(await open(client.receive, 0, 5, header, back), message);
  // The two directions use different keys: a reflected packet fails.
  assert.equal(await open(client.receive, 0, 5, header, sealed), null);
});

Deno.test("every tampered byte of header or sealed body is refused", async () => {
  const secret = generateSessionSecret();
  const client = await deriveSessionKeys(secret, "client");
  const server = await deriveSessionKeys(secret, "server");
  const sealed = await seal(client.send, 0, 5, header, message);
  for (let i = 0; i < sealed.length; i++) {
    const bad = sealed.slice();
    bad[i] ^= 0x01;
    assert.equal(
      await open(server.receive, 0, 5, header, bad),
      null,
      `byte ${i}`,
    );
  }
  for (let i = 0; i < header.length; i++) {
    const bad = header.slice();
    bad[i] ^= 0x80;
    assert.equal(await open(server.receive, 0, 5, bad, sealed), null);
  }
  // The counter is the nonce: the same bytes under another counter fail.
  assert.equal(await open(server.receive, 0, 6, header, sealed), null);
  assert.equal(await open(server.receive, 1, 5, header, sealed), null);
});

Deno.test("a different passkey or session id cannot open", async () => {
  const secret = generateSessionSecret();
  const client = await deriveSessionKeys(secret, "client");
  const sealed = await seal(client.send, 0, 1, header, message);
  const otherPasskey = await deriveSessionKeys(
    { id: secret.id, passkey: generateSessionSecret().passkey },
    "server",
  );
  assert.equal(await open(otherPasskey.receive, 0, 1, header, sealed), null);
  const otherId = await deriveSessionKeys(
    { id: generateSessionSecret().id, passkey: secret.passkey },
    "server",
  );
  assert.equal(await open(otherId.receive, 0, 1, header, sealed), null);
});

Deno.test("the same plaintext under different counters never repeats", async () => {
  const keys = await deriveSessionKeys(generateSessionSecret(), "client");
  const seen = new Set<string>();
  for (let counter = 0; counter < 200; counter++) {
    for (const space of [0, 1]) {
      const sealed = await seal(keys.send, space, counter, header, message);
      const hex = [...sealed].join(",");
      assert.ok(!seen.has(hex));
      seen.add(hex);
    }
  }
});

Deno.test("small packets sealed synchronously are byte-identical to WebCrypto's", async () => {
  const secret = generateSessionSecret();
  const client = await deriveSessionKeys(secret, "client");
  const server = await deriveSessionKeys(secret, "server");
  for (const size of [0, 1, 100, 4096, 4097, 70_000]) {
    const plain = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
    const big = size > 65536 ? new Uint8Array(size) : plain;
    const sealed = await seal(client.send, 0, size, header, big);
    // The nonce layout of PROTOCOL.md: 4-byte space (0), 8-byte counter.
    const iv = new Uint8Array(12);
    new DataView(iv.buffer).setBigUint64(4, BigInt(size));
    const reference = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv, additionalData: header },
        client.send.crypto,
        big,
      ),
    );
    assert.deepEqual(sealed, reference, `size ${size}`);
    assert.deepEqual(await open(server.receive, 0, size, header, sealed), big);
  }
});

Deno.test("OpenSSL's sealing is the same AES-GCM as WebCrypto's and node:crypto's, both ways, at every size", async () => {
  const secret = generateSessionSecret();
  const client = await deriveSessionKeys(secret, "client");
  const server = await deriveSessionKeys(secret, "server");
  // This machine has OpenSSL 3: the fast path must be the one under test
  // (opened on a key's first packet).
  await seal(client.send, 1, 0, header, message);
  await open(server.receive, 1, 0, header, new Uint8Array(16));
  assert.ok(client.send.gcm, "libcrypto.so.3 opened");
  assert.ok(server.receive.gcm, "libcrypto.so.3 opened");
  // The same keys without OpenSSL: the node:crypto and WebCrypto paths.
  const plainSend = { ...client.send, gcm: null };
  const plainReceive = { ...server.receive, gcm: null };
  for (const size of [0, 1, 15, 16, 17, 4096, 4097, 65536, 128 * 1024]) {
    const data = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
    const body = size > 65536
      ? new Uint8Array([...data, ...data]).subarray(0, size)
      : data;
    const fast = await seal(client.send, 0, size, header, body);
    const slow = await seal(plainSend, 0, size, header, body);
    assert.deepEqual(fast, slow, `sealed alike at ${size} bytes`);
    assert.deepEqual(await open(plainReceive, 0, size, header, fast), body);
    assert.deepEqual(await open(server.receive, 0, size, header, slow), body);
    const bad = fast.slice();
    bad[bad.length - 1] ^= 1;
    assert.equal(await open(server.receive, 0, size, header, bad), null);
  }
});

Deno.test("a packet sealed from parts in place is the packet sealed from their concatenation, with OpenSSL and without", async () => {
  const secret = generateSessionSecret();
  const client = await deriveSessionKeys(secret, "client");
  const server = await deriveSessionKeys(secret, "server");
  const plainSend = { ...client.send, gcm: null };
  for (const size of [0, 1, 4083, 4084, 65536]) {
    const head = crypto.getRandomValues(new Uint8Array(13));
    const body = crypto.getRandomValues(new Uint8Array(size));
    const joined = new Uint8Array([...head, ...body]);
    const whole = await sealPacket(client.send, FrameType.Data, 7, joined);
    const fast = await sealPacket(client.send, FrameType.Data, 7, [head, body]);
    const slow = await sealPacket(plainSend, FrameType.Data, 7, [head, body]);
    assert.deepEqual(fast, whole, `OpenSSL, ${size} bytes`);
    assert.deepEqual(slow, whole, `node:crypto or WebCrypto, ${size} bytes`);
    const frameBody = fast.subarray(4);
    assert.deepEqual(
      await openPacket(server.receive, FrameType.Data, frameBody),
      joined,
    );
  }
  assert.ok(client.send.gcm, "libcrypto.so.3 opened: the fast path ran");
});
