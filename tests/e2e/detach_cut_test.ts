/**
 * A detach that meets a network cut loses nothing. The client's terminal
 * is full (it holds bytes received but not yet written) when a signal
 * ends it, and the connection is cut at the moment its detach goes out:
 * the detach (with the counts of what the terminal really took) is lost
 * in flight while the client still believes it is connected. The client
 * must redial within its leaving budget so the resume carries the detach;
 * else the session would fall back to what was acknowledged, and the
 * bytes the client held unwritten would be shown by no terminal.
 *
 * Faults start before the first handshake (it is cut), and random cuts
 * run through the stream until just before the signal. Checked in BYTES
 * (`_signal_detach.ts`): the first terminal's and `--attach`'s together
 * are the stream exactly.
 */

import assert from "node:assert/strict";
import { chaos, FaultProxy } from "../helpers/fault_proxy.ts";
import { runSignalDetach } from "./_signal_detach.ts";
import { E2E_TEST, withWorld } from "./_world.ts";

for (
  const { name, predict, cutAt } of [
    {
      name: "the detach itself cut in flight (--predict never)",
      predict: "never",
      cutAt: "detach",
    },
    {
      name: "cut just before the detach (through the predictive echo)",
      predict: "adaptive",
      cutAt: "signal",
    },
  ] as const
) {
  Deno.test({
    ...E2E_TEST,
    name:
      `SIGTERM with the terminal full, ${name}: the first terminal's bytes and --attach's are the stream exactly`,
    fn: () =>
      withWorld({ privateRuntime: true }, async (world) => {
        const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
        let firstHandshakeCut = false;
        // The first connection dies in its handshake; random cuts follow
        // until just before the signal.
        proxy.setTap((up) => {
          if (!up) return;
          proxy.setTap(null);
          queueMicrotask(() => firstHandshakeCut = proxy.cut() > 0);
        });
        const stopChaos = chaos(proxy, {
          minMs: 150,
          maxMs: 400,
          kinds: ["cut"],
        });
        // What the cut at the signal dropped: the first bytes the client
        // sent after it (its detach, or a keepalive just before it).
        let dropped = -1;
        try {
          const result = await runSignalDetach(world, {
            predict,
            stopReading: true,
            port: proxy.port,
            beforeSignal: async () => {
              await stopChaos();
              if (cutAt === "signal") {
                // Cut in the same moment as the signal: the client may
                // not have noticed by the time its detach goes out.
                queueMicrotask(() => proxy.cut());
                return;
              }
              // Dropped, with the path reset, before it is forwarded.
              proxy.setTap((up, bytes) => {
                if (!up) return;
                proxy.setTap(null);
                dropped = bytes;
                proxy.cut();
              });
            },
          });
          console.log(
            `first terminal: ${result.shownFirst} bytes of the stream; ` +
              `--attach: ${result.attached}; ${proxy.stats.cuts} cuts, ` +
              `${proxy.stats.accepted} connections` +
              (cutAt === "detach" ? `; ${dropped} bytes dropped` : ""),
          );
        } finally {
          await stopChaos();
          proxy.setTap(null);
          await proxy.close();
        }
        assert.ok(firstHandshakeCut, "the first handshake was cut");
        if (cutAt === "detach") {
          assert.ok(dropped > 0, "the client's bytes after the signal cut");
        }
      }),
  });
}
