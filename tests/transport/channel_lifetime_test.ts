import assert from "node:assert/strict";
import { configureLog } from "../../src/log.ts";
import {
  patternBytes,
  startSessionPair,
  waitUntil,
} from "../helpers/session_pair.ts";

configureLog({ level: "silent" });

/** Reads a channel to its end; returns how many bytes came. */
async function drain(channel: { read(): Promise<Uint8Array | null> }) {
  let total = 0;
  for (let chunk; (chunk = await channel.read()) !== null;) {
    total += chunk.length;
  }
  return total;
}

Deno.test("a channel ended both ways and read to its end is forgotten by both connections", async () => {
  const pair = await startSessionPair();
  const up = pair.client.channel(16);
  await up.write(patternBytes(100_000, 1));
  await up.closeWrite();
  const down = pair.server.channel(16);
  assert.equal(await drain(down), 100_000);
  // Half-closed: the server's direction still works after the client's end.
  assert.equal(down.finished, false);
  await down.write(patternBytes(70_000, 2));
  await down.closeWrite();
  assert.equal(await drain(up), 70_000);
  await waitUntil(
    () => pair.client.channelCount === 0 && pair.server.channelCount === 0,
    5000,
    "both tables empty",
  );
  assert.ok(up.finished && down.finished);
  await pair.stop();
});

Deno.test("thousands of short channels leave the channel tables empty", async () => {
  const pair = await startSessionPair();
  const count = 3000;
  const batch = 100;
  for (let first = 0; first < count; first += batch) {
    await Promise.all(
      Array.from({ length: batch }, async (_, i) => {
        const id = 16 + 2 * (first + i);
        const mine = pair.client.channel(id);
        await mine.write(new TextEncoder().encode(`hello ${id}`));
        await mine.closeWrite();
        const theirs = pair.server.channel(id);
        assert.equal(
          new TextDecoder().decode((await theirs.read())!),
          `hello ${id}`,
        );
        assert.equal(await theirs.read(), null);
        await theirs.write(new TextEncoder().encode("bye"));
        await theirs.closeWrite();
        assert.equal(await drain(mine), 3);
      }),
    );
  }
  await waitUntil(
    () => pair.client.channelCount === 0 && pair.server.channelCount === 0,
    5000,
    `tables to empty (client ${pair.client.channelCount}, server ${pair.server.channelCount})`,
  );
  await pair.stop();
});

Deno.test("a channel with unread bytes is kept until they are read", async () => {
  const pair = await startSessionPair();
  const a = pair.client.channel(18);
  await a.write(patternBytes(1000, 3));
  await a.closeWrite();
  const b = pair.server.channel(18);
  await waitUntil(() => b.pendingBytes === 1000, 5000, "bytes in");
  await b.closeWrite();
  await drain(a);
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(pair.server.channelCount, 1, "unread bytes keep the channel");
  assert.equal(await drain(b), 1000);
  assert.equal(pair.server.channelCount, 0);
  await pair.stop();
});
