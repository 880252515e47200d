/**
 * The quick fuzz run of the suite: 10^4 cases shared by every target
 * (after each target's stored regression cases), with a fixed seed so the
 * suite is repeatable; FUZZ_SEED and FUZZ_CASES change it. The long run is
 * `deno task fuzz` (10^6 cases, a fresh seed each time).
 *
 * Bugs found and not fixed yet are listed in _known.ts: their failures are
 * tallied, not failed, and each has an ignored regression test below that
 * replays its stored input. Fixing one means moving its entry to
 * FIXED_BUGS there and dropping the `ignore` here.
 *
 * @module
 */

import assert from "node:assert/strict";
import { configureLog } from "../../src/log.ts";
import {
  formatFailure,
  type FuzzCase,
  loadCorpus,
  runCase,
  runTarget,
  shareCases,
} from "./_engine.ts";
import { FIXED_BUGS, KNOWN_BUGS } from "./_known.ts";
import { TARGETS } from "./_targets.ts";

configureLog({ level: "silent" });

const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20261123) >>> 0;
const CASES = Number(Deno.env.get("FUZZ_CASES") ?? 10_000);
const corpus = loadCorpus(new URL("./corpus/", import.meta.url));
const shares = shareCases(TARGETS, CASES);

TARGETS.forEach((target, i) => {
  Deno.test(`fuzz ${target.name}: ${shares[i]} cases (seed ${SEED})`, async () => {
    const report = await runTarget(target, shares[i], {
      cases: shares[i],
      seed: SEED,
      known: KNOWN_BUGS,
      minimizeMs: 500,
      regressions: corpus.get(target.name) ?? [],
    });
    assert.equal(
      report.failureCount,
      0,
      report.failures.map((f) => formatFailure(f, SEED)).join("\n"),
    );
    assert.ok(
      report.outcomes.size > 1,
      `${target.name}: every case ended the same way`,
    );
  });
});

Deno.test("fuzz: every known bug has a stored regression case", () => {
  const stored = new Set([...corpus.values()].flat().map((c) => c.bug));
  for (const bug of [...KNOWN_BUGS, ...FIXED_BUGS]) {
    assert.ok(
      stored.has(bug.id),
      `no case under tests/fuzz/corpus/ reproduces ${bug.id}`,
    );
  }
  for (const target of corpus.keys()) {
    assert.ok(
      TARGETS.some((t) => t.name === target),
      `corpus/${target}/ names no target`,
    );
  }
});

/** Replays the stored cases of one known bug with no allowance: all must pass. */
async function replayBug(id: string) {
  const bug = [...KNOWN_BUGS, ...FIXED_BUGS].find((b) => b.id === id);
  assert.ok(bug, `${id} is in neither list of _known.ts`);
  const target = TARGETS.find((t) => t.name === bug.target)!;
  const cases: Array<FuzzCase & { note: string }> =
    (corpus.get(target.name) ?? [])
      .filter((c) => c.bug === id);
  assert.ok(cases.length > 0, `no stored case for ${id}`);
  const ctx = await target.setup?.();
  try {
    for (const c of cases) {
      const result = await runCase(target, ctx, c);
      assert.equal(result.failure, undefined, `${c.origin}: ${result.failure}`);
    }
  } finally {
    await target.teardown?.(ctx);
  }
}

// Bug handshake-pipe-left-open: serverHandshake returns null without
// closing the pipe when the client ends its stream after the HELLO.
Deno.test({
  name: "regression handshake-pipe-left-open",
  fn: () => replayBug("handshake-pipe-left-open"),
});

// Bug refuse-reason-unsanitized: a REFUSE reason reaches the user's
// terminal with control characters and escape sequences.
Deno.test({
  name: "regression refuse-reason-unsanitized",
  fn: () => replayBug("refuse-reason-unsanitized"),
});

// Bug control-shared-decoder: ControlDecoder instances share one
// streaming TextDecoder.
Deno.test({
  name: "regression control-shared-decoder",
  fn: () => replayBug("control-shared-decoder"),
});

// Bug control-long-line: a control line over the limit is parsed when it
// arrives in one piece.
Deno.test({
  name: "regression control-long-line",
  fn: () => replayBug("control-long-line"),
});

// Bug line-reader-exact-limit: a line of exactly `limit` bytes is refused
// or accepted depending on how it arrives.
Deno.test({
  name: "regression line-reader-exact-limit",
  fn: () => replayBug("line-reader-exact-limit"),
});

// Bug bootstrap-env-echo: the malformed-env error echoes the name with
// its control characters.
Deno.test({
  name: "regression bootstrap-env-echo",
  fn: () => replayBug("bootstrap-env-echo"),
});

// Bug ready-detached-coercion: decodeReady throws TypeError on an object
// `detached`.
Deno.test({
  name: "regression ready-detached-coercion",
  fn: () => replayBug("ready-detached-coercion"),
});

// Bug parse-size-unbounded: parseSize returns unsafe integers and Infinity.
Deno.test({
  name: "regression parse-size-unbounded",
  fn: () => replayBug("parse-size-unbounded"),
});

// Bug destination-dash-host: '[-F.evil]' hands ssh an option as its
// destination.
Deno.test({
  name: "regression destination-dash-host",
  fn: () => replayBug("destination-dash-host"),
});

// Bug control-attach-size: the control socket passes sizes a pty refuses
// to SessionHost.attach, which fails halfway through a takeover.
Deno.test({
  name: "regression control-attach-size",
  fn: () => replayBug("control-attach-size"),
});
