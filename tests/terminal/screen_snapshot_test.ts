/**
 * The snapshot is faithful: for many seeded random streams A (what the
 * client missed) and B (what comes after it is back), a terminal fed
 * snapshot(A) then B shows exactly what a terminal fed A then B shows,
 * cell by cell (text, width, colours, flags), with the cursor (pending
 * wrap included), modes, region and charsets. `ET_SNAPSHOT_SEEDS=N`
 * runs N seeds (`deno task snapshot:long`).
 */
import assert from "node:assert/strict";
import { replay } from "./_vt_streams.ts";

const SEEDS = Number(Deno.env.get("ET_SNAPSHOT_SEEDS") ?? 400);

Deno.test(`screen snapshot: ${SEEDS} seeded streams land the same after snapshot(A) as after A`, async () => {
  const started = performance.now();
  const skipped = { threw: 0, gap: 0 };
  for (let seed = 1; seed <= SEEDS; seed++) {
    const result = await replay(seed);
    if (typeof result === "string") {
      skipped[result]++;
      continue;
    }
    const { cols, rows, missed, after, resumed, final } = result;
    const why = `seed ${seed} (${cols}x${rows}); A=${
      JSON.stringify(missed.slice(-300))
    } B=${JSON.stringify(after.slice(0, 300))}`;
    assert.deepEqual(resumed[0], resumed[1], `at resume, ${why}`);
    assert.deepEqual(final[0], final[1], `after B, ${why}`);
  }
  // Both are rare: the test still covers almost every seed.
  assert.ok(skipped.threw + skipped.gap < SEEDS / 20, JSON.stringify(skipped));
  console.log(
    `${SEEDS} seeds in ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s (the emulator threw on ${skipped.threw}, known gap in ${skipped.gap})`,
  );
});
