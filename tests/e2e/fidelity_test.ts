/**
 * Byte fidelity end to end: the real client on a real terminal (a pty),
 * a real sshd and `et server`, the fault proxy cutting the connection
 * every ~300 ms, and a remote byte stream full of bare `\n`, `\r\n` and
 * `\r` that must reach the client's terminal exactly as the remote wrote
 * it — no `\r` added by the client's own terminal (as with ssh).
 */

import assert from "node:assert/strict";
import { chaos, FaultProxy } from "../helpers/fault_proxy.ts";
import { PtyProcess } from "../helpers/pty_process.ts";
import { streamExact } from "./_client.ts";
import { startWorld } from "./_world.ts";

const e2e = { sanitizeResources: false, sanitizeOps: false };

Deno.test({
  ...e2e,
  name:
    "remote output with bare \\n, \\r\\n and \\r reaches the client's terminal byte-exact through cuts",
  async fn() {
    const world = await startWorld();
    const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
    const client = PtyProcess.spawn(world.client([], { port: proxy.port }));
    // Read before the client (still starting) can touch its terminal.
    const before = client.termios();
    let stopChaos: (() => Promise<void>) | undefined;
    try {
      await client.type("echo MARK-$((6*7))\r");
      const mark = await client.waitFor("MARK-42", { timeoutMs: 30_000 });

      let cuts = 0;
      stopChaos = chaos(proxy, {
        minMs: 250,
        maxMs: 350,
        kinds: ["cut"],
        onFault: () => cuts++,
      });
      const stream = await streamExact(client, {
        dir: world.dir,
        from: mark.end,
        bytes: 4 * 1024 * 1024,
        chunkBytes: 256 * 1024,
        seed: 42,
      });
      await stopChaos();
      stopChaos = undefined;
      assert.ok(cuts >= 3, `only ${cuts} cuts during the transfer`);
      console.log(
        `${stream.bytes} bytes byte-exact through ${proxy.stats.cuts} cuts`,
      );

      await client.type("exit 0\r");
      const status = await client.wait(30_000);
      assert.equal(status.code, 0);
      assert.deepEqual(
        client.termios(),
        before,
        "the client put back its terminal's exact attributes",
      );
    } finally {
      await stopChaos?.();
      await client.close();
      await proxy.close();
      await world.close();
    }
  },
});
