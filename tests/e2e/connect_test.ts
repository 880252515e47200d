/**
 * Getting a session and keeping it found: faults from the very first
 * handshake on, a first handshake refused or swallowed until the path
 * heals, a connect timeout that leaves nothing behind on the remote,
 * forged refusals on the path, and a daemon restart mid-session.
 */

import assert from "node:assert/strict";
import { type FaultProxy, forgedRefuseFrame } from "../helpers/fault_proxy.ts";
import { RefuseCode } from "../../src/transport/mod.ts";
import { decodeRefuse } from "../../src/transport/wire.ts";
import {
  assertConsecutive,
  counterValues,
  sleep,
  startCounter,
  streamExact,
  waitUntil,
  withProxiedSession,
  withProxiedTerminal,
  withSession,
} from "./_client.ts";
import { E2E_TEST } from "./_world.ts";
import { HOST_PROCESS_NAME } from "../../src/terminal/host_socket.ts";

Deno.test({
  ...E2E_TEST,
  name:
    "cuts every ~300 ms from before the first handshake: an interactive session still gets a byte-exact stream",
  async fn() {
    let cuts = 0;
    let firstHandshakeCut = false;
    let stopChaos = () => Promise.resolve();
    await withProxiedTerminal({
      privateRuntime: true,
      shellTimeoutMs: 60_000,
      prepare: (proxy, startChaos) => {
        // The first connection dies in its handshake, whatever the random
        // draw: the chaos alone may not reach a connection before the
        // shell answers on a fast machine.
        proxy.setTap((up) => {
          if (!up) return;
          proxy.setTap(null);
          queueMicrotask(() => {
            if (proxy.cut() > 0) firstHandshakeCut = true;
          });
        });
        stopChaos = startChaos({
          minMs: 150,
          maxMs: 400,
          kinds: ["cut"],
          onFault: () => cuts++,
        });
      },
    }, async ({ world, proxy, client, termios: before, mark }) => {
      const connectionsBeforeMark = proxy.stats.accepted;
      const stream = await streamExact(client, {
        dir: world.dir,
        from: mark.end,
        bytes: 2 * 1024 * 1024,
        chunkBytes: 256 * 1024,
        seed: 7,
      });
      await stopChaos();
      assert.ok(firstHandshakeCut, "the first handshake was cut");
      // A cold start: the launcher ssh ran stayed on as the host, and it
      // was that host's first handshake the faults met.
      const hosts = (await world.terminalProcesses()).filter((p) =>
        p.name === HOST_PROCESS_NAME
      );
      assert.equal(hosts.length, 1, JSON.stringify(hosts));
      assert.match(hosts[0].cmdline, / terminal$/);
      assert.ok(
        connectionsBeforeMark >= 2,
        `only ${connectionsBeforeMark} connection before MARK`,
      );
      console.log(
        `${stream.bytes} bytes exact; ${cuts} faults, ${proxy.stats.cuts} pairs cut, ` +
          `${proxy.stats.accepted} connections`,
      );
      await client.type("exit 0\r");
      assert.equal((await client.wait(30_000)).code, 0);
      assert.deepEqual(client.termios(), before, "terminal restored exactly");
    });
  },
});

/**
 * Starts an interactive client through a proxy on which `down` was called
 * before it started; once `healWhen` holds and the first attempt reached
 * the proxy at least 2 s ago, calls `heal`; the session must then answer
 * and exit 0.
 */
async function firstHandshakeFails(
  down: (proxy: FaultProxy) => void,
  healWhen: (proxy: FaultProxy) => boolean,
  heal: (proxy: FaultProxy) => void,
) {
  await withProxiedSession({
    privateRuntime: true,
    extra: ["--connect-timeout", "30s"],
    // The test types its line at once and waits for the answer itself.
    waitForShell: false,
    prepare: down,
  }, async ({ proxy, client }) => {
    await client.type("echo MARK-$((6*7))\n");
    await waitUntil(
      () => proxy.stats.accepted > 0,
      30_000,
      "the client's first attempt",
      5,
    );
    const firstAttempt = performance.now();
    await waitUntil(
      () => healWhen(proxy) && performance.now() - firstAttempt >= 2000,
      30_000,
      () => `the client's attempts; stats ${JSON.stringify(proxy.stats)}`,
    );
    const failedAttempts = proxy.stats.accepted;
    heal(proxy);
    const healed = performance.now();
    await client.waitFor("MARK-42", 20_000);
    const took = performance.now() - healed;
    console.log(
      `${failedAttempts} attempts failed; answered ${took.toFixed(0)} ms ` +
        `after the path healed`,
    );
    assert.ok(took < 3000, `answered ${took} ms after the path healed`);
    await client.type("exit 0\n");
    assert.equal(await client.exit(20_000), 0, `stderr: ${client.stderr}`);
    assert.match(client.stderr, /connecting to 127\.0\.0\.1:\d+…/);
  });
}

Deno.test({
  ...E2E_TEST,
  name:
    "every first connection reset for a while, then the path heals: the client gets its session",
  fn: () =>
    firstHandshakeFails(
      (proxy) => proxy.setRefuse(true),
      (proxy) => proxy.stats.refused >= 5,
      (proxy) => proxy.setRefuse(false),
    ),
});

Deno.test({
  ...E2E_TEST,
  name:
    "every first connection swallowed by a blackhole for a while, then the path heals: the client gets its session",
  fn: () =>
    firstHandshakeFails(
      (proxy) => proxy.setBlackhole(true),
      (proxy) => proxy.stats.accepted >= 3,
      (proxy) => proxy.setBlackhole(false),
    ),
});

Deno.test({
  ...E2E_TEST,
  name:
    "a connect timeout (path refusing forever) exits 1 with one line and leaves no session process behind",
  fn: () =>
    withProxiedSession({
      privateRuntime: true,
      // The host holds only this session: it leaves with it, no lingering.
      hostLinger: "0",
      extra: ["--connect-timeout", "2s"],
      // No shell ever answers: the path refuses forever.
      waitForShell: false,
      prepare: (proxy) => proxy.setRefuse(true),
    }, async ({ world, proxy, client }) => {
      // The bootstrap over ssh started a session process: find it.
      await waitUntil(
        async () => (await world.sessionProcesses()).length === 1,
        20_000,
        "the session process to start",
        100,
      );
      const code = await client.exit(30_000);
      const exitedAt = performance.now();
      assert.equal(code, 1);
      const lines = client.stderr.split("\n").filter((line) => line !== "");
      const last = lines.pop() ?? "";
      assert.match(
        last,
        /^et: cannot connect to the et server at 127\.0\.0\.1:\d+ within 2s: .+$/,
      );
      assert.ok(
        lines.every((line) =>
          /^et: connecting to 127\.0\.0\.1:\d+…/.test(line)
        ),
        `only a status line before it: ${JSON.stringify(lines)}`,
      );
      assert.ok(lines.length <= 1, `stderr: ${client.stderr}`);
      assert.ok(proxy.stats.refused >= 1);
      // The session waits the client's connect timeout plus a 5 s margin
      // from its own start, which came before the client's timer started.
      await waitUntil(
        async () => (await world.terminalProcesses()).length === 0,
        2000 + 5000 + 3000,
        async () =>
          `the session process to end; left: ${
            JSON.stringify(await world.terminalProcesses())
          }`,
        200,
      );
      console.log(
        `session process gone ${
          (performance.now() - exitedAt).toFixed(0)
        } ms after the client gave up`,
      );
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "forged, unsigned REFUSE frames of every code on the path do not end the session",
  async fn() {
    // The proxy's frame is what the transport would decode as a refusal.
    const frame = forgedRefuseFrame(RefuseCode.UnknownSession, "gone");
    assert.equal(new DataView(frame.buffer).getUint32(0), frame.length - 4);
    assert.deepEqual(
      { ...decodeRefuse(frame.subarray(4)), reasonBytes: undefined },
      {
        code: RefuseCode.UnknownSession,
        reason: "gone",
        reasonBytes: undefined,
      },
    );

    await withProxiedSession(
      { privateRuntime: true },
      async ({ proxy, client }) => {
        proxy.setForgedRefusal({
          codes: Object.values(RefuseCode),
          reason: "session ended",
        });
        proxy.cut();
        await waitUntil(
          () => proxy.stats.forged >= 12,
          20_000,
          () => `forged refusals; stats ${JSON.stringify(proxy.stats)}`,
        );
        proxy.setForgedRefusal(null);
        await client.type("echo AFTER-$((2+3))\n");
        await client.waitFor("AFTER-5", 15_000);
        console.log(`${proxy.stats.forged} forged refusals survived`);
        assert.ok(client.running, "the client did not exit");
        assert.doesNotMatch(client.stderr, /session (lost|ended)|refused/);
        await client.type("exit 0\n");
        assert.equal(await client.exit(20_000), 0, `stderr: ${client.stderr}`);
      },
    );
  },
});

Deno.test({
  ...E2E_TEST,
  name:
    "the daemon restarted mid-session: the terminal registers again, the client reconnects, no output is lost and typing works",
  fn: () =>
    withSession({ privateRuntime: true }, async ({ world, client }) => {
      await startCounter(client);
      const atRestart = counterValues(client.stdout).length;
      await world.restartDaemon("SIGKILL");
      const listening = performance.now();
      await waitUntil(
        () => counterValues(client.stdout).length >= atRestart + 30,
        20_000,
        () => `the counter after the restart; stderr: ${client.stderr}`,
      );
      console.log(
        `counter past ${atRestart + 30} ${
          (performance.now() - listening).toFixed(0)
        } ms after the new daemon listened`,
      );
      await client.type("\x03");
      await sleep(300);
      await client.type("echo AFTER-$((2+3))\n");
      await client.waitFor("AFTER-5", 10_000);
      assertConsecutive(counterValues(client.stdout));
      // The session process noticed and registered with the new daemon.
      let terminalLog = "";
      for await (const entry of Deno.readDir(world.runtimeDir)) {
        if (/^terminal-[0-9a-f]{8}\.log$/.test(entry.name)) {
          terminalLog += await Deno.readTextFile(
            `${world.runtimeDir}/${entry.name}`,
          );
        }
      }
      assert.match(terminalLog, /registered again with the daemon/);
      await client.type("exit 6\n");
      assert.equal(await client.exit(20_000), 6, `stderr: ${client.stderr}`);
    }),
});
