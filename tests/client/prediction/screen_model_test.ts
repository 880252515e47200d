/**
 * The model's lazy feeding with a hand-set clock: a burst is parsed once
 * the output is quiet, a huge one is skipped down to a tail that is exact
 * when plain text, and an untrusted model waits for a full clear.
 */

import assert from "node:assert/strict";
import { ScreenModel } from "../../../src/client/prediction/mod.ts";
import { isPlainText } from "../../../src/client/prediction/screen_model.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

/** Every row's text. */
function rows(model: ScreenModel): string[] {
  const out = [];
  for (let row = 0; row < model.rows; row++) {
    let line = "";
    for (let col = 0; col < model.cols; col++) {
      line += model.cellText(row, col) || " ";
    }
    out.push(line.trimEnd());
  }
  return out;
}

/** Numbered lines `from..to` as a shell's output (`\r\n`). */
function lines(from: number, to: number): string {
  let text = "";
  for (let i = from; i <= to; i++) text += `line ${i}\r\n`;
  return text;
}

const quiet = () => new Promise((resolve) => setTimeout(resolve, 300));

Deno.test("small output is parsed at once", async () => {
  const model = await ScreenModel.create(20, 4);
  model.feed(bytes("a\r\nb"));
  assert.deepEqual(rows(model), ["a", "b", "", ""]);
  assert.ok(model.predictable());
  model.close();
});

Deno.test("a burst is set aside (no prediction meanwhile) and parsed once the output is quiet", async () => {
  const clock = { t: 0 };
  const model = await ScreenModel.create(20, 4, () => clock.t);
  const burst = bytes(lines(1, 40_000)); // ~0.4 MB within one window
  for (let at = 0; at < burst.length; at += 16384) {
    model.feed(burst.subarray(at, at + 16384));
  }
  assert.equal(model.predictable(), false, "lagging: not predictable");
  clock.t = 1000; // quiet from now on
  await quiet();
  assert.equal(model.current, true);
  assert.equal(model.skippedBytes, 0, "every byte parsed");
  assert.deepEqual(rows(model), ["line 39998", "line 39999", "line 40000", ""]);
  model.close();
});

Deno.test("a huge plain-text burst is skipped down to its tail, and the screen is still exact", async () => {
  const clock = { t: 0 };
  const model = await ScreenModel.create(20, 4, () => clock.t);
  model.feed(bytes("\x1b[31mred\x1b[0m\r\n"));
  const huge = bytes(lines(1, 1_000_000)); // ~13 MB
  for (let at = 0; at < huge.length; at += 65536) {
    model.feed(huge.subarray(at, at + 65536));
  }
  clock.t = 1000;
  await quiet();
  assert.ok(model.skippedBytes > 1_000_000, `skipped ${model.skippedBytes}`);
  assert.equal(model.current, true, "plain text: trusted again");
  assert.deepEqual(rows(model), [
    "line 999998",
    "line 999999",
    "line 1000000",
    "",
  ]);
  model.close();
});

Deno.test("a huge burst with escape sequences leaves the model untrusted until a full clear", async () => {
  const clock = { t: 0 };
  const model = await ScreenModel.create(20, 4, () => clock.t);
  const huge = bytes(lines(1, 700_000).replaceAll("line 5", "\x1b[1mline 5"));
  for (let at = 0; at < huge.length; at += 65536) {
    model.feed(huge.subarray(at, at + 65536));
  }
  clock.t = 1000;
  await quiet();
  assert.equal(model.current, false, "cannot know the modes: untrusted");
  assert.equal(model.predictable(), false);
  clock.t = 2000;
  model.feed(bytes("\x1b[H\x1b[2J$ "));
  assert.equal(model.current, true, "a full clear: exact again");
  assert.deepEqual(rows(model), ["$", "", "", ""]);
  model.close();
});

Deno.test("a resize leaves the model untrusted until a full clear; insert mode and charsets are not predictable", async () => {
  const model = await ScreenModel.create(20, 4);
  model.resize(30, 5);
  assert.equal(model.predictable(), false);
  model.feed(bytes("\x1bc"));
  assert.equal(model.predictable(), true);
  model.feed(bytes("\x1b[4h"));
  assert.equal(model.predictable(), false, "insert mode");
  model.feed(bytes("\x1b[4l\x1b(0"));
  assert.equal(model.predictable(), false, "line-drawing charset");
  model.feed(bytes("\x1b(B"));
  assert.equal(model.predictable(), true);
  model.close();
});

Deno.test("isPlainText's word-at-a-time scan agrees with the byte-by-byte definition", () => {
  // The definition: no ESC, SO, SI, and no C2 followed by 80..9F.
  const plain = (bytes: Uint8Array) =>
    bytes.every((b, i) =>
      b !== 0x1b && b !== 0x0e && b !== 0x0f &&
      !(b === 0xc2 && bytes[i + 1] >= 0x80 && bytes[i + 1] <= 0x9f)
    );
  const rare = [0x1b, 0x0e, 0x0f, 0xc2, 0x80, 0x9f, 0xa0, 0x1f, 0x0a, 0xff, 0];
  let seed = 7;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const backing = new Uint8Array(64);
  for (let run = 0; run < 50_000; run++) {
    for (let i = 0; i < backing.length; i++) {
      backing[i] = random() % 10 === 0
        ? rare[random() % rare.length]
        : 0x20 + random() % 95;
    }
    // Every alignment and length, words and the bytes around them.
    const from = random() % 8;
    const bytes = backing.subarray(from, from + random() % 50);
    assert.equal(isPlainText(bytes), plain(bytes), `${Array.from(bytes)}`);
  }
});
