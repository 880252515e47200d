/**
 * What the model needs to know of output it does not parse: whether it was
 * plain text (no byte that can change a terminal's modes, pen or
 * charsets), how many line feeds it held, and where in what it kept it can
 * start parsing and still end exactly as the terminal.
 *
 * The scans are the model's whole cost while bulk output streams by, so
 * they read whole words: {@linkcode plainLineFeeds} (used only until a
 * screen height of line feeds is counted) four bytes a turn, passing over a
 * word with no byte below 0x20 and none from 0x80 up with one test;
 * {@linkcode firstControl} and {@linkcode isPlainText} (every other byte)
 * sixteen a turn, with a second word test that lets line feeds, tabs and
 * carriage returns pass too, so only a word that may hold ESC, SO, SI or a
 * byte from 0x80 up is looked at byte by byte. Four native `indexOf` scans
 * cost 3–4 times as much, and decoding to a string for a regex makes
 * garbage. (The sixteen-byte word scan runs at ~0.2 ms/MB on base64 lines,
 * against 0.4–0.5 for the four-byte one; a WebAssembly SIMD scan was once
 * measured at 0.1, too little more to carry hand-assembled bytecode.)
 *
 * @module
 */

/** What a byte is to the scan: see {@linkcode plainLineFeeds}. */
const OTHER = 0;
const LINE_FEED = 1;
const CONTROL = 2;
/** 0xc2: the lead byte of C1 controls (U+0080..U+009F) in UTF-8. */
const C1_LEAD = 3;

const KIND = new Uint8Array(256);
KIND[0x0a] = LINE_FEED;
KIND[0x0e] = CONTROL; // SO: shift to G1
KIND[0x0f] = CONTROL; // SI: shift to G0
KIND[0x1b] = CONTROL; // ESC: every sequence starts here
KIND[0xc2] = C1_LEAD;

/** True for the second byte of a C1 control in UTF-8 (after 0xc2). */
function isC1Trail(byte: number): boolean {
  return byte >= 0x80 && byte <= 0x9f;
}

/**
 * The number of line feeds in `bytes`, or -1 when they hold an ESC, SO,
 * SI or a C1 control (`c2 80`..`c2 9f`; a pair split between two chunks
 * is the caller's to check, with {@linkcode splitC1}).
 *
 * @example
 * ```ts
 * plainLineFeeds(new TextEncoder().encode("a\r\nb\n")); // 2
 * plainLineFeeds(new TextEncoder().encode("\x1b[1mb")); // -1
 * ```
 */
export function plainLineFeeds(bytes: Uint8Array): number {
  const length = bytes.length;
  // Words must be aligned: bytes before the first boundary go one by one.
  const lead = Math.min(length, (4 - (bytes.byteOffset & 3)) & 3);
  const words = (length - lead) >>> 2;
  let lineFeeds = 0;
  let at = 0;
  for (; at < lead; at++) {
    const kind = KIND[bytes[at]];
    if (kind === OTHER) continue;
    if (kind === LINE_FEED) lineFeeds++;
    else if (kind === CONTROL || isC1Trail(bytes[at + 1])) return -1;
  }
  // (No view when there is no whole word: its start may not be aligned.)
  const view = words === 0
    ? new Int32Array(0)
    : new Int32Array(bytes.buffer, bytes.byteOffset + lead, words);
  for (let word = 0; word < words; word++) {
    const value = view[word];
    // A byte below 0x20 borrows into its top bit when 0x20 is taken from
    // it; a byte from 0x80 up has it already. Borrows between bytes only
    // add false alarms, which the byte-by-byte look settles.
    if ((((value - 0x20202020) | value) & 0x80808080) === 0) continue;
    for (let i = lead + word * 4, end = i + 4; i < end; i++) {
      const kind = KIND[bytes[i]];
      if (kind === OTHER) continue;
      if (kind === LINE_FEED) lineFeeds++;
      else if (kind === CONTROL || isC1Trail(bytes[i + 1])) return -1;
    }
  }
  for (at = lead + words * 4; at < length; at++) {
    const kind = KIND[bytes[at]];
    if (kind === OTHER) continue;
    if (kind === LINE_FEED) lineFeeds++;
    else if (kind === CONTROL || isC1Trail(bytes[at + 1])) return -1;
  }
  return lineFeeds;
}

/**
 * True when `bytes` hold no ESC, SO, SI or C1 control (as
 * {@linkcode plainLineFeeds}, without the count). This is the scan every
 * byte of a long bulk stream goes through, so it reads 16 bytes a turn:
 * one test passes over four words whose bytes all lie in 0x20..0x7f; a
 * word that fails it (a line feed, a tab, UTF-8) gets a second test that
 * looks only for ESC, SO, SI or a byte from 0x80 up, and only a word that
 * fails both is looked at byte by byte. A line feed, found in every few
 * blocks of text, so costs two word tests, not four byte looks (about
 * twice as fast as {@linkcode plainLineFeeds} on 80-column lines).
 *
 * @example
 * ```ts
 * isPlainText(new TextEncoder().encode("a\r\nb")); // true
 * isPlainText(new TextEncoder().encode("\x1b[1mb")); // false
 * ```
 */
export function isPlainText(bytes: Uint8Array): boolean {
  return firstControl(bytes) < 0;
}

/**
 * Where the first ESC, SO, SI or C1 control of `bytes` is (for a C1
 * control, its 0xc2), or -1 when they hold none: the scan
 * {@linkcode isPlainText} describes.
 *
 * @example
 * ```ts
 * firstControl(new TextEncoder().encode("ab\x1b[m")); // 2
 * ```
 */
export function firstControl(bytes: Uint8Array): number {
  const length = bytes.length;
  // Words must be aligned: bytes before the first boundary go one by one.
  const lead = Math.min(length, (4 - (bytes.byteOffset & 3)) & 3);
  const words = (length - lead) >>> 2;
  for (let at = 0; at < lead; at++) {
    if (isControlAt(bytes, at)) return at;
  }
  // (No view when there is no whole word: its start may not be aligned.)
  const view = words === 0
    ? new Int32Array(0)
    : new Int32Array(bytes.buffer, bytes.byteOffset + lead, words);
  let word = 0;
  for (; word + 3 < words; word += 4) {
    const a = view[word], b = view[word + 1];
    const c = view[word + 2], d = view[word + 3];
    // As in plainLineFeeds: a top bit set means a byte outside 0x20..0x7f.
    if (
      (((a - 0x20202020) | a | (b - 0x20202020) | b | (c - 0x20202020) | c |
        (d - 0x20202020) | d) & 0x80808080) === 0
    ) continue;
    const at = lead + word * 4;
    let found = -1;
    if (mayHoldControl(a)) found = controlInWord(bytes, at);
    if (found < 0 && mayHoldControl(b)) found = controlInWord(bytes, at + 4);
    if (found < 0 && mayHoldControl(c)) found = controlInWord(bytes, at + 8);
    if (found < 0 && mayHoldControl(d)) found = controlInWord(bytes, at + 12);
    if (found >= 0) return found;
  }
  for (; word < words; word++) {
    if (!mayHoldControl(view[word])) continue;
    const found = controlInWord(bytes, lead + word * 4);
    if (found >= 0) return found;
  }
  for (let at = lead + words * 4; at < length; at++) {
    if (isControlAt(bytes, at)) return at;
  }
  return -1;
}

/**
 * False only when none of the word's four bytes is ESC, SO, SI or from
 * 0x80 up (a C1 control's lead byte 0xc2 is one of those). A byte equal to
 * k is found as a zero byte of `word ^ k` (the classic test
 * `(x - 0x01010101) & ~x & 0x80808080`, exact as a yes or no); SO and SI
 * differ only in their low bit, so both are one test.
 */
function mayHoldControl(word: number): boolean {
  const esc = word ^ 0x1b1b1b1b;
  const shift = (word & 0xfefefefe) ^ 0x0e0e0e0e;
  return ((((esc - 0x01010101) & ~esc) | ((shift - 0x01010101) & ~shift) |
    word) & 0x80808080) !== 0;
}

/** The first of the four bytes from `at` that is ESC, SO, SI or starts C1; -1 if none. */
function controlInWord(bytes: Uint8Array, at: number): number {
  for (let i = at; i < at + 4; i++) if (isControlAt(bytes, i)) return i;
  return -1;
}

/** True when `bytes[at]` is ESC, SO, SI, or 0xc2 with a C1 trail after it. */
function isControlAt(bytes: Uint8Array, at: number): boolean {
  const kind = KIND[bytes[at]];
  return kind === CONTROL || (kind === C1_LEAD && isC1Trail(bytes[at + 1]));
}

/**
 * True when a C1 control's two UTF-8 bytes fall on either side of a chunk
 * boundary: `before` ends with 0xc2 and `after` starts with 0x80..0x9f.
 */
export function splitC1(before: Uint8Array, after: Uint8Array): boolean {
  return before.length > 0 && after.length > 0 &&
    before[before.length - 1] === 0xc2 && isC1Trail(after[0]);
}

/**
 * Where the model can start parsing the kept `window` of skipped output
 * and end exactly as the terminal that got every byte, or -1 if nowhere:
 * right after the latest carriage return such that
 * - every byte before it is plain text (those of the window are checked
 *   here; `lineFeedsBefore` counts the line feeds before the window, all
 *   of it plain text),
 * - at least `rows` line feeds came before it (the cursor stands on the
 *   bottom row, at column 0 after the carriage return), and
 * - at least `rows` line feeds follow it before any byte that is not plain
 *   text: each scrolls in a blank row at the bottom, so every visible row
 *   then comes from after it, whatever the screen held before.
 * From there on the model parses what the terminal did, from the same
 * state. The caller makes sure the whole screen scrolls (no scroll region).
 *
 * @example
 * ```ts
 * const text = new TextEncoder().encode("1\r\n2\r\n3\r\n4\r\n");
 * exactTailStart(text, 100, 2); // 8: after the "\r" of "2\r\n"
 * ```
 */
export function exactTailStart(
  window: Uint8Array,
  lineFeedsBefore: number,
  rows: number,
): number {
  const first = firstControl(window);
  const end = first < 0 ? window.length : first;
  // Back from the end to the rows-th line feed: a carriage return before
  // it has at least `rows` after it, one after it fewer.
  let after = 0;
  let at = end;
  while (after < rows) {
    at = at === 0 ? -1 : window.lastIndexOf(0x0a, at - 1);
    if (at < 0) return -1;
    after++;
  }
  const carriageReturn = at === 0 ? -1 : window.lastIndexOf(0x0d, at - 1);
  if (carriageReturn < 0) return -1;
  // All plain before it (it is before `end`): are there `rows` line feeds?
  let before = lineFeedsBefore;
  for (let from = 0; before < rows; before++) {
    const lineFeed = window.indexOf(0x0a, from);
    if (lineFeed < 0 || lineFeed >= carriageReturn) return -1;
    from = lineFeed + 1;
  }
  return carriageReturn + 1;
}
