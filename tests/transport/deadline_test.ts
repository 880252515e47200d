import assert from "node:assert/strict";
import {
  EternalConnection,
  generateSessionSecret,
  keepConnected,
  ReconnectGaveUpError,
} from "../../src/transport/mod.ts";
import { configureLog } from "../../src/log.ts";
import { closedPort, listenForSessions } from "../helpers/session_listener.ts";
import { waitUntil } from "../helpers/session_pair.ts";

configureLog({ level: "silent" });

Deno.test("connectTimeoutMs gives up with one clear line when nothing listens", async () => {
  const port = closedPort();
  const client = await EternalConnection.create(
    generateSessionSecret(),
    "client",
  );
  const failures: Error[] = [];
  const started = performance.now();
  const loop = keepConnected(client, {
    dial: () => Deno.connect({ hostname: "127.0.0.1", port }),
    connectTimeoutMs: 1000,
    onAttemptFailed: (error) => failures.push(error),
  });
  // While it tries, the status names the reason.
  await waitUntil(() => loop.status.failedAttempts > 0, 2000, "a failure");
  assert.equal(loop.status.lastReason, "connection refused");
  assert.equal(loop.status.connected, false);
  const end = await client.closed;
  await loop;
  const took = performance.now() - started;
  assert.ok(end.error instanceof ReconnectGaveUpError);
  assert.equal(end.reason, "could not connect within 1 s: connection refused");
  assert.equal(end.error.everConnected, false);
  assert.ok(end.error.lastError instanceof Deno.errors.ConnectionRefused);
  assert.ok(took >= 990 && took < 1500, `gave up after ${took} ms`);
  assert.ok(failures.length >= 3, `${failures.length} attempts`);
});

Deno.test("connectTimeoutMs counts silent dials too: 'no answer'", async () => {
  const client = await EternalConnection.create(
    generateSessionSecret(),
    "client",
    { handshakeTimeoutMs: 5000 },
  );
  const loop = keepConnected(client, {
    dial: () => new Promise<never>(() => {}), // SYNs into the void
    connectTimeoutMs: 500,
  });
  const end = await client.closed;
  await loop;
  assert.equal(end.reason, "could not connect within 0.5 s: no answer");
});

Deno.test("awayTimeoutMs gives up once the path has stayed down that long", async () => {
  const secret = generateSessionSecret();
  const server = await EternalConnection.create(secret, "server");
  const client = await EternalConnection.create(secret, "client");
  const listener = listenForSessions(server);
  const port = listener.port;
  const loop = keepConnected(client, {
    dial: () => Deno.connect({ hostname: "127.0.0.1", port }),
    connectTimeoutMs: 5000,
    awayTimeoutMs: 1000,
  });
  await waitUntil(() => client.connected, 5000, "connect");
  // Up for longer than the away limit: only time away counts.
  await new Promise((resolve) => setTimeout(resolve, 1200));
  assert.equal(client.isClosed, false);
  assert.equal(loop.status.everConnected, true);
  // The server goes away for good: its listener closes, its pipe drops.
  await listener.close();
  const lost = performance.now();
  server.fail(new Error("server gone"));
  const end = await client.closed;
  await loop;
  const away = performance.now() - lost;
  assert.ok(end.error instanceof ReconnectGaveUpError);
  assert.equal(end.reason, "no connection for 1 s: connection refused");
  assert.equal(end.error.everConnected, true);
  assert.ok(away >= 950 && away < 1600, `gave up after ${away} ms away`);
});

Deno.test("awayTimeoutMs: an outage shorter than the limit changes nothing", async () => {
  const secret = generateSessionSecret();
  const server = await EternalConnection.create(secret, "server");
  const client = await EternalConnection.create(secret, "client");
  let listener = listenForSessions(server);
  const port = listener.port;
  const loop = keepConnected(client, {
    dial: () => Deno.connect({ hostname: "127.0.0.1", port }),
    awayTimeoutMs: 1500,
  });
  for (let outage = 0; outage < 2; outage++) {
    await waitUntil(() => client.connected, 5000, "connect");
    await listener.close();
    server.detach("test: path down");
    await new Promise((resolve) => setTimeout(resolve, 1000));
    assert.equal(client.isClosed, false);
    listener = listenForSessions(server, port);
  }
  // Two outages of 1 s each: more than 1.5 s in all, but each one less.
  await waitUntil(() => client.connected, 5000, "reconnect");
  assert.equal(client.isClosed, false);
  client.fail(new Error("done"));
  server.fail(new Error("done"));
  await loop;
  await listener.close();
});
