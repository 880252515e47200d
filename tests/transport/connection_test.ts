import assert from "node:assert/strict";
import {
  acceptEach,
  EternalConnection,
  generateSessionSecret,
  keepConnected,
  serverHandshake,
} from "../../src/transport/mod.ts";
import { configureLog } from "../../src/log.ts";
import { recordTaps, TapPipe } from "../helpers/tap_pipe.ts";
import {
  patternBytes,
  startSessionPair,
  StreamHash,
  waitUntil,
} from "../helpers/session_pair.ts";
import { createHash } from "node:crypto";

configureLog({ level: "silent" });

const sha = (bytes: Uint8Array) =>
  createHash("sha256").update(bytes).digest("hex");

async function readExactly(
  channel: { read(): Promise<Uint8Array | null> },
  size: number,
): Promise<StreamHash> {
  const hash = new StreamHash();
  while (hash.size < size) {
    const chunk = await channel.read();
    if (chunk === null) throw new Error(`ended after ${hash.size} bytes`);
    hash.update(chunk);
  }
  return hash;
}

Deno.test("bytes flow both ways at once, intact", async () => {
  const pair = await startSessionPair();
  const up = patternBytes(5_000_000, 1);
  const down = patternBytes(5_000_000, 2);
  const [upHash, downHash] = await Promise.all([
    readExactly(pair.server.channel(1), up.length),
    readExactly(pair.client.channel(1), down.length),
    pair.client.channel(1).write(up),
    pair.server.channel(1).write(down),
  ]);
  assert.equal(upHash.digest(), sha(up));
  assert.equal(downHash.digest(), sha(down));
  await pair.stop();
});

Deno.test("connections killed mid-stream resend exactly the gap", async () => {
  const taps: TapPipe[] = [];
  const pair = await startSessionPair({
    wrapClientPipe: recordTaps(taps),
  });
  const up = patternBytes(20_000_000, 3);
  const down = patternBytes(20_000_000, 4);
  let killing = true;
  const killer = (async () => {
    // Kill whichever pipe carries the stream (it wrote since the last
    // look) and the newest one. When attempts overlap, the newest dialed
    // pipe need not be the one in use: killing only it could spare the
    // live pipe for good.
    const seen = new Map<TapPipe, number>();
    while (killing) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      for (const tap of taps) {
        if (tap.written.length !== (seen.get(tap) ?? 0)) tap.close();
        seen.set(tap, tap.written.length);
      }
      taps.at(-1)?.close();
    }
  })();
  const [upHash, downHash] = await Promise.all([
    readExactly(pair.server.channel(1), up.length),
    readExactly(pair.client.channel(1), down.length),
    pair.client.channel(1).write(up),
    pair.server.channel(1).write(down),
  ]);
  killing = false;
  await killer;
  assert.ok(taps.length > 5, `only ${taps.length} connections`);
  assert.equal(upHash.digest(), sha(up));
  assert.equal(downHash.digest(), sha(down));
  await pair.stop();
});

Deno.test("a channel nobody reads stalls alone: others still flow", async () => {
  const pair = await startSessionPair({
    connection: { channelWindowBytes: 64 * 1024 },
  });
  const stuck = pair.client.channel(5).write(patternBytes(1_000_000, 5));
  let stuckDone = false;
  stuck.then(() => stuckDone = true);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(stuckDone, false, "writer must wait for credit");
  assert.ok(pair.server.channel(5).pendingBytes <= 64 * 1024);
  // Another channel is not starved.
  await pair.client.channel(1).write(new TextEncoder().encode("ping"));
  assert.equal(
    new TextDecoder().decode((await pair.server.channel(1).read())!),
    "ping",
  );
  const hash = await readExactly(pair.server.channel(5), 1_000_000);
  await stuck;
  assert.equal(hash.digest(), sha(patternBytes(1_000_000, 5)));
  await pair.stop();
});

Deno.test("while disconnected, writes wait at the window: memory stays bounded", async () => {
  const client = await EternalConnection.create(
    generateSessionSecret(),
    "client",
    {
      windowBytes: 256 * 1024,
      channelWindowBytes: 16 * 1024 * 1024,
    },
  );
  const write = client.channel(1).write(patternBytes(4_000_000, 6));
  let done = false;
  write.then(() => done = true, () => {});
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(done, false);
  assert.ok(client.unacknowledgedBytes <= 256 * 1024 + 64 * 1024);
  assert.ok(client.unacknowledgedBytes > 128 * 1024);
  client.fail(new Error("test over"));
  await assert.rejects(write, /test over/);
});

Deno.test("a silent path is declared dead and the session resumes", async () => {
  // A relay that can go silent: forwards until told, then drops everything.
  let silent = false;
  const relay = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open: Deno.Conn[] = [];
  const pair = await startSessionPair({
    connection: { keepaliveMs: 50, deadAfterMs: 300 },
    via: (serverPort) => {
      (async () => {
        try {
          for await (const inbound of relay) {
            const outbound = await Deno.connect({
              hostname: "127.0.0.1",
              port: serverPort,
            });
            open.push(inbound, outbound);
            const pump = async (from: Deno.Conn, to: Deno.Conn) => {
              const buffer = new Uint8Array(65536);
              try {
                for (let n; (n = await from.read(buffer)) !== null;) {
                  if (!silent) await to.write(buffer.subarray(0, n));
                }
              } catch { /* closed */ }
            };
            pump(inbound, outbound);
            pump(outbound, inbound);
          }
        } catch { /* closed */ }
      })();
      return (relay.addr as Deno.NetAddr).port;
    },
  });
  await waitUntil(
    () => pair.client.connected && pair.server.connected,
    5000,
    "connect",
  );
  const events: string[] = [];
  pair.client.onEvent((event) => events.push(event.type));
  silent = true;
  const started = Date.now();
  await waitUntil(() => !pair.client.connected, 3000, "dead detection");
  const detected = Date.now() - started;
  assert.ok(
    detected >= 250 && detected < 1500,
    `detected after ${detected} ms`,
  );
  silent = false;
  await waitUntil(() => pair.client.connected, 5000, "resume");
  await pair.client.channel(1).write(new TextEncoder().encode("back"));
  assert.equal(
    new TextDecoder().decode((await pair.server.channel(1).read())!),
    "back",
  );
  assert.deepEqual(events.slice(0, 2), ["disconnected", "connected"]);
  await pair.stop();
  relay.close();
  for (const conn of open) {
    try {
      conn.close();
    } catch { /* already */ }
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
});

Deno.test("closing a session tells the peer why", async () => {
  const pair = await startSessionPair();
  await waitUntil(() => pair.server.connected, 5000, "connect");
  await pair.server.channel(1).write(new TextEncoder().encode("last words"));
  await pair.server.close("shell exited");
  const end = await pair.client.closed;
  assert.equal(end.reason, "shell exited");
  assert.equal(end.byPeer, true);
  assert.equal(
    new TextDecoder().decode((await pair.client.channel(1).read())!),
    "last words",
  );
  assert.equal(await pair.client.channel(1).read(), null);
  await pair.stop();
});

Deno.test("keepConnected dials again at once, then backs off to its cap", async () => {
  const client = await EternalConnection.create(
    generateSessionSecret(),
    "client",
  );
  const attempts: number[] = [];
  const loop = keepConnected(client, {
    dial: () => {
      attempts.push(Date.now());
      return Promise.reject(new Error("refused"));
    },
  });
  await new Promise((resolve) => setTimeout(resolve, 3500));
  client.fail(new Error("stop"));
  await loop;
  const gaps = attempts.slice(1).map((t, i) => t - attempts[i]);
  assert.ok(
    attempts.length >= 5 && attempts.length <= 12,
    `${attempts.length}`,
  );
  assert.ok(gaps[0] < 250, `first retry after ${gaps[0]} ms`);
  assert.ok(Math.max(...gaps) < 700, `longest gap ${Math.max(...gaps)}`);
  assert.ok(gaps.at(-1)! > 400, "backs off towards the cap");
});

Deno.test("dials that never answer do not stop reconnecting", async () => {
  const secret = generateSessionSecret();
  const options = { handshakeTimeoutMs: 300 };
  const server = await EternalConnection.create(secret, "server", options);
  const client = await EternalConnection.create(secret, "client", options);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const serving = acceptEach(
    listener,
    (conn) => serverHandshake(conn, () => server),
  );
  let dials = 0;
  // More silent dials than there are attempt slots: only a bounded dial
  // frees a slot for the one that finally answers.
  const loop = keepConnected(client, {
    dial: () =>
      ++dials <= 13
        ? new Promise<never>(() => {})
        : Deno.connect({ hostname: "127.0.0.1", port }),
  });
  await waitUntil(() => client.connected, 15_000, "connect after silent dials");
  assert.ok(dials > 13);
  client.fail(new Error("done"));
  server.fail(new Error("done"));
  await loop;
  listener.close();
  await serving;
  await new Promise((resolve) => setTimeout(resolve, 50));
});

Deno.test("writers wait at a small window and are woken by acks: every byte arrives, memory stays bounded", async () => {
  const window = 8 * 1024;
  const pair = await startSessionPair({ connection: { windowBytes: window } });
  const data = patternBytes(1_000_000, 7);
  let most = 0;
  const sampler = setInterval(() => {
    most = Math.max(most, pair.client.unacknowledgedBytes);
  }, 1);
  const writeInPieces = async () => {
    for (let offset = 0; offset < data.length; offset += 1000) {
      await pair.client.channel(1).write(data.subarray(offset, offset + 1000));
    }
  };
  const [hash] = await Promise.all([
    readExactly(pair.server.channel(1), data.length),
    writeInPieces(),
  ]);
  clearInterval(sampler);
  assert.equal(hash.digest(), sha(data));
  assert.ok(most <= window, `held ${most} bytes`);
  await pair.stop();
});

Deno.test("close() returns once the peer acknowledged everything, not after its linger", async () => {
  const pair = await startSessionPair();
  await waitUntil(() => pair.server.connected, 5000, "connect");
  await pair.server.channel(1).write(patternBytes(200_000, 8));
  const started = performance.now();
  await pair.server.close("done", 60_000);
  const took = performance.now() - started;
  assert.ok(took < 3000, `close took ${took} ms`);
  assert.equal(pair.server.unacknowledgedBytes, 0);
  assert.equal((await pair.client.closed).reason, "done");
  await pair.stop();
});

Deno.test("close() with no peer to acknowledge waits out its linger, and ends at once if the session fails", async () => {
  const client = await EternalConnection.create(
    generateSessionSecret(),
    "client",
  );
  await client.channel(1).write(new TextEncoder().encode("never acked"));
  const started = performance.now();
  await client.close("bye", 300);
  const took = performance.now() - started;
  assert.ok(took >= 290 && took < 2000, `lingered ${took} ms`);
  const other = await EternalConnection.create(
    generateSessionSecret(),
    "client",
  );
  await other.channel(1).write(new TextEncoder().encode("never acked"));
  const closing = other.close("bye", 60_000);
  await new Promise((resolve) => setTimeout(resolve, 50));
  other.fail(new Error("gone"));
  const failedAt = performance.now();
  await closing;
  assert.ok(performance.now() - failedAt < 500);
});

Deno.test("acknowledgeAndDetach: the peer holds the ack of its last message when the pipe drops", async () => {
  const pair = await startSessionPair();
  await waitUntil(() => pair.client.connected, 5000, "connect");
  // What the client holds unacknowledged at the moment its pipe drops.
  const heldAtDrop: number[] = [];
  pair.client.onEvent((event) => {
    if (event.type === "disconnected") {
      heldAtDrop.push(pair.client.unacknowledgedBytes);
    }
  });
  const leaving = new TextEncoder().encode("leaving now");
  await pair.client.channel(3).write(leaving);
  assert.deepEqual(await pair.server.channel(3).read(), leaving);
  assert.ok(pair.client.unacknowledgedBytes > 0, "not acknowledged yet");
  await pair.server.acknowledgeAndDetach("peer left");
  await waitUntil(() => heldAtDrop.length > 0, 5000, "the client's drop");
  assert.deepEqual(heldAtDrop, [0], "acknowledged before the pipe went");
  await pair.stop();
});
