/**
 * An idle session backs its keepalives off (few packets cross the path
 * while nothing happens), yet a keystroke typed into a path that has gone
 * silent is noticed within the suspect bound (about 2 s), not after the
 * long idle silence limit: the client redials, and once the path is back
 * the keystroke's answer arrives, once.
 */

import assert from "node:assert/strict";
import {
  shellAnswers,
  sleep,
  waitUntil,
  withProxiedSession,
} from "./_client.ts";
import { E2E_TEST } from "./_world.ts";

/** Idle long enough for the interval to reach 8 s and more (1+2+4+8 s). */
const IDLE_MS = 22_000;
/** The window in which packets are counted, at the end of the idle spell. */
const COUNT_MS = 10_000;

Deno.test({
  ...E2E_TEST,
  name:
    "an idle session sends few keepalives, and a keystroke into a blackholed path is noticed within seconds",
  fn: () =>
    withProxiedSession({ privateRuntime: true }, async ({ proxy, client }) => {
      // One more answer so the path's round trip is measured, then idle.
      await shellAnswers(client);
      const chunks: { at: number; up: boolean }[] = [];
      proxy.setTap((up) => chunks.push({ at: performance.now(), up }));
      const idleFrom = performance.now();
      await sleep(IDLE_MS);
      const from = idleFrom + IDLE_MS - COUNT_MS;
      const late = chunks.filter((chunk) => chunk.at >= from);
      const up = late.filter((chunk) => chunk.up).length;
      const down = late.length - up;
      console.log(
        `in the last ${COUNT_MS / 1000} s of ${IDLE_MS / 1000} s idle: ` +
          `${up} chunks up, ${down} down (at a fixed 1 s keepalive: ~10 each)`,
      );
      // Backed off to 8 s and more: a keepalive and its answer each way at
      // most twice in 10 s (chunks may split, so allow a little more).
      assert.ok(up <= 4 && down <= 4, `${up} up, ${down} down`);

      proxy.setTap(null);
      const [pair] = proxy.pairs.slice(-1);
      proxy.setBlackhole(true);
      const typedAt = performance.now();
      await client.type("echo TYPED-$((40+2))\n");
      // Noticed: the client drops the silent pipe and dials again (the new
      // connection is born blackholed too, but the proxy sees it).
      await waitUntil(
        () => proxy.pairs.some((id) => id > pair),
        15_000,
        () => `a redial after the keystroke; stderr: ${client.stderr}`,
      );
      const noticed = performance.now() - typedAt;
      console.log(
        `the blackhole was noticed ${
          noticed.toFixed(0)
        } ms after the keystroke`,
      );
      // Suspect bound 2 s, client checks every 500 ms: generous margin for
      // a loaded machine, far below the idle silence limit (20 s).
      assert.ok(noticed < 6000, `noticed only after ${noticed} ms`);

      proxy.setBlackhole(false);
      await client.waitFor("TYPED-42", 20_000);
      // The echo of the line shows "$((40+2))": only the answer matches.
      await sleep(500);
      assert.equal(client.stdout.split("TYPED-42").length - 1, 1);

      await client.type("exit 0\n");
      assert.equal(await client.exit(30_000), 0, `stderr: ${client.stderr}`);
    }),
});
