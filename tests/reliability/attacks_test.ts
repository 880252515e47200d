/**
 * Network attacks on a live daemon while a real session streams through it
 * (tests/reliability/_attacks.ts): recorded handshakes and data replayed on
 * new connections, recorded DATA slipped into the live connection, one bit
 * flipped in live sealed packets, a client with the live id and a wrong
 * passkey, and HELLOs guessing session ids. Each is refused and logged, the
 * session's bytes stay exact and its echo under a second, and the daemon's
 * memory stays bounded and comes back. (The daemon-level floods are in
 * tests/daemon/security_test.ts.)
 */

import assert from "node:assert/strict";
import { E2E_TEST, withWorld } from "../e2e/_world.ts";
import { type AttackReport, runAttacks } from "./_attacks.ts";
import { mb } from "./_proc.ts";

/** Daemon RSS allowed above its level before the attacks, at the peak. */
const DAEMON_PEAK_GROWTH = 64e6;
/** ...and once they are over (V8 returns memory after a quiet spell). */
const DAEMON_AFTER_GROWTH = 16e6;

function print(report: AttackReport) {
  for (const p of report.phases) {
    console.log(
      `attack: ${p.name}: ${p.count} in ${p.ms.toFixed(0)} ms -> ${
        JSON.stringify(p.outcomes)
      }; logged ${p.logged}; live session reconnects ${p.reconnects}; echo max ${
        p.echoMaxMs.toFixed(0)
      } ms; daemon RSS ${mb(p.daemonRss)} MB`,
    );
  }
  console.log(
    `attack: echo p50/p99/max ${report.echo.p50.toFixed(1)}/${
      report.echo.p99.toFixed(1)
    }/${report.echo.max.toFixed(1)} ms over ${report.echo.samples} chunks; ${
      mb(report.stream.bytes)
    } MB each way; daemon RSS ${mb(report.daemonRss.before)} -> peak ${
      mb(report.daemonRss.peak)
    } -> ${mb(report.daemonRss.after)} MB (${
      (report.daemonRss.returnedAfterMs / 1000).toFixed(1)
    } s after); terminal RSS ${mb(report.terminalRss.before)} -> peak ${
      mb(report.terminalRss.peak)
    } -> ${
      mb(report.terminalRss.after)
    } MB; logs grew: terminal ${report.logGrowth.terminal} B, daemon ${report.logGrowth.daemon} B`,
  );
}

Deno.test({
  ...E2E_TEST,
  name:
    "attacks on a live session: replays, injected old DATA, flipped bits, a wrong passkey and guessed ids are refused and logged; bytes exact, echo < 1 s, daemon memory bounded",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const report = await runAttacks(world, {
        replays: 300,
        injected: 10,
        flips: 12,
        wrongKey: 300,
        guesses: 5000,
      });
      print(report);
      const phase = (prefix: string) =>
        report.phases.find((p) => p.name.startsWith(prefix))!;

      // Replayed handshakes: a fresh CHALLENGE, then an unsigned bad proof.
      const replay = phase("replayed");
      for (const outcome of Object.keys(replay.outcomes)) {
        assert.match(outcome, /^challenge refuse\(2\) (closed|reset)$/);
      }
      assert.equal(replay.logged, replay.count, "each replay logged");
      assert.equal(replay.reconnects, 0, "the live session undisturbed");

      // Old DATA in the live connection: dropped as duplicates, unnoticed.
      const injected = phase("recorded DATA");
      assert.equal(injected.reconnects, 0, "the live session undisturbed");
      assert.equal(injected.logged, 0, "no frame refused: duplicates");

      // A flipped bit: the receiver refuses the packet (logged), drops that
      // connection, the client resumes on a new one.
      const flips = phase("one bit");
      assert.equal(flips.logged, flips.count, "each flip refused and logged");
      assert.equal(flips.reconnects, flips.count, "one resume per flip");

      // The wrong passkey: refused, unsigned (retryable), never accepted.
      const wrongKey = phase("wrong passkey");
      assert.deepEqual(wrongKey.outcomes, { "refused 2": wrongKey.count });
      assert.equal(wrongKey.logged, wrongKey.count, "each one logged");
      assert.equal(wrongKey.reconnects, 0);

      // Guessed ids: a plain REFUSE(1) each; logged (rate-limited, counted).
      const guesses = phase("HELLOs");
      assert.deepEqual(guesses.outcomes, {
        "refuse(1) closed": guesses.count,
      });
      assert.equal(guesses.logged, guesses.count, "every guess counted");

      // The live session through it all.
      assert.ok(report.echo.max < 1000, `echo max ${report.echo.max} ms`);
      assert.equal(report.stream.receivedHash, report.stream.sentHash);
      assert.equal(report.exitCode, 0);
      assert.ok(
        report.daemonRss.peak - report.daemonRss.before < DAEMON_PEAK_GROWTH,
        `daemon RSS peak ${mb(report.daemonRss.peak)} MB`,
      );
      assert.ok(
        report.daemonRss.after - report.daemonRss.before < DAEMON_AFTER_GROWTH,
        `daemon RSS after ${mb(report.daemonRss.after)} MB`,
      );
    }),
});

Deno.test({
  ...E2E_TEST,
  // Was a bug (one line per refused handshake, no limit): refusals now go
  // through the rate-limited RefusalLog (src/log.ts) in the handshake too.
  name:
    "attacks: 2000 refused handshakes for a live id grow the user's terminal log by a bounded amount",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const report = await runAttacks(world, {
        replays: 2000,
        injected: 0,
        flips: 0,
        wrongKey: 0,
        guesses: 0,
      });
      print(report);
      assert.ok(
        report.logGrowth.terminal < 32 * 1024,
        `the terminal log grew by ${report.logGrowth.terminal} bytes`,
      );
    }),
});
