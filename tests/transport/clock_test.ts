/**
 * Liveness against the clocks. These tests step the wall clock by replacing
 * `Date.now` for a moment. That is the honest way to simulate a clock step
 * or a suspend in-process: the transport reads the wall clock only through
 * `Date.now` (to notice that the machine slept) and measures every timeout
 * on `performance.now()`, which a clock step does not move. Nothing of the
 * transport is stubbed; real sockets carry a real session throughout.
 */

import assert from "node:assert/strict";
import type { ConnectionEvent } from "../../src/transport/mod.ts";
import { configureLog } from "../../src/log.ts";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import { startSessionPair } from "../helpers/session_pair.ts";

configureLog({ level: "silent" });

const realDateNow = Date.now;

/** Runs `body` with the wall clock moved by `offsetMs`, then puts it back. */
async function withWallClockOffset<T>(
  offsetMs: number,
  body: () => Promise<T>,
): Promise<T> {
  Date.now = () => realDateNow() + offsetMs;
  try {
    return await body();
  } finally {
    Date.now = realDateNow;
  }
}

/** Polls on the monotonic clock (helpers that use Date.now would be fooled). */
async function waitFor(condition: () => boolean, ms: number, what: string) {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function echo(pair: Awaited<ReturnType<typeof startSessionPair>>) {
  await pair.client.channel(1).write(new TextEncoder().encode("ping"));
  assert.equal(
    new TextDecoder().decode((await pair.server.channel(1).read())!),
    "ping",
  );
}

Deno.test("a backwards wall-clock step does not blind dead-pipe detection", async () => {
  let proxy!: FaultProxy;
  const pair = await startSessionPair({
    connection: { keepaliveMs: 50, deadAfterMs: 300 },
    via: async (port) => {
      proxy = await FaultProxy.start({ targetPort: port });
      return proxy.port;
    },
  });
  await waitFor(() => pair.client.connected, 5000, "connect");
  const events: ConnectionEvent[] = [];
  pair.client.onEvent((event) => events.push(event));
  // The path goes silent, and at that moment the clock steps back an hour:
  // with wall-clock arithmetic "nothing received for 300 ms" would not come
  // true for an hour.
  proxy.setBlackhole(true);
  const silentAt = performance.now();
  const detected = await withWallClockOffset(-3_600_000, async () => {
    await waitFor(() => !pair.client.connected, 3000, "dead detection");
    return performance.now() - silentAt;
  });
  assert.ok(detected >= 250 && detected < 1500, `after ${detected} ms`);
  assert.equal(events[0].type, "disconnected");
  assert.match(
    (events[0] as { reason: string }).reason,
    /^nothing received for 300 ms/,
  );
  proxy.setBlackhole(false);
  await waitFor(() => pair.client.connected, 5000, "resume");
  await echo(pair);
  await pair.stop();
  await proxy.close();
});

Deno.test("a backwards wall-clock step on a healthy pipe changes nothing", async () => {
  const pair = await startSessionPair({
    connection: { keepaliveMs: 50, deadAfterMs: 300 },
  });
  await waitFor(
    () => pair.client.connected && pair.server.connected,
    5000,
    "up",
  );
  const events: ConnectionEvent[] = [];
  pair.client.onEvent((event) => events.push(event));
  pair.server.onEvent((event) => events.push(event));
  await withWallClockOffset(-3_600_000, async () => {
    // Many liveness ticks, keepalives both ways: no one is declared dead.
    await new Promise((resolve) => setTimeout(resolve, 800));
    await echo(pair);
    assert.deepEqual(events, []);
  });
  // (Putting the clock back is an hour's step forward, which does look
  // like a suspend: at worst one immediate redial, by design.)
  await pair.stop();
});

Deno.test("a machine that slept drops its pipe at once and redials", async () => {
  // Default timers: keepalive 1 s, dead after 6 s, a tick every 250 ms.
  const pair = await startSessionPair();
  await waitFor(
    () => pair.client.connected && pair.server.connected,
    5000,
    "up",
  );
  const events: ConnectionEvent[] = [];
  pair.client.onEvent((event) => events.push(event));
  // Resumed from a 30 s suspend: the wall clock jumped, the monotonic
  // clock (stopped while suspended) did not. The path may be gone; waiting
  // 6 s of silence to find out would be 6 s of a frozen terminal.
  const wokeAt = performance.now();
  const [droppedAfter, backAfter] = await withWallClockOffset(
    30_000,
    async () => {
      await waitFor(() => events.length > 0, 2000, "sleep detected");
      const dropped = performance.now() - wokeAt;
      await waitFor(() => pair.client.connected, 2000, "redial");
      return [dropped, performance.now() - wokeAt];
    },
  );
  assert.equal(events[0].type, "disconnected");
  assert.match(
    (events[0] as { reason: string }).reason,
    /^the machine slept \(30 s\)/,
  );
  assert.ok(droppedAfter < 600, `noticed after ${droppedAfter} ms`);
  assert.ok(backAfter < 1500, `back after ${backAfter} ms`);
  await echo(pair);
  await pair.stop();
});

Deno.test("a small forward wall-clock step (NTP) is not taken for sleep", async () => {
  const pair = await startSessionPair();
  await waitFor(
    () => pair.client.connected && pair.server.connected,
    5000,
    "up",
  );
  const events: ConnectionEvent[] = [];
  pair.client.onEvent((event) => events.push(event));
  pair.server.onEvent((event) => events.push(event));
  await withWallClockOffset(1500, async () => {
    await new Promise((resolve) => setTimeout(resolve, 700));
  });
  assert.deepEqual(events, []);
  await echo(pair);
  await pair.stop();
});
