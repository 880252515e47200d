import assert from "node:assert/strict";
import {
  acceptEach,
  encodeFrame,
  EternalConnection,
  FrameReader,
  generateSessionSecret,
  HandshakeRefusedError,
  keepConnected,
  ReconnectGaveUpError,
  RefuseCode,
  serverHandshake,
} from "../../src/transport/mod.ts";
import { configureLog } from "../../src/log.ts";
import { recordTaps, splitFrames, TapPipe } from "../helpers/tap_pipe.ts";
import { startSessionPair, waitUntil } from "../helpers/session_pair.ts";

configureLog({ level: "silent" });

function listenWith(
  lookup: (id: Uint8Array) => EternalConnection | undefined,
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const served: Promise<unknown>[] = [];
  const loop = acceptEach(
    listener,
    (conn) => served.push(serverHandshake(conn, lookup)),
  );
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await loop;
      await Promise.all(served);
    },
  };
}

async function clientAgainst(port: number, connectTimeoutMs: number) {
  const client = await EternalConnection.create(
    generateSessionSecret(),
    "client",
  );
  const loop = keepConnected(client, {
    dial: () => Deno.connect({ hostname: "127.0.0.1", port }),
    connectTimeoutMs,
  });
  const end = await client.closed;
  await loop;
  return { end, status: loop.status };
}

Deno.test("a wrong passkey is retried until the deadline, then named in one line", async () => {
  const secret = generateSessionSecret();
  const wrong = await EternalConnection.create(
    { id: secret.id, passkey: generateSessionSecret().passkey },
    "server",
  );
  const server = await listenWith(() => wrong);
  const client = await EternalConnection.create(secret, "client");
  const started = performance.now();
  const loop = keepConnected(client, {
    dial: () => Deno.connect({ hostname: "127.0.0.1", port: server.port }),
    connectTimeoutMs: 1000,
  });
  const end = await client.closed;
  await loop;
  const took = performance.now() - started;
  // A bad-proof refusal is never signed (an attacker could provoke one),
  // so it cannot end the session by itself: the deadline does.
  assert.ok(end.error instanceof ReconnectGaveUpError);
  assert.equal(
    end.reason,
    "could not connect within 1 s: authentication failed: wrong passkey",
  );
  assert.ok(loop.status.failedAttempts > 2, `${loop.status.failedAttempts}`);
  assert.ok(took >= 950 && took < 2000, `gave up after ${took} ms`);
  assert.equal(wrong.connected, false);
  wrong.fail(new Error("done"));
  await server.close();
});

Deno.test("an unknown session is retried, not final: the deadline ends it", async () => {
  const server = await listenWith(() => undefined);
  const { end, status } = await clientAgainst(server.port, 600);
  assert.ok(end.error instanceof ReconnectGaveUpError);
  assert.match(
    end.reason,
    /^could not connect within 0\.6 s: the server does not know this session/,
  );
  assert.ok(status.lastError instanceof HandshakeRefusedError);
  assert.equal(status.lastError.code, RefuseCode.UnknownSession);
  assert.equal(status.lastError.authenticated, false);
  await server.close();
});

Deno.test("another protocol version is refused by name", async () => {
  const server = await listenWith(() => undefined);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  const hello = new Uint8Array(50);
  hello[0] = 0x01;
  hello[1] = 9;
  await conn.write(encodeFrame(hello));
  const answer = await new FrameReader(conn).next();
  assert.ok(answer);
  assert.equal(answer[0], 0x05);
  assert.equal(answer[1], RefuseCode.VersionMismatch);
  conn.close();
  await server.close();
});

Deno.test("a replayed handshake is refused and does not disturb the session", async () => {
  let tap: TapPipe | undefined;
  const pair = await startSessionPair({
    wrapClientPipe: (conn) => tap = new TapPipe(conn),
  });
  await waitUntil(() => pair.server.connected, 5000, "connect");
  const frames = splitFrames(tap!.written);
  const [hello, auth] = frames; // the client's first two frames
  assert.equal(hello[4], 0x01);
  assert.equal(auth[4], 0x03);
  // The attacker replays the recorded hello and auth on a new connection.
  const attacker = await Deno.connect({
    hostname: "127.0.0.1",
    port: pair.serverPort,
  });
  await attacker.write(hello);
  const reader = new FrameReader(attacker);
  const challenge = await reader.next();
  assert.equal(challenge?.[0], 0x02);
  await attacker.write(auth);
  const refusal = await reader.next();
  assert.equal(refusal?.[0], 0x05);
  assert.equal(refusal?.[1], RefuseCode.BadProof);
  attacker.close();
  // The real session is untouched.
  assert.ok(pair.server.connected);
  await pair.client.channel(1).write(new TextEncoder().encode("still here"));
  assert.equal(
    new TextDecoder().decode((await pair.server.channel(1).read())!),
    "still here",
  );
  await pair.stop();
});

Deno.test("packets replayed from an earlier connection are never delivered twice", async () => {
  const taps: TapPipe[] = [];
  const pair = await startSessionPair({
    wrapClientPipe: recordTaps(taps),
  });
  const encoder = new TextEncoder();
  await pair.client.channel(1).write(encoder.encode("one;"));
  await pair.client.channel(1).write(encoder.encode("two;"));
  let received = "";
  const decoder = new TextDecoder();
  while (received.length < 8) {
    received += decoder.decode((await pair.server.channel(1).read())!);
  }
  assert.equal(received, "one;two;");
  await waitUntil(() => pair.client.unacknowledgedBytes === 0, 5000, "acks");
  const oldFrames = splitFrames(taps[0].written);
  const oldData = oldFrames.filter((frame) => frame[4] === 0x10);
  const oldControl = oldFrames.filter((frame) => frame[4] === 0x11);
  assert.ok(oldData.length >= 2 && oldControl.length >= 1);
  // Force a new connection, then inject the old packets into it.
  taps[0].close();
  await waitUntil(
    () => taps.length === 2 && pair.server.connected,
    5000,
    "reconnect",
  );
  for (const frame of [...oldData, ...oldControl]) taps[1].inject(frame);
  await pair.client.channel(1).write(encoder.encode("three;"));
  const next = decoder.decode((await pair.server.channel(1).read())!);
  assert.equal(next, "three;", "old packets must not be delivered again");
  assert.equal(pair.server.channel(1).pendingBytes, 0);
  assert.ok(pair.server.connected, "replays are dropped, not fatal");
  await pair.stop();
});
