/**
 * The model's lazy feeding with a hand-set clock: a burst is parsed once
 * the output is quiet, a huge one is skipped down to a tail that is exact
 * when plain text, and an untrusted model waits for a full clear.
 */

import assert from "node:assert/strict";
import { ScreenModel } from "../../../src/client/prediction/mod.ts";

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

/**
 * A model that parses every byte it is fed, for comparison: its clock
 * moves a second per piece, and each chunk goes in pieces smaller than a
 * burst.
 */
async function everyByteParsed(cols: number, rows: number) {
  const slow = { t: 0 };
  const model = await ScreenModel.create(cols, rows, () => slow.t += 1000);
  return {
    model,
    feed(chunk: Uint8Array) {
      for (let at = 0; at < chunk.length; at += 16384) {
        model.feed(chunk.subarray(at, at + 16384));
      }
    },
  };
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
  // ~0.6 MB within one window, colored: no shortcut, every byte parsed.
  const burst = bytes(lines(1, 40_000).replaceAll("line", "\x1b[32mline"));
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

Deno.test("a burst with no shortcut waits for a long quiet (a stream's pause under load) unless a key is typed", async () => {
  // Colored lines: no shortcut, every byte must be parsed.
  const burst = bytes(lines(1, 20_000).replaceAll("line", "\x1b[32mline"));
  const feedAll = (model: ScreenModel) => {
    for (let at = 0; at < burst.length; at += 16384) {
      model.feed(burst.subarray(at, at + 16384));
    }
  };
  const clock = { t: 0 };
  const model = await ScreenModel.create(20, 4, () => clock.t);
  feedAll(model);
  clock.t = 300; // a pause, as a stream sharing the machine has
  await quiet();
  assert.equal(model.current, false, "not parsed at a short pause");
  const parsedAtPause = model.parsedBytes;
  assert.ok(parsedAtPause < 200_000, `parsed ${parsedAtPause} at the pause`);
  clock.t = 1200; // the stream has stopped
  // The model's timer was set for the rest of the long quiet, in real time.
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal(model.current, true);
  assert.equal(model.skippedBytes, 0, "every byte parsed");
  assert.deepEqual(rows(model), ["line 19998", "line 19999", "line 20000", ""]);
  model.close();

  const typed = await ScreenModel.create(20, 4, () => clock.t);
  clock.t = 0;
  feedAll(typed);
  clock.t = 300;
  await quiet(); // the shortcut was tried and failed
  assert.equal(typed.current, false);
  typed.keysTyped(); // wanted: parsed at the next short lull
  await quiet();
  assert.equal(typed.current, true, "parsed once a key was typed");
  assert.deepEqual(rows(typed), ["line 19998", "line 19999", "line 20000", ""]);
  typed.close();
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

Deno.test("one full chunk of output (64 KiB at once, as bulk output comes) is set aside, not parsed live", async () => {
  const clock = { t: 0 };
  const model = await ScreenModel.create(20, 4, () => clock.t);
  const reference = await everyByteParsed(20, 4);
  const chunk = bytes(lines(1, 10_000)).subarray(0, 64 * 1024);
  model.feed(chunk);
  reference.feed(chunk);
  assert.equal(model.parsedBytes, 0, "nothing parsed at once");
  assert.equal(model.current, false);
  clock.t = 200;
  await quiet();
  assert.equal(model.current, true);
  assert.equal(snapshot(model), snapshot(reference.model));
  // Less than that is a screen's worth of output: parsed at once.
  model.feed(bytes(lines(1, 100)));
  assert.equal(model.current, true, "small output: live");
  model.close();
  reference.model.close();
});

Deno.test("a stream that resumes soon after a burst was caught up is set aside at once, and ends exactly as parsing every byte would; a key typed makes output live again", async () => {
  const clock = { t: 0 };
  const model = await ScreenModel.create(20, 4, () => clock.t);
  const reference = await everyByteParsed(20, 4);
  const both = (chunk: Uint8Array) => {
    model.feed(chunk);
    reference.feed(chunk);
  };
  const burst = bytes(lines(1, 20_000)); // ~0.2 MB
  for (let at = 0; at < burst.length; at += 16384) {
    both(burst.subarray(at, at + 16384));
  }
  clock.t = 200;
  await quiet();
  assert.equal(model.current, true, "caught up at the lull");
  const parsed = model.parsedBytes;
  // The stream goes on 300 ms later, slower than a burst: set aside.
  clock.t = 500;
  both(bytes(lines(20_001, 20_100)));
  clock.t = 550;
  both(bytes("\x1b[1;31mred\x1b[0m\r\n"));
  assert.equal(model.current, false, "set aside, not parsed live");
  assert.equal(model.parsedBytes, parsed, "nothing parsed yet");
  clock.t = 700;
  await quiet();
  assert.equal(model.current, true, "small: parsed at the next lull");
  assert.equal(snapshot(model), snapshot(reference.model));
  // Within a second of the burst still, but a key was typed: live.
  model.keysTyped();
  clock.t = 800;
  both(bytes("$ x"));
  assert.equal(model.current, true, "the echo of a key is parsed at once");
  assert.equal(snapshot(model), snapshot(reference.model));
  // And without a key, once a second has passed since the burst.
  const later = await ScreenModel.create(20, 4, () => clock.t);
  clock.t = 0;
  for (let at = 0; at < burst.length; at += 16384) {
    later.feed(burst.subarray(at, at + 16384));
  }
  clock.t = 200;
  await quiet();
  clock.t = 1300;
  later.feed(bytes("$ "));
  assert.equal(later.current, true, "a second after: live");
  model.close();
  reference.model.close();
  later.close();
});

Deno.test("a skipped burst with no exact start (line feeds alone) parses only the end of its plain text, and every control after it", async () => {
  const clock = { t: 0 };
  const model = await ScreenModel.create(20, 6, () => clock.t);
  // `cat` under `stty raw`: line feeds, no carriage return, no shortcut.
  const huge = bytes("line\n".repeat(600_000)); // ~3 MB
  for (let at = 0; at < huge.length; at += 65536) {
    model.feed(huge.subarray(at, at + 65536));
  }
  model.feed(bytes("\x1b[1;31mred"));
  clock.t = 1000;
  await quiet();
  assert.equal(model.current, false, "no exact start: untrusted");
  assert.ok(
    model.parsedBytes < 64 * 1024 + 9 * 1024,
    `parsed ${model.parsedBytes}: more than the first window and 8 KiB`,
  );
  assert.ok(model.pen().isBold(), "the pen set after the text is seen");
  assert.equal(model.pen().getFgColor(), 1);
  clock.t = 2000;
  model.feed(bytes("\x1bc$ "));
  assert.equal(model.current, true, "a full clear: exact again");
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

/** Every cell (characters, width, colors, bold) and the cursor. */
function snapshot(model: ScreenModel): string {
  const cells = [];
  for (let row = 0; row < model.rows; row++) {
    for (let col = 0; col < model.cols; col++) {
      const cell = model.cell(row, col)!;
      const a = cell.attributes;
      cells.push(
        `${cell.chars}/${cell.width}/${a.getFgColor()}/${a.getBgColor()}/${a.isBold()}`,
      );
    }
  }
  return JSON.stringify({ cursor: model.cursor(), cells });
}

/** Lines of text a program might print, from a seed: long, wide, tabbed. */
function plainLines(count: number, seed: number): string {
  let state = seed;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  const pieces = ["word ", "\t", "漢字", "é", "x", "\r", "ab\x08c", "  "];
  let text = "";
  for (let i = 0; i < count; i++) {
    const length = Math.floor(next() * 40);
    for (let j = 0; j < length; j++) {
      text += pieces[Math.floor(next() * pieces.length)];
    }
    text += `${i}\r\n`;
  }
  return text;
}

for (
  const [what, count] of [
    ["a skipped burst", 120_000], // ~7 MB: only a summary kept
    ["a burst set aside", 15_000], // ~0.9 MB: kept whole until the lull
  ] as const
) {
  Deno.test(`${what} of plain text leaves the model exactly as parsing every byte would, and parses only the last screenful`, async () => {
    await exactAfterPlainBurst(count);
  });
}

async function exactAfterPlainBurst(count: number) {
  const clock = { t: 0 };
  const model = await ScreenModel.create(30, 6, () => clock.t);
  const reference = await everyByteParsed(30, 6);
  // A pen set before the burst colors all of it (and the blank lines).
  const before = bytes("$ cat big\r\n\x1b[1;33;44m");
  const huge = bytes(plainLines(count, 0xbeef)); // lines that wrap
  const after = bytes("\x1b[0m$ ");
  for (const part of [before, huge, after]) {
    for (let at = 0; at < part.length; at += 65536) {
      const chunk = part.subarray(at, at + 65536);
      model.feed(chunk);
      reference.feed(chunk);
    }
  }
  assert.ok(!model.current, "the model lags during the burst");
  clock.t += 5000;
  await quiet();
  assert.ok(model.current, "plain text: trusted again");
  assert.equal(reference.model.skippedBytes, 0);
  assert.ok(
    model.skippedBytes > huge.length - 80 * 1024,
    `skipped ${model.skippedBytes}`,
  );
  assert.ok(
    model.parsedBytes < 64 * 1024 + 16 * 1024,
    `parsed ${model.parsedBytes} bytes: more than the first window and a screenful`,
  );
  assert.equal(snapshot(model), snapshot(reference.model));
  model.close();
  reference.model.close();
}

Deno.test("a skipped burst under a scroll region, or with a C1 control split between chunks, leaves the model untrusted", async () => {
  for (
    const [name, prefix, split] of [
      ["scroll region", "\x1b[2;5r", false],
      ["split C1", "", true],
    ] as const
  ) {
    const clock = { t: 0 };
    const model = await ScreenModel.create(20, 6, () => clock.t);
    model.feed(bytes(prefix));
    const huge = bytes(lines(1, 300_000));
    const cut = 65536;
    if (split) {
      // "\xc2" ends one chunk, "\x9b" (CSI as a C1 control) starts the next.
      huge[10 * cut - 1] = 0xc2;
      huge[10 * cut] = 0x9b;
    }
    for (let at = 0; at < huge.length; at += cut) {
      model.feed(huge.subarray(at, at + cut));
    }
    clock.t = 1000;
    await quiet();
    assert.ok(model.skippedBytes > 2_000_000, name);
    assert.equal(model.current, false, `${name}: untrusted`);
    model.close();
  }
});

Deno.test("a burst that starts inside an escape sequence is not taken for plain text", async () => {
  const clock = { t: 0 };
  const model = await ScreenModel.create(20, 6, () => clock.t);
  model.feed(bytes("\x1b[3")); // the rest, "1m", comes with the burst
  const huge = bytes("1m" + lines(1, 300_000));
  model.feed(huge.subarray(0, 300 * 1024)); // a burst from its first byte
  for (let at = 300 * 1024; at < huge.length; at += 65536) {
    model.feed(huge.subarray(at, at + 65536));
  }
  clock.t = 1000;
  await quiet();
  assert.ok(model.skippedBytes > 2_000_000);
  assert.equal(model.current, false, "the pen changed unseen: untrusted");
  model.close();
});

Deno.test("a set-aside burst ends exactly as parsing every byte would: controls mid-way, a C1 control split between chunks, small chunks, lines longer than the kept tail", async () => {
  const cases: [string, Uint8Array, number, boolean][] = [];
  const plain = bytes(plainLines(12_000, 0x5eed)); // ~0.7 MB
  const mid = Math.floor(plain.length / 2);
  // Colors change half-way: only what comes before them can be skipped.
  const colored = new Uint8Array([
    ...plain.subarray(0, mid),
    ...bytes("\x1b[1;32m"),
    ...plain.subarray(mid),
  ]);
  cases.push(["a color change half-way", colored, 65536, true]);
  // A C1 CSI (0xc2 0x9b, "1m" after it) split between two chunks.
  const split = new Uint8Array([
    ...plain.subarray(0, 4096 * 40 - 1),
    0xc2,
    0x9b,
    ...bytes("1m"),
    ...plain.subarray(4096 * 40 - 1),
  ]);
  cases.push(["a C1 control split between chunks", split, 4096, true]);
  cases.push(["1000-byte chunks", plain, 1000, true]);
  // Lines of ~100 KiB: no start in the kept tail, so every byte is parsed.
  const long = bytes(
    Array.from({ length: 8 }, (_, i) => `${i}`.repeat(100_000) + "\r\n")
      .join(""),
  );
  cases.push(["lines longer than the kept tail", long, 65536, false]);
  for (const [name, burst, cut, shortcut] of cases) {
    const clock = { t: 0 };
    const model = await ScreenModel.create(30, 6, () => clock.t);
    const reference = await everyByteParsed(30, 6);
    const all = [bytes("$ cat big\r\n\x1b[33m"), burst, bytes("\x1b[0m$ ")];
    for (const part of all) {
      for (let at = 0; at < part.length; at += cut) {
        const chunk = part.subarray(at, at + cut);
        model.feed(chunk);
        reference.feed(chunk);
      }
    }
    assert.ok(!model.current, `${name}: set aside`);
    clock.t += 5000;
    await quiet();
    assert.ok(model.current, `${name}: trusted again`);
    assert.equal(reference.model.skippedBytes, 0);
    assert.equal(
      model.skippedBytes > 0,
      shortcut,
      `${name}: skipped ${model.skippedBytes}`,
    );
    assert.equal(snapshot(model), snapshot(reference.model), name);
    model.close();
    reference.model.close();
  }
});
