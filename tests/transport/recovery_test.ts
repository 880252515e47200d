import assert from "node:assert/strict";
import {
  clientHandshake,
  EternalConnection,
  generateSessionSecret,
  MAX_CHUNK_BYTES,
} from "../../src/transport/mod.ts";
import { configureLog } from "../../src/log.ts";
import { listenForSessions } from "../helpers/session_listener.ts";
import { patternBytes, waitUntil } from "../helpers/session_pair.ts";

configureLog({ level: "silent" });

function join(chunks: Uint8Array[] | undefined): Uint8Array {
  const parts = chunks ?? [];
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function settledState(promise: Promise<unknown>) {
  const state = { settled: false, rejected: false };
  promise.then(
    () => state.settled = true,
    () => state.settled = state.rejected = true,
  );
  return state;
}

Deno.test("unacknowledged() gives back exactly what was sent and not acknowledged, per channel, in order", async () => {
  const client = await EternalConnection.create(
    generateSessionSecret(),
    "client",
  );
  // No peer is ever attached: everything written stays unacknowledged.
  const one = [
    new TextEncoder().encode("ls -l\n"),
    patternBytes(10_000, 1), // sealed through WebCrypto (> 4 KiB)
    patternBytes(150_000, 2), // split into chunks of MAX_CHUNK_BYTES
  ];
  const seven = [patternBytes(3, 3), patternBytes(70_000, 4)];
  await client.channel(1).write(one[0]);
  await client.channel(7).write(seven[0]);
  await client.channel(1).write(one[1]);
  await client.channel(7).write(seven[1]);
  await client.channel(1).write(one[2]);
  await client.channel(7).closeWrite(); // not data: not returned
  client.fail(new Error("client replaced"));
  const held = await client.unacknowledged();
  assert.deepEqual([...held.keys()].sort(), [1, 7]);
  assert.deepEqual(join(held.get(1)), join(one));
  assert.deepEqual(join(held.get(7)), join(seven));
  // Message by message: the first two writes of channel 1 were one
  // message each; the third, too big for one, came in full chunks.
  const sizes = held.get(1)!.map((chunk) => chunk.length);
  assert.deepEqual(sizes.slice(0, 2), [6, 10_000]);
  assert.ok(sizes.slice(2).every((size) => size <= MAX_CHUNK_BYTES));
});

Deno.test("unacknowledged() leaves out what the peer acknowledged", async () => {
  const secret = generateSessionSecret();
  const server = await EternalConnection.create(secret, "server");
  const client = await EternalConnection.create(secret, "client");
  const listener = listenForSessions(server);
  await clientHandshake(
    client,
    await Deno.connect({ hostname: "127.0.0.1", port: listener.port }),
  );
  const encoder = new TextEncoder();
  await client.channel(1).write(encoder.encode("delivered;"));
  await waitUntil(() => client.unacknowledgedBytes === 0, 5000, "ack");
  // The server goes away; what follows is never acknowledged.
  server.fail(new Error("server gone"));
  await waitUntil(() => !client.connected, 5000, "drop");
  await client.channel(1).write(encoder.encode("lost;"));
  await client.channel(2).write(encoder.encode('{"type":"resize"}\n'));
  await client.channel(1).write(encoder.encode("also lost"));
  client.fail(new Error("retired"));
  const held = await client.unacknowledged();
  const decoder = new TextDecoder();
  assert.equal(decoder.decode(join(held.get(1))), "lost;also lost");
  assert.equal(decoder.decode(join(held.get(2))), '{"type":"resize"}\n');
  await listener.close();
});

Deno.test("a write that fits one message waits for all of its credit, never split; if the session fails first, none of it was sent", async () => {
  const client = await EternalConnection.create(
    generateSessionSecret(),
    "client",
  );
  const channel = client.channel(1);
  const window = channel.credit; // 512 KiB by default
  await channel.write(patternBytes(window - 20_000, 5));
  assert.equal(channel.credit, 20_000);
  // 30 000 bytes do not fit the 20 000 of credit left: the write waits
  // whole instead of sending 20 000 now and the rest later.
  const atomic = channel.write(patternBytes(30_000, 6));
  const state = settledState(atomic);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(state.settled, false);
  assert.equal(channel.credit, 20_000, "no part of it was sent");
  client.fail(new Error("session over"));
  await assert.rejects(atomic, /session over/);
  const held = await client.unacknowledged();
  assert.equal(join(held.get(1)).length, window - 20_000);
});

Deno.test("with a peer, a waiting write goes out whole once the credit is back", async () => {
  const secret = generateSessionSecret();
  const options = { channelWindowBytes: 64 * 1024 };
  const server = await EternalConnection.create(secret, "server", options);
  const client = await EternalConnection.create(secret, "client", options);
  const listener = listenForSessions(server);
  await clientHandshake(
    client,
    await Deno.connect({ hostname: "127.0.0.1", port: listener.port }),
  );
  const channel = client.channel(1);
  // A 64 KiB window makes 32 KiB the atomic limit (credit comes back in
  // half-window batches, so more might never be granted whole).
  await channel.write(patternBytes(40_000, 7));
  assert.equal(channel.credit, 64 * 1024 - 40_000);
  const whole = channel.write(patternBytes(30_000, 8));
  const sizes: number[] = [];
  while (sizes.reduce((n, size) => n + size, 0) < 70_000) {
    sizes.push((await server.channel(1).read())!.length);
  }
  await whole;
  assert.deepEqual(sizes, [32 * 1024, 40_000 - 32 * 1024, 30_000]);
  client.fail(new Error("done"));
  server.fail(new Error("done"));
  await listener.close();
});
