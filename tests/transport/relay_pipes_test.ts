/**
 * The keyless relay's pieces over real loopback sockets: bytes copied both
 * ways unchanged, the handshake watch telling an accepted client from a
 * refused one, and the session probe's answers.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  acceptEach,
  clientHandshake,
  EternalConnection,
  generateSessionSecret,
  HandshakeWatch,
  probeSession,
  relayPipes,
  type SessionSecret,
} from "../../src/transport/mod.ts";
import { configureLog } from "../../src/log.ts";
import { patternBytes } from "../helpers/session_pair.ts";
import { closedPort, listenForSessions } from "../helpers/session_listener.ts";

configureLog({ level: "silent" });

const sha = (bytes: Uint8Array) =>
  createHash("sha256").update(bytes).digest("hex");

/**
 * A relay on loopback in front of `targetPort`: each connection it accepts
 * is copied to a fresh connection to the target, with a watch on what the
 * target sends.
 */
function relayTo(targetPort: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const watches: HandshakeWatch[] = [];
  const relayed: Promise<unknown>[] = [];
  const loop = acceptEach(listener, (incoming) => {
    const watch = new HandshakeWatch();
    watches.push(watch);
    relayed.push(
      Deno.connect({ hostname: "127.0.0.1", port: targetPort }).then(
        (outgoing) =>
          relayPipes(incoming, outgoing, {
            onChunk: (fromClient, chunk) => fromClient || watch.push(chunk),
          }),
      ),
    );
  });
  return {
    port: (listener.addr as Deno.NetAddr).port,
    watches,
    async close() {
      listener.close();
      await loop;
      await Promise.allSettled(relayed);
    },
  };
}

Deno.test("relayPipes copies 3 MB each way unchanged, counts them, and ends both sides when one ends", async () => {
  const up = patternBytes(3_000_000, 1);
  const down = patternBytes(3_000_000, 2);
  const serverListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const relayListener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener: Deno.Listener) =>
    (listener.addr as Deno.NetAddr).port;
  const serverSide = serverListener.accept();
  const relaySide = relayListener.accept();
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: port(relayListener),
  });
  const toServer = await Deno.connect({
    hostname: "127.0.0.1",
    port: port(serverListener),
  });
  const server = await serverSide;
  const counters = { aToB: 0, bToA: 0 };
  const relaying = relayPipes(await relaySide, toServer, { counters });
  // Both ends write and read at once (the relay must not deadlock).
  const [atServer, atClient] = await Promise.all([
    readExactly(server, up.length),
    readExactly(client, down.length),
    writeAll(client, up),
    writeAll(server, down),
  ]);
  assert.equal(sha(atServer), sha(up), "client to server");
  assert.equal(sha(atClient), sha(down), "server to client");
  // The client leaves: the relay ends the pair, the server sees the end.
  client.close();
  assert.equal(await server.read(new Uint8Array(16)), null);
  assert.deepEqual(await relaying, { aToB: up.length, bToA: down.length });
  assert.equal(counters.aToB, up.length, "the caller's counters, live");
  server.close();
  serverListener.close();
  relayListener.close();
});

/** Reads exactly `n` bytes from `conn`. */
async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let filled = 0;
  while (filled < n) {
    const got = await conn.read(out.subarray(filled));
    if (got === null) throw new Error(`ended after ${filled} of ${n} bytes`);
    filled += got;
  }
  return out;
}

async function writeAll(conn: Deno.Conn, data: Uint8Array) {
  for (let sent = 0; sent < data.length;) {
    sent += await conn.write(data.subarray(sent));
  }
}

/** A server end for `secret` and a relay in front of it. */
async function relayedSession(secret: SessionSecret) {
  const server = await EternalConnection.create(secret, "server");
  const listener = listenForSessions((id) =>
    id.every((b, i) => b === secret.id[i]) ? server : undefined
  );
  const relay = relayTo(listener.port);
  return {
    relay,
    async close() {
      server.fail(new Error("test over"));
      await relay.close();
      await listener.close();
    },
  };
}

Deno.test("HandshakeWatch: through a relay, accepted once the server accepts the client; not for a wrong passkey or an unknown session", async () => {
  const secret = generateSessionSecret();
  const world = await relayedSession(secret);
  try {
    const dial = () =>
      Deno.connect({ hostname: "127.0.0.1", port: world.relay.port });
    // The right passkey: accepted.
    const client = await EternalConnection.create(secret, "client");
    await clientHandshake(client, await dial());
    await waitFor(() => world.relay.watches[0]?.accepted === true);
    client.fail(new Error("test over"));

    // A wrong passkey: the server refuses the proof.
    const wrong = await EternalConnection.create(
      { id: secret.id, passkey: generateSessionSecret().passkey },
      "client",
    );
    await assert.rejects(clientHandshake(wrong, await dial()));
    await waitFor(() => world.relay.watches[1]?.accepted === false);
    wrong.fail(new Error("test over"));

    // An unknown session: a REFUSE in place of the CHALLENGE.
    const stranger = await EternalConnection.create(
      generateSessionSecret(),
      "client",
    );
    await assert.rejects(clientHandshake(stranger, await dial()));
    await waitFor(() => world.relay.watches[2]?.accepted === false);
    stranger.fail(new Error("test over"));
  } finally {
    await world.close();
  }
});

Deno.test("HandshakeWatch: decides on bytes however they are split, and garbage is no acceptance", () => {
  const challenge = new Uint8Array(38);
  new DataView(challenge.buffer).setUint32(0, 34);
  challenge[4] = 0x02;
  const accept = new Uint8Array(45);
  new DataView(accept.buffer).setUint32(0, 41);
  accept[4] = 0x04;
  const stream = new Uint8Array([...challenge, ...accept]);
  for (const step of [1, 5, 38, 43, 83]) {
    const watch = new HandshakeWatch();
    for (let i = 0; i < stream.length; i += step) {
      assert.notEqual(watch.accepted, false);
      watch.push(stream.subarray(i, i + step));
    }
    assert.equal(watch.accepted, true, `in pieces of ${step}`);
  }
  const garbage = new HandshakeWatch();
  garbage.push(new TextEncoder().encode("HTTP/1.1 200 OK\r\n"));
  assert.equal(garbage.accepted, false);
  const refused = new HandshakeWatch();
  refused.push(challenge);
  refused.push(new Uint8Array([0, 0, 0, 3, 0x05, 2, 0]));
  assert.equal(refused.accepted, false);
});

Deno.test("probeSession: alive for a live session (also through a relay), gone for an unknown one or a closed port, unknown for silence", async () => {
  const secret = generateSessionSecret();
  const world = await relayedSession(secret);
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const silence = acceptEach(silent, (conn) => held.push(conn));
  try {
    const to = (port: number) => () =>
      Deno.connect({ hostname: "127.0.0.1", port });
    assert.equal(await probeSession(to(world.relay.port), secret.id), "alive");
    assert.equal(
      await probeSession(to(world.relay.port), generateSessionSecret().id),
      "gone",
    );
    assert.equal(await probeSession(to(closedPort()), secret.id), "gone");
    assert.equal(
      await probeSession(
        to((silent.addr as Deno.NetAddr).port),
        secret.id,
        300,
      ),
      "unknown",
    );
    // A probe is no client: the watch never saw an acceptance.
    assert.ok(world.relay.watches.every((w) => w.accepted !== true));
  } finally {
    silent.close();
    await silence;
    for (const conn of held) conn.close();
    await world.close();
  }
});

async function waitFor(condition: () => boolean, timeoutMs = 5000) {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
