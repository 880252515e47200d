/**
 * Byte fidelity end to end: the real client on a real terminal (a pty),
 * a real sshd and `et server`, the fault proxy cutting the connection
 * every ~300 ms, and a remote byte stream full of bare `\n`, `\r\n` and
 * `\r` that must reach the client's terminal exactly as the remote wrote
 * it — no `\r` added by the client's own terminal (as with ssh).
 */

import assert from "node:assert/strict";
import { streamExact, withProxiedTerminal } from "./_client.ts";
import { E2E_TEST } from "./_world.ts";

Deno.test({
  ...E2E_TEST,
  name:
    "remote output with bare \\n, \\r\\n and \\r reaches the client's terminal byte-exact through cuts",
  fn: () =>
    withProxiedTerminal({}, async (session) => {
      const { world, proxy, client, termios: before, mark } = session;
      let cuts = 0;
      const stopChaos = session.startChaos({
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
    }),
});
