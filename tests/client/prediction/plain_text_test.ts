/**
 * The skipped-output scan against a byte-by-byte reference, at every
 * alignment: it must never call text plain that holds a byte which changes
 * the terminal's state, and must count every line feed.
 */

import assert from "node:assert/strict";
import {
  exactTailStart,
  firstControl,
  isPlainText,
  plainLineFeeds,
  splitC1,
} from "../../../src/client/prediction/plain_text.ts";

/** The obvious definition, one byte at a time. */
function reference(bytes: Uint8Array): number {
  let lineFeeds = 0;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (byte === 0x1b || byte === 0x0e || byte === 0x0f) return -1;
    if (byte === 0xc2 && bytes[i + 1] >= 0x80 && bytes[i + 1] <= 0x9f) {
      return -1;
    }
    if (byte === 0x0a) lineFeeds++;
  }
  return lineFeeds;
}

/** A deterministic pseudo-random source (xorshift32). */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

const encode = (text: string) => new TextEncoder().encode(text);

Deno.test("plain text: line feeds counted at every alignment and length, UTF-8 and controls that change nothing included", () => {
  const text = encode(
    "ab\r\ncd\tef\x08\x07 é漢字\n\nline\rover\x0b\x0c\xa0end\n",
  );
  const buffer = new Uint8Array(text.length + 8);
  for (let offset = 0; offset < 8; offset++) {
    buffer.set(text, offset);
    for (let length = 0; length <= text.length; length++) {
      const bytes = buffer.subarray(offset, offset + length);
      assert.equal(
        plainLineFeeds(bytes),
        reference(bytes),
        `offset ${offset} length ${length}`,
      );
    }
  }
  assert.equal(plainLineFeeds(text), 4);
});

Deno.test("plain text: ESC, SO, SI and UTF-8 C1 controls are found wherever they sit in a word", () => {
  const controls = [[0x1b], [0x0e], [0x0f], [0xc2, 0x80], [0xc2, 0x9b], [
    0xc2,
    0x9f,
  ]];
  for (const control of controls) {
    for (let at = 0; at < 12; at++) {
      for (let offset = 0; offset < 4; offset++) {
        const buffer = new Uint8Array(offset + 24).fill(0x61);
        buffer.set(control, offset + at);
        const bytes = buffer.subarray(offset);
        assert.equal(
          plainLineFeeds(bytes),
          -1,
          `${control} at ${at}, offset ${offset}`,
        );
      }
    }
  }
  // Harmless neighbours of the C1 range: U+00A0 and U+007F.
  assert.equal(plainLineFeeds(Uint8Array.of(0xc2, 0xa0, 0x7f, 0x0a)), 1);
});

Deno.test("plain text: random bytes agree with the byte-by-byte reference", () => {
  const next = random(0x5eed);
  // Mostly ASCII text, with every byte value now and then.
  for (let round = 0; round < 2000; round++) {
    const bytes = new Uint8Array(1 + Math.floor(next() * 300));
    for (let i = 0; i < bytes.length; i++) {
      const roll = next();
      bytes[i] = roll < 0.96
        ? 0x20 + Math.floor(next() * 95)
        : roll < 0.98
        ? 0x0a
        : Math.floor(next() * 256);
    }
    const offset = Math.floor(next() * 4);
    const view = bytes.subarray(offset);
    assert.equal(plainLineFeeds(view), reference(view), `round ${round}`);
  }
});

Deno.test("a C1 control split between two chunks is seen", () => {
  assert.equal(splitC1(Uint8Array.of(0x61, 0xc2), Uint8Array.of(0x9b)), true);
  assert.equal(splitC1(Uint8Array.of(0x61, 0xc2), Uint8Array.of(0xa9)), false);
  assert.equal(splitC1(Uint8Array.of(0x61), Uint8Array.of(0x9b)), false);
  assert.equal(splitC1(new Uint8Array(0), Uint8Array.of(0x9b)), false);
});

Deno.test("isPlainText says what the byte-by-byte reference says: every control at every place and alignment, long runs", () => {
  const controls = [[0x1b], [0x0e], [0x0f], [0xc2, 0x85], [0xc2, 0x9f]];
  for (const control of controls) {
    for (let at = 0; at < 40; at++) {
      for (let offset = 0; offset < 4; offset++) {
        const buffer = new Uint8Array(offset + 48).fill(0x61);
        buffer.set(control, offset + at);
        assert.equal(isPlainText(buffer.subarray(offset)), false);
      }
    }
  }
  // Bytes next to the ones searched for, in every lane of a block.
  const near = Uint8Array.of(0x1a, 0x1c, 0x0d, 0x0c, 0x10, 0xc3, 0x9b, 0xc2);
  assert.equal(isPlainText(near), true, "0xc2 last, nothing after it");
  assert.equal(isPlainText(Uint8Array.of(0xc2, 0xa0, ...near, 0x41)), true);
  // A C1 control across a word boundary deep in a long run.
  const long = new Uint8Array(200_000).fill(0x61);
  assert.equal(isPlainText(long), true);
  long[100_003] = 0xc2;
  assert.equal(isPlainText(long), true, "0xc2 then 'a': plain");
  long[100_004] = 0x9b;
  assert.equal(isPlainText(long), false, "0xc2 0x9b across words");
  long[100_004] = 0x61;
  long[long.length - 1] = 0x1b;
  assert.equal(isPlainText(long), false, "ESC as the very last byte");
  // Random text, with every byte value now and then.
  const next = random(0xfeed);
  for (let round = 0; round < 300; round++) {
    const bytes = new Uint8Array(1 + Math.floor(next() * 5000));
    for (let i = 0; i < bytes.length; i++) {
      bytes[i] = next() < 0.999
        ? 0x20 + Math.floor(next() * 95)
        : Math.floor(next() * 256);
    }
    const view = bytes.subarray(Math.floor(next() * 4));
    assert.equal(isPlainText(view), reference(view) >= 0, `round ${round}`);
  }
});

Deno.test("isPlainText agrees with the reference on text dense with line feeds, tabs, UTF-8 and bytes next to the controls", () => {
  // Bytes that fail the first word test but are plain, and the controls.
  const near = [0x0a, 0x0d, 0x09, 0x0c, 0x10, 0x1a, 0x1c, 0x1f, 0x7f];
  const high = [0x80, 0x9b, 0x9f, 0xa0, 0xc2, 0xc3, 0xe2, 0xff];
  const controls = [0x1b, 0x0e, 0x0f];
  const next = random(0xbead);
  const pick = (list: number[]) => list[Math.floor(next() * list.length)];
  for (let round = 0; round < 3000; round++) {
    const bytes = new Uint8Array(1 + Math.floor(next() * 200));
    const controlRate = next() < 0.5 ? 0 : 0.005;
    for (let i = 0; i < bytes.length; i++) {
      const roll = next();
      bytes[i] = roll < controlRate
        ? pick(controls)
        : roll < 0.8
        ? 0x20 + Math.floor(next() * 95)
        : roll < 0.9
        ? pick(near)
        : pick(high);
    }
    const view = bytes.subarray(Math.floor(next() * 4));
    assert.equal(isPlainText(view), reference(view) >= 0, `round ${round}`);
  }
});

/** True when `bytes[at]` is ESC, SO, SI, or 0xc2 starting a C1 control. */
function controlAt(bytes: Uint8Array, at: number): boolean {
  const byte = bytes[at];
  return byte === 0x1b || byte === 0x0e || byte === 0x0f ||
    (byte === 0xc2 && bytes[at + 1] >= 0x80 && bytes[at + 1] <= 0x9f);
}

/** exactTailStart as first written, byte by byte: the reference. */
function referenceTailStart(
  window: Uint8Array,
  lineFeedsBefore: number,
  rows: number,
): number {
  let end = window.length;
  for (let at = 0; at < window.length; at++) {
    if (controlAt(window, at)) {
      end = at;
      break;
    }
  }
  let after = 0;
  for (let at = end - 1; at >= 0; at--) {
    if (window[at] === 0x0a) after++;
    else if (window[at] === 0x0d && after >= rows) {
      const before = lineFeedsBefore + reference(window.subarray(0, at));
      return before >= rows ? at + 1 : -1;
    }
  }
  return -1;
}

Deno.test("exactTailStart and firstControl agree with byte-by-byte references on random text with line ends and controls", () => {
  const next = random(0x7a11);
  const pick = (list: number[]) => list[Math.floor(next() * list.length)];
  let found = 0;
  for (let round = 0; round < 4000; round++) {
    const bytes = new Uint8Array(Math.floor(next() * 400));
    const controlRate = next() < 0.5 ? 0 : 0.003;
    for (let i = 0; i < bytes.length; i++) {
      const roll = next();
      bytes[i] = roll < controlRate
        ? pick([0x1b, 0x0e, 0x0f, 0xc2])
        : roll < 0.85
        ? 0x20 + Math.floor(next() * 95)
        : roll < 0.93
        ? pick([0x0a, 0x0d])
        : pick([0x09, 0x1a, 0x80, 0x9b, 0xc2, 0xc3]);
    }
    const view = bytes.subarray(Math.floor(next() * 4));
    const rows = 1 + Math.floor(next() * 6);
    const before = Math.floor(next() * 8);
    const start = exactTailStart(view, before, rows);
    assert.equal(
      start,
      referenceTailStart(view, before, rows),
      `round ${round}`,
    );
    if (start >= 0) found++;
    let first = -1;
    for (let at = 0; at < view.length && first < 0; at++) {
      if (controlAt(view, at)) first = at;
    }
    assert.equal(firstControl(view), first, `round ${round}`);
  }
  // Both answers happen often: the comparison is not only of -1s.
  assert.ok(found > 400 && found < 3600, `${found} starts found`);
});
