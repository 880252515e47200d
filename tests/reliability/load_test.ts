/**
 * Load on one daemon (tests/reliability/_load.ts), bounded for the suite:
 * 20 real `et --no-pty` sessions stream `seq` output at once for 10 s, every
 * byte hash-checked at its client; then 10 of them stay connected and idle
 * for 10 s while their CPU is read. `deno task soak` runs 100 for 60 s.
 */

import assert from "node:assert/strict";
import { E2E_TEST, withWorld } from "../e2e/_world.ts";
import { describeLoad, runLoad } from "./_load.ts";

Deno.test({
  ...E2E_TEST,
  name:
    "load: 20 sessions stream 10 s at once through one daemon, every byte hash-checked; 10 idle sessions cost ~0 CPU",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const report = await runLoad(world, {
        sessions: 20,
        seconds: 10,
        idleSessions: 10,
        idleSeconds: 10,
      });
      for (const line of describeLoad(report)) console.log(`load: ${line}`);
      assert.deepEqual(report.mismatches, [], "sessions whose bytes differ");
      assert.equal(report.hashesMatched, 20);
      assert.deepEqual(report.exitCodes, { "0": 20 });
      // Every session streamed, none starved.
      assert.ok(
        report.bytesPerSession.min > 1e6,
        `a session got only ${report.bytesPerSession.min} bytes`,
      );
      // The daemon is out of the data path: it burns nothing per byte.
      assert.ok(report.cpu.daemon < 1, `daemon CPU ${report.cpu.daemon} s`);
      assert.ok(
        report.daemonRss.after - report.daemonRss.before < 16e6,
        `daemon RSS ${report.daemonRss.before} -> ${report.daemonRss.after}`,
      );
      // Idle: generous bounds only (the aim is ~0 %; see the report).
      assert.ok(
        report.idle.terminalsPct.max < 2,
        `an idle terminal used ${report.idle.terminalsPct.max} % of a core`,
      );
      assert.ok(
        report.idle.clientsPct.max < 2,
        `an idle client used ${report.idle.clientsPct.max} % of a core`,
      );
    }),
});
