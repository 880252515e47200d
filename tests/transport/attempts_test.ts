import assert from "node:assert/strict";
import {
  type Channel,
  clientHandshake,
  EternalConnection,
  generateSessionSecret,
  HandshakeRefusedError,
  RefuseCode,
} from "../../src/transport/mod.ts";
import { configureLog } from "../../src/log.ts";
import { OnPathPipe } from "../helpers/on_path.ts";
import { listenForSessions } from "../helpers/session_listener.ts";
import {
  patternBytes,
  StreamHash,
  waitUntil,
} from "../helpers/session_pair.ts";

configureLog({ level: "silent" });

/**
 * Writes pieces until `running()` turns false, then ends the channel;
 * resolves with the digest and size of everything written.
 */
async function writeUntil(
  channel: Channel,
  seed: number,
  running: () => boolean,
): Promise<[string, number]> {
  const hash = new StreamHash();
  for (let piece = 0; running(); piece++) {
    const data = patternBytes(2000 + (piece * 7919) % 14000, seed + piece);
    await channel.write(data);
    hash.update(data);
    // Paced, so the stream spans the whole race.
    if (piece % 4 === 3) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await channel.closeWrite();
  return [hash.digest(), hash.size];
}

/** Reads to the channel's end; resolves with the digest and size. */
async function readToEnd(channel: Channel): Promise<[string, number]> {
  const hash = new StreamHash();
  for (let chunk; (chunk = await channel.read()) !== null;) hash.update(chunk);
  return [hash.digest(), hash.size];
}

/**
 * A session on attempt 1 with data streaming both ways, and the means to
 * run numbered attempts by hand.
 */
async function streamingSession() {
  const secret = generateSessionSecret();
  const server = await EternalConnection.create(secret, "server");
  const client = await EternalConnection.create(secret, "client");
  const listener = listenForSessions(server);
  const dial = async () => {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: listener.port,
    });
    conn.setNoDelay(true);
    return new OnPathPipe(conn);
  };
  await clientHandshake(client, await dial());
  let running = true;
  const transfer = Promise.all([
    readToEnd(server.channel(1)),
    readToEnd(client.channel(1)),
    writeUntil(client.channel(1), 1000, () => running),
    writeUntil(server.channel(1), 2000, () => running),
  ]);
  // Let the stream get going before the race.
  await waitUntil(() => client.receivedCount > 20, 5000, "stream");
  const raceBegan = [client.receivedCount, server.receivedCount];
  return {
    server,
    client,
    dial,
    async finish() {
      // Still streaming after the race: it happened mid-stream.
      const [clientBefore, serverBefore] = raceBegan;
      await waitUntil(
        () =>
          client.receivedCount > clientBefore + 20 &&
          server.receivedCount > serverBefore + 20,
        5000,
        "flow after the race",
      );
      running = false;
      const [upRead, downRead, upWritten, downWritten] = await transfer;
      assert.deepEqual(upRead, upWritten, "client to server: exact");
      assert.deepEqual(downRead, downWritten, "server to client: exact");
      client.fail(new Error("done"));
      server.fail(new Error("done"));
      await listener.close();
      await new Promise((resolve) => setTimeout(resolve, 20));
    },
  };
}

Deno.test("an older attempt whose proof arrives after a newer one is attached is refused as stale", async () => {
  const session = await streamingSession();
  const { client, server } = session;
  // Attempt 2 proves itself, but the path holds its AUTH back.
  const slowPipe = await session.dial();
  const slow = clientHandshake(
    client,
    slowPipe,
    undefined,
    () => slowPipe.holdWrites(),
  );
  slow.catch(() => {});
  await slowPipe.writeHeld;
  // The working pipe is untouched while attempt 2 proves: data flows.
  const before = client.receivedCount;
  await waitUntil(() => client.receivedCount > before + 5, 5000, "flow");
  assert.equal(client.attachedAttempt, 1);
  // Attempt 3 overtakes it and is attached at both ends.
  await clientHandshake(client, await session.dial());
  assert.equal(client.attachedAttempt, 3);
  await waitUntil(() => server.attachedAttempt === 3, 5000, "server on 3");
  // Now attempt 2's AUTH arrives: the server refuses it (signed: only the
  // attempt is abandoned) and stays on attempt 3.
  slowPipe.release();
  const refusal = await slow.then(() => null, (error) => error);
  assert.ok(refusal instanceof HandshakeRefusedError, String(refusal));
  assert.equal(refusal.code, RefuseCode.StaleAttempt);
  assert.equal(refusal.authenticated, true);
  assert.equal(refusal.final, false);
  assert.equal(server.attachedAttempt, 3);
  assert.equal(client.attachedAttempt, 3);
  assert.ok(client.connected && server.connected);
  await session.finish();
});

Deno.test("an older attempt the server attached first, finishing last at the client, is dropped: both stay on the newer pipe", async () => {
  const session = await streamingSession();
  const { client, server } = session;
  // Attempt 2 reaches the server, which swaps to it and sends ACCEPT; the
  // path holds the ACCEPT back from the client.
  const slowPipe = await session.dial();
  const slow = clientHandshake(
    client,
    slowPipe,
    undefined,
    () => slowPipe.holdReads(),
  );
  slow.catch(() => {});
  await waitUntil(() => server.attachedAttempt === 2, 5000, "server on 2");
  // Attempt 3 completes meanwhile, at both ends.
  await clientHandshake(client, await session.dial());
  assert.equal(client.attachedAttempt, 3);
  await waitUntil(() => server.attachedAttempt === 3, 5000, "server on 3");
  // Attempt 2's valid ACCEPT arrives last: the client drops it.
  slowPipe.release();
  const dropped = await slow.then(() => null, (error) => error);
  assert.ok(dropped instanceof Error);
  assert.match(dropped.message, /attempt 2 was overtaken by attempt 3/);
  assert.equal(client.attachedAttempt, 3);
  assert.equal(server.attachedAttempt, 3);
  assert.ok(client.connected && server.connected);
  await session.finish();
});

Deno.test("attempts racing freely, many times over, never lose or repeat a byte", async () => {
  const session = await streamingSession();
  const { client, server } = session;
  for (let round = 0; round < 15; round++) {
    // Two to four attempts at once; whichever order they finish in, the
    // newest attached one wins at both ends.
    const count = 2 + (round % 3);
    const pipes = await Promise.all(
      Array.from({ length: count }, () => session.dial()),
    );
    await Promise.allSettled(
      pipes.map((pipe) => clientHandshake(client, pipe)),
    );
    await waitUntil(
      () =>
        client.connected && server.connected &&
        server.attachedAttempt === client.attachedAttempt,
      5000,
      `round ${round}: both ends on one attempt`,
    );
  }
  await session.finish();
});
