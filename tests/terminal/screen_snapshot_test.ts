/**
 * The snapshot is faithful: for many seeded random streams A (what the
 * client missed) and B (what comes after it is back), a terminal fed
 * snapshot(A) then B shows exactly what a terminal fed A then B shows,
 * cell by cell (text, width, colours, flags), with the cursor (pending
 * wrap included), modes, region and charsets. `ET_SNAPSHOT_SEEDS=N`
 * runs N seeds (`deno task snapshot:long`).
 */
import assert from "node:assert/strict";
import {
  createScreenEmulator,
  feedEmulator,
  type ScreenEmulator,
} from "../../src/terminal/screen_snapshot.ts";
import { realSnapshot, replay } from "./_vt_streams.ts";

const SEEDS = Number(Deno.env.get("ET_SNAPSHOT_SEEDS") ?? 2000);

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

Deno.test("screen snapshot: underline styles and colours come back, in cells and in the pen", async () => {
  const encoder = new TextEncoder();
  const missed = encoder.encode(
    "\x1b[4:3;58;5;196mcurly\x1b[0m \x1b[4:2mdouble\x1b[24m " +
      "\x1b[4;58;2;1;2;3mrgb\x1b[0m\r\n\x1b[4:5;58;5;33m",
  );
  const after = encoder.encode("pen");
  const truth = await createScreenEmulator(20, 4);
  const replica = await createScreenEmulator(20, 4);
  try {
    feedEmulator(truth, missed);
    feedEmulator(truth, after);
    feedEmulator(replica, await realSnapshot(missed, 20, 4));
    feedEmulator(replica, after);
    const underlines = (emulator: ScreenEmulator) => {
      const buffer = emulator.terminal.buffer.active;
      const cells = [];
      for (let y = 0; y < 2; y++) {
        const line = buffer.getLine(buffer.baseY + y);
        for (let x = 0; x < 20; x++) {
          const cell = line.getCell(x);
          cells.push(
            `${cell.getChars()}${cell.getUnderlineStyle()}:${
              cell.getUnderlineColorMode().toString(16)
            }:${cell.getUnderlineColor()}`,
          );
        }
      }
      return cells;
    };
    const want = underlines(truth);
    assert.deepEqual(underlines(replica), want);
    assert.equal(want[0], "c3:2000000:196", "curly, colour 196");
    assert.equal(want[6], "d2:0:-1", "double, no colour of its own");
    assert.equal(want[13], "r1:3000000:66051", "single, RGB 1;2;3");
    assert.equal(want[20], "p5:2000000:33", "the pen: dashed, colour 33");
  } finally {
    truth.terminal.dispose();
    replica.terminal.dispose();
  }
});
