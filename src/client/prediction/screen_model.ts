/**
 * The client's model of its own terminal: every byte the remote sends is
 * fed to a headless xterm (`@xterm/headless`, the emulator VS Code uses),
 * so the predictor can read cells and the cursor, and the painter can
 * repaint cells exactly as the remote left them.
 *
 * Parsing costs ~60 MB/s here, slower than a bulk stream arrives, so the
 * model feeds itself lazily: a burst (over 256 KiB within 100 ms) is set
 * aside and parsed once the output has been quiet for 100 ms, off the
 * stream's path. A burst over 2 MiB is not kept at all: the model keeps a
 * summary of what it skipped (its last 64 KiB; whether any escape sequence
 * or charset shift was in it; how many line feeds) and, once quiet, feeds
 * only that tail. That is exact when the skipped bytes held no ESC, SO, SI
 * or C1 control (modes, colors and charsets stayed as the model has them)
 * and at least one screen height of line feeds before and after where the
 * tail starts (right after a carriage return: column 0, bottom row): every
 * visible row then comes from the tail, on the local terminal as in the
 * model. Otherwise the model is marked untrusted until a full clear (RIS, or
 * cursor home plus erase display). While the model lags or is untrusted,
 * {@linkcode predictable} is false: nothing is predicted.
 *
 * @module
 */

import { type CursorPosition, type ScreenView, unref } from "./screen_view.ts";

/** Bytes within {@linkcode BURST_WINDOW_MS} that make a burst. */
const BURST_BYTES = 256 * 1024;
const BURST_WINDOW_MS = 100;
/** Output silence after which set-aside bytes are parsed. */
const QUIET_MS = 100;
/** Set-aside bytes parsed per turn of the event loop. */
const DRAIN_SLICE = 256 * 1024;
/** Past this many set-aside bytes, keep only a tail. */
const MAX_DEFERRED = 2 * 1024 * 1024;
/** The tail kept of skipped output. */
const TAIL_BYTES = 64 * 1024;

/** The attribute accessors xterm's cells and its current pen share. */
export interface CellAttributes {
  isBold(): number;
  isDim(): number;
  isItalic(): number;
  isUnderline(): number;
  isBlink(): number;
  isInverse(): number;
  isInvisible(): number;
  isStrikethrough(): number;
  isOverline(): number;
  isFgRGB(): boolean;
  isFgPalette(): boolean;
  isBgRGB(): boolean;
  isBgPalette(): boolean;
  getFgColor(): number;
  getBgColor(): number;
}

/** One cell of the model, for repainting. */
export interface ModelCell {
  /** The characters ("" for an empty cell). */
  chars: string;
  /** 1, 2 for a wide character, 0 for the right half of one. */
  width: number;
  attributes: CellAttributes;
}

// deno-lint-ignore no-explicit-any
type XtermModule = any;
let xtermModule: Promise<XtermModule> | undefined;

/** Loads `@xterm/headless` once (only clients that predict pay for it). */
function loadXterm(): Promise<XtermModule> {
  // Inline, not through deno.json's imports: `et` runs from any directory.
  // deno-lint-ignore no-import-prefix
  return xtermModule ??= import("npm:@xterm/headless@6.0.0").then((m) =>
    m.default ?? m
  );
}

const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();

/** Full clears after which an untrusted model matches the terminal again. */
const CLEARS = ["\x1bc", "\x1b[H\x1b[2J", "\x1b[2J\x1b[H", "\x1b[1;1H\x1b[2J"];

/**
 * The model: a headless xterm fed the remote's bytes.
 *
 * @example
 * ```ts
 * const model = await ScreenModel.create(80, 24);
 * model.feed(new TextEncoder().encode("$ "));
 * model.cursor(); // { row: 0, col: 2 }
 * ```
 */
export class ScreenModel implements ScreenView {
  // deno-lint-ignore no-explicit-any
  #terminal: any;
  // deno-lint-ignore no-explicit-any
  #core: any;
  #state: "live" | "held" | "deferred" | "skipping" = "live";
  #trusted = true;
  #windowStart = 0;
  #windowBytes = 0;
  #deferred: Uint8Array[] = [];
  #deferredBytes = 0;
  #lastFeedAt = 0;
  #quietTimer: ReturnType<typeof setTimeout> | undefined;
  #draining = false;
  #skip = newSkip();
  #clearCarry = "";
  #now: () => number;
  /** Bytes parsed, for tests and the benchmark. */
  parsedBytes = 0;
  /** Bytes skipped for good (only a tail was parsed). */
  skippedBytes = 0;

  private constructor(terminal: unknown, now: () => number) {
    this.#terminal = terminal;
    // deno-lint-ignore no-explicit-any
    this.#core = (terminal as any)._core;
    this.#now = now;
  }

  /** A model of a `cols` x `rows` terminal, empty, cursor at the top left. */
  static async create(
    cols: number,
    rows: number,
    now: () => number = () => performance.now(),
  ): Promise<ScreenModel> {
    const { Terminal } = await loadXterm();
    const terminal = new Terminal({
      cols,
      rows,
      scrollback: 0,
      allowProposedApi: true,
      logLevel: "off",
    });
    return new ScreenModel(terminal, now);
  }

  /** Width in columns. */
  get cols(): number {
    return this.#terminal.cols;
  }

  /** Height in rows. */
  get rows(): number {
    return this.#terminal.rows;
  }

  /** True when every byte fed so far is parsed and the model is trusted. */
  get current(): boolean {
    return this.#state === "live" && this.#trusted;
  }

  /**
   * Takes the remote's next bytes, in order. The model may keep `bytes`
   * for a while (set aside): the caller must not change them afterwards.
   */
  feed(bytes: Uint8Array): void {
    const now = this.#now();
    this.#lastFeedAt = now;
    if (now - this.#windowStart > BURST_WINDOW_MS) {
      this.#windowStart = now;
      this.#windowBytes = 0;
    }
    this.#windowBytes += bytes.length;
    if (this.#state === "live" && this.#windowBytes > BURST_BYTES) {
      this.#state = "deferred";
    }
    if (this.#state === "live") {
      this.#parse(bytes);
      return;
    }
    if (this.#state === "held" || this.#state === "deferred") {
      this.#deferred.push(bytes);
      this.#deferredBytes += bytes.length;
      if (this.#deferredBytes > MAX_DEFERRED) this.#startSkipping();
    } else this.#summarize(bytes);
    if (this.#state !== "held") this.#armQuietTimer();
  }

  /**
   * Sets output aside until {@linkcode placeAt}: the local terminal was
   * asked where its cursor is (the remote's output lands there, not at the
   * top left), and its answer comes on the keyboard's side.
   */
  hold(): void {
    this.#catchUpNow();
    this.#state = "held";
  }

  /**
   * Where the local cursor stood when {@linkcode hold} was called (0-based),
   * or null if the terminal did not say: the model moves its cursor there
   * and parses what was set aside; without an answer it is untrusted until
   * a full clear.
   */
  placeAt(at: CursorPosition | null): void {
    if (this.#state !== "held") return;
    this.#state = "live";
    const held = this.#deferred;
    this.#deferred = [];
    this.#deferredBytes = 0;
    if (at === null) this.#trusted = false;
    else {
      this.#parse(encoder.encode(`\x1b[${at.row + 1};${at.col + 1}H`));
      this.#trusted = true;
    }
    for (const chunk of held) this.feed(chunk);
  }

  /** Resizes the model with the local terminal; untrusted until a clear. */
  resize(cols: number, rows: number): void {
    if (cols === this.cols && rows === this.rows) return;
    // Terminals reflow (or do not) each their own way: wait for a clear.
    this.#catchUpNow();
    this.#terminal.resize(cols, rows);
    this.#trusted = false;
  }

  /** Parses whatever is set aside at once (at the end of a session). */
  settle(): void {
    this.#catchUpNow();
  }

  /**
   * Calls `listener` with what the emulator would answer the remote (a
   * cursor position report, device attributes). The client never sends
   * these (its real terminal answers); a test's stand-in terminal does.
   */
  onReply(listener: (data: string) => void): void {
    this.#terminal.onData(listener);
  }

  /** Stops the timers. */
  close(): void {
    clearTimeout(this.#quietTimer);
    this.#quietTimer = undefined;
  }

  cursor(): CursorPosition {
    const buffer = this.#terminal.buffer.active;
    return { row: buffer.cursorY, col: buffer.cursorX };
  }

  cellText(row: number, col: number): string {
    const cell = this.#cell(row, col);
    if (cell === undefined) return "";
    if (cell.getWidth() === 0) return "\u0000";
    const chars: string = cell.getChars();
    return chars === " " ? "" : chars;
  }

  alternate(): boolean {
    return this.#terminal.buffer.active.type === "alternate";
  }

  predictable(): boolean {
    if (!this.current) return false;
    const modes = this.#terminal.modes;
    const charsets = this.#core._charsetService;
    return !modes.insertMode && !modes.originMode &&
      charsets.glevel === 0 && charsets.charset === undefined;
  }

  /** A cell with its attributes, for repainting; undefined off screen. */
  cell(row: number, col: number): ModelCell | undefined {
    const cell = this.#cell(row, col);
    if (cell === undefined) return undefined;
    return { chars: cell.getChars(), width: cell.getWidth(), attributes: cell };
  }

  /** The pen: attributes the remote's next glyph would get. */
  pen(): CellAttributes {
    return this.#core._inputHandler._curAttrData;
  }

  /** True when the next glyph wraps to the next line before printing. */
  autowrap(): boolean {
    return this.#terminal.modes.wraparoundMode;
  }

  #cell(row: number, col: number) {
    if (row < 0 || col < 0 || row >= this.rows || col >= this.cols) {
      return undefined;
    }
    const buffer = this.#terminal.buffer.active;
    return buffer.getLine(buffer.baseY + row)?.getCell(col);
  }

  #parse(bytes: Uint8Array): void {
    const cleared = !this.#trusted && this.#seesClear(bytes);
    this.#core.writeSync(bytes);
    this.parsedBytes += bytes.length;
    if (cleared) this.#trusted = true; // the clear is inside this chunk
  }

  /** Whether `bytes` (after the last few before them) hold a full clear. */
  #seesClear(bytes: Uint8Array): boolean {
    const text = this.#clearCarry + latin1.decode(bytes);
    if (CLEARS.some((clear) => text.includes(clear))) {
      this.#clearCarry = "";
      return true;
    }
    this.#clearCarry = text.slice(-8);
    return false;
  }

  #armQuietTimer(): void {
    if (this.#quietTimer !== undefined) return;
    const check = () => {
      const idle = this.#now() - this.#lastFeedAt;
      if (idle < QUIET_MS) {
        this.#quietTimer = unref(setTimeout(check, QUIET_MS - idle));
        return;
      }
      this.#quietTimer = undefined;
      this.#catchUpSlowly();
    };
    this.#quietTimer = unref(setTimeout(check, QUIET_MS));
  }

  /** Parses what was set aside in slices, stepping back when output resumes. */
  #catchUpSlowly(): void {
    if (this.#draining) return;
    this.#draining = true;
    const step = () => {
      if (this.#now() - this.#lastFeedAt < QUIET_MS) {
        this.#draining = false;
        this.#armQuietTimer(); // output again: wait for the next lull
        return;
      }
      if (this.#state === "skipping") {
        this.#resyncFromTail();
        this.#draining = false;
        return;
      }
      let budget = DRAIN_SLICE;
      while (budget > 0 && this.#deferred.length > 0) {
        const chunk = this.#deferred.shift()!;
        this.#deferredBytes -= chunk.length;
        budget -= chunk.length;
        this.#parse(chunk);
      }
      if (this.#deferred.length > 0) {
        setTimeout(step, 0);
        return;
      }
      this.#state = "live";
      this.#draining = false;
    };
    step();
  }

  #catchUpNow(): void {
    if (this.#state === "held") return; // only placeAt ends a hold
    if (this.#state === "skipping") this.#resyncFromTail();
    for (const chunk of this.#deferred) this.#parse(chunk);
    this.#deferred = [];
    this.#deferredBytes = 0;
    this.#state = "live";
  }

  #startSkipping(): void {
    this.#state = "skipping";
    this.#skip = newSkip();
    for (const chunk of this.#deferred) this.#summarize(chunk);
    this.#deferred = [];
    this.#deferredBytes = 0;
  }

  #summarize(bytes: Uint8Array): void {
    const skip = this.#skip;
    this.skippedBytes += bytes.length;
    if (skip.clean && !isPlainText(bytes)) skip.clean = false;
    // Counted only up to what the tail could ever need (see #resyncFromTail).
    if (skip.clean && skip.lineFeeds < this.rows + TAIL_BYTES) {
      skip.lineFeeds += countByte(bytes, 0x0a);
    }
    skip.chunks.push(bytes);
    skip.chunkBytes += bytes.length;
    while (skip.chunkBytes - skip.chunks[0].length >= TAIL_BYTES) {
      skip.chunkBytes -= skip.chunks.shift()!.length;
    }
  }

  /** Feeds only the tail of skipped output (see the module's comment). */
  #resyncFromTail(): void {
    const { clean, lineFeeds, chunks, chunkBytes } = this.#skip;
    this.#state = "live";
    this.#skip = newSkip();
    // The last TAIL_BYTES of what was skipped. lineFeeds saturates at rows
    // + TAIL_BYTES, so lineFeeds - (line feeds after i) >= rows still means
    // at least rows line feeds before i.
    const joined = new Uint8Array(chunkBytes);
    let at = 0;
    for (const chunk of chunks) {
      joined.set(chunk, at);
      at += chunk.length;
    }
    const tail = joined.subarray(Math.max(0, chunkBytes - TAIL_BYTES));
    const rows = this.rows;
    let start = -1;
    if (clean) {
      let after = countByte(tail, 0x0a);
      for (let i = 0; i < tail.length; i++) {
        if (tail[i] === 0x0a) after--;
        if (tail[i] !== 0x0d) continue;
        if (after < rows) break;
        if (lineFeeds - after >= rows) {
          start = i + 1;
          break;
        }
      }
    }
    if (start < 0) {
      this.#trusted = false;
      this.#parse(tail); // close, and a clear makes it exact again
      return;
    }
    this.#parse(encoder.encode("\r" + "\n".repeat(rows)));
    this.#parse(tail.subarray(start));
  }
}

/** A fresh summary of skipped output. */
function newSkip() {
  return {
    clean: true,
    lineFeeds: 0,
    chunks: [] as Uint8Array[],
    chunkBytes: 0,
  };
}

/**
 * No ESC, SO, SI, or C1 control (as UTF-8 `c2 80`..`c2 9f`; one split
 * between two chunks is missed: that needs a stream that is not text to
 * begin with). Exported for tests.
 *
 * One pass over 4-byte words: a word whose bytes are all in 0x20..0x7f
 * (no high bit, none below 0x20) cannot hold any of them, and only the
 * other words (a line feed every ~19 words of ordinary text) are looked at
 * byte by byte. About 4x cheaper than four native `indexOf` scans, which
 * were most of the model's cost while a bulk stream is skipped; it
 * allocates nothing either.
 */
export function isPlainText(bytes: Uint8Array): boolean {
  const end = bytes.length;
  let at = 0;
  // Bytes before the first 4-byte boundary, then words, then the rest.
  const head = Math.min(end, (4 - (bytes.byteOffset & 3)) & 3);
  for (; at < head; at++) if (special(bytes, at)) return false;
  const words = (end - at) >> 2;
  if (words > 0) {
    const view = new Int32Array(bytes.buffer, bytes.byteOffset + at, words);
    for (let i = 0; i < words; i++) {
      const w = view[i];
      // High bit set in some byte, or some byte below 0x20.
      if (((w | ((w - 0x20202020) & ~w)) & 0x80808080) === 0) continue;
      const from = at + (i << 2);
      for (let j = from; j < from + 4; j++) {
        if (special(bytes, j)) return false;
      }
    }
    at += words << 2;
  }
  for (; at < end; at++) if (special(bytes, at)) return false;
  return true;
}

/** ESC, SO, SI, or the start of a UTF-8 C1 control, at `at`. */
function special(bytes: Uint8Array, at: number): boolean {
  const b = bytes[at];
  if (b === 0x1b || b === 0x0e || b === 0x0f) return true;
  if (b !== 0xc2) return false;
  const next = bytes[at + 1];
  return next >= 0x80 && next <= 0x9f;
}

function countByte(bytes: Uint8Array, value: number): number {
  let count = 0;
  for (
    let at = bytes.indexOf(value);
    at >= 0;
    at = bytes.indexOf(value, at + 1)
  ) {
    count++;
  }
  return count;
}
