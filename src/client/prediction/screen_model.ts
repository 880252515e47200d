/**
 * The client's model of its own terminal: every byte the remote sends is
 * fed to a headless xterm (`@xterm/headless`, the emulator VS Code uses),
 * so the predictor can read cells and the cursor, and the painter can
 * repaint cells exactly as the remote left them.
 *
 * Parsing costs ~60 MB/s here, slower than a bulk stream arrives, so the
 * model feeds itself lazily: a burst (over 64 KiB within 100 ms) is set
 * aside and parsed once the output has been quiet for 100 ms, off the
 * stream's path (only its last screenful when that is exact, as below,
 * looked for in the last {@linkcode TAIL_BYTES} of its plain text; when it
 * is not, parsing every byte waits for {@linkcode FULL_PARSE_QUIET_MS} of
 * quiet, or for a key typed and a lull of 100 ms).
 * A burst over 2 MiB is not kept at all: the model keeps its last 64 KiB
 * and, for what fell out of that window, whether any ESC,
 * SO, SI or C1 control was in it and how many line feeds (one cheap pass,
 * plain_text.ts). Once quiet it feeds only the last screenful, from where
 * {@linkcode exactTailStart} says the rest is exact: the bytes before held
 * no such control (modes, colors and charsets stayed as the model has
 * them), and a screen height of line feeds came before and after (right
 * after a carriage return: column 0, bottom row), so every visible row
 * comes from what is parsed, on the local terminal as in the model. The
 * burst must not start inside an escape sequence, and no scroll region may
 * be set. Otherwise the model is marked untrusted until a full clear (RIS,
 * or cursor home plus erase display), and of the plain text that ends the
 * burst only the last few KiB are parsed. While the model lags or is
 * untrusted, {@linkcode predictable} is false: nothing is predicted.
 * Output that resumes within a second of a burst caught up is set aside
 * from its first byte (a stream's pause, not its end), until a key is
 * typed.
 *
 * @module
 */

import {
  exactTailStart,
  firstControl,
  isPlainText,
  plainLineFeeds,
  splitC1,
} from "./plain_text.ts";
import { type CursorPosition, type ScreenView, unref } from "./screen_view.ts";
import { logger } from "../../log.ts";

const log = logger("predict");

/** Bytes within {@linkcode BURST_WINDOW_MS} that make a burst. */
// Small enough that a bulk stream costs little parsing before it is seen
// as one; a full-screen redraw (vim, top) stays well under it. One full
// chunk (the session's largest, sent only when output piled up at the
// host) is one: its parse would come at a cold JIT (~10 ms per 64 KiB).
const BURST_BYTES = 64 * 1024;
const BURST_WINDOW_MS = 100;
/** Output silence after which set-aside bytes are parsed. */
const QUIET_MS = 100;
/**
 * Output silence after which a set-aside burst with no exact shortcut is
 * parsed byte by byte, unless a key was typed since it began. A stream
 * shared with other busy sessions pauses for a few hundred ms at a time
 * without having ended: parsing all of it at each such pause cost the
 * clients of 20 streaming sessions as much CPU as all else they did.
 */
const FULL_PARSE_QUIET_MS = 1000;
/**
 * How soon after a burst was caught up at a lull output that comes again
 * is taken for the same stream resuming: set aside at once, not parsed
 * live until it makes a burst anew. A stream sharing the machine with
 * other busy sessions pauses every few hundred ms, and each resumption
 * had up to {@linkcode BURST_BYTES} parsed live (one or two 64 KiB
 * chunks): of a simulated 48 MB stream of such bursts and pauses the
 * model parsed 3.4 MB, nearly all of it that way, and now 0.2 MB.
 * A key typed ends it: output then is the user's to see predicted.
 */
const RESUMED_BURST_MS = 1000;
/**
 * Plain text parsed, at most, from the end of a skipped burst's kept tail
 * when no exact start is found there: the model is untrusted until a full
 * clear whatever of it is parsed, and plain text changes no mode, pen or
 * charset, so a screenful's worth is enough.
 */
const UNTRUSTED_TAIL_BYTES = 8 * 1024;
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

/**
 * Starts loading the terminal emulator the model is built on, without
 * waiting: a client calls it while ssh runs (its main thread idle then),
 * so the load does not stall the first connection later.
 */
export function preloadScreenModel(): void {
  loadXterm().catch(() => {}); // a failure shows when the model is made
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
  /** This burst's last screenful was tried alone (once per burst). */
  #shortcutTried = false;
  /** A key was typed since this burst began: it is wanted soon. */
  #wanted = false;
  /** Bytes that came since output was last set aside (parsed or not). */
  #setAsideBytes = 0;
  /** When the last burst was caught up at a lull (see RESUMED_BURST_MS). */
  #burstCaughtUpAt = -Infinity;
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
    if (
      this.#state === "live" &&
      (this.#windowBytes >= BURST_BYTES ||
        now - this.#burstCaughtUpAt < RESUMED_BURST_MS)
    ) {
      this.#state = "deferred";
      this.#shortcutTried = false;
      this.#wanted = false;
      this.#setAsideBytes = 0;
    }
    if (this.#state === "live") {
      this.#parse(bytes);
      return;
    }
    this.#setAsideBytes += bytes.length;
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

  /**
   * The user typed: output set aside is parsed at the next lull of
   * {@linkcode QUIET_MS}, even when every byte of it must be (otherwise
   * that waits for {@linkcode FULL_PARSE_QUIET_MS} of quiet).
   */
  keysTyped(): void {
    this.#burstCaughtUpAt = -Infinity;
    if (this.#state !== "deferred" || this.#wanted) return;
    this.#wanted = true;
    clearTimeout(this.#quietTimer);
    this.#quietTimer = undefined;
    if (!this.#draining) this.#armQuietTimer();
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

  /**
   * The silence that set-aside output waits for: longer when its shortcut
   * failed and every byte of a burst is to be parsed, unless someone typed
   * since it began.
   */
  #quietNeeded(): number {
    return this.#state === "deferred" && this.#shortcutTried &&
        !this.#wanted && this.#deferredBytes > BURST_BYTES
      ? FULL_PARSE_QUIET_MS
      : QUIET_MS;
  }

  #armQuietTimer(): void {
    if (this.#quietTimer !== undefined) return;
    const check = () => {
      const idle = this.#now() - this.#lastFeedAt;
      const needed = this.#quietNeeded();
      if (idle < needed) {
        this.#quietTimer = unref(setTimeout(check, needed - idle));
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
      if (this.#now() - this.#lastFeedAt < this.#quietNeeded()) {
        this.#draining = false;
        this.#armQuietTimer(); // output again: wait for the next lull
        return;
      }
      if (this.#state === "skipping") {
        this.#resyncFromTail();
        this.#caughtUp();
        return;
      }
      if (!this.#shortcutTried) {
        this.#shortcutTried = true;
        if (this.#shortcutDeferred()) {
          this.#caughtUp();
          return;
        }
        if (this.#now() - this.#lastFeedAt < this.#quietNeeded()) {
          // Every byte to parse: only once the stream has really stopped.
          this.#draining = false;
          this.#armQuietTimer();
          return;
        }
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
      this.#caughtUp();
    };
    step();
  }

  /** Set-aside output is all parsed (at a lull): live again. */
  #caughtUp(): void {
    this.#state = "live";
    this.#draining = false;
    if (this.#setAsideBytes > BURST_BYTES) {
      this.#burstCaughtUpAt = this.#now();
    }
  }

  /**
   * Parses only the last screenful of what was set aside, when that is
   * exact (see {@linkcode exactTailStart}); false, with nothing changed,
   * when it is not (then every byte is parsed, as slowly as it must be).
   * A link with a long round trip brings bulk output in bursts with pauses
   * between them: without this, each pause would parse all of the last.
   */
  #shortcutDeferred(): boolean {
    if (!this.#atGround() || !this.#scrollsWholeScreen()) return false;
    const chunks = this.#deferred;
    const total = this.#deferredBytes;
    // Everything before the first control is plain text (chunk by chunk,
    // and a C1 control split between two chunks counts too).
    let plainEnd = total;
    let offset = 0;
    let previous: Uint8Array | undefined;
    for (const chunk of chunks) {
      if (previous !== undefined && splitC1(previous, chunk)) {
        plainEnd = offset - 1;
        break;
      }
      const at = firstControl(chunk);
      if (at >= 0) {
        plainEnd = offset + at;
        break;
      }
      if (chunk.length > 0) previous = chunk;
      offset += chunk.length;
    }
    // Only the last TAIL_BYTES of the plain text are joined and searched
    // (no copy of up to MAX_DEFERRED at each lull); of the rest only line
    // feeds are counted, up to a screen height. A tail too short to hold
    // the start means no shortcut: every byte is parsed then, still exact.
    const tailFrom = Math.max(0, plainEnd - TAIL_BYTES);
    const tail = join(chunks, tailFrom, plainEnd);
    const lineFeedsBefore = countLineFeeds(chunks, tailFrom, this.rows);
    const start = exactTailStart(tail, lineFeedsBefore, this.rows);
    if (start < 0) return false;
    this.#parseFrom(
      tail.subarray(start),
      join(chunks, plainEnd, total),
      total,
      "set aside",
    );
    this.skippedBytes += tailFrom + start;
    this.#deferred = [];
    this.#deferredBytes = 0;
    return true;
  }

  /**
   * The model as the terminal is where `kept` starts (see
   * {@linkcode exactTailStart}), for the rows the rest replaces: cursor at
   * column 0 of the bottom row, every row scrolled away. Then `kept` and
   * `rest`, parsed in full (`total` bytes came in all).
   */
  #parseFrom(
    kept: Uint8Array,
    rest: Uint8Array,
    total: number,
    what: string,
  ): void {
    log.info(
      `model: ${what} ${total} bytes of output, parsed only the last ${
        kept.length + rest.length
      }: exact`,
    );
    this.#parse(encoder.encode("\r" + "\n".repeat(this.rows)));
    this.#parse(kept);
    if (rest.length > 0) this.#parse(rest);
  }

  /** True when the parser is between sequences (not inside one). */
  #atGround(): boolean {
    return this.#core._inputHandler._parser.currentState === 0;
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
    // Bytes that end an escape sequence begun before the skip look like
    // plain text, but they change the pen or a mode: no shortcut then.
    this.#skip.clean = this.#atGround();
    for (const chunk of this.#deferred) this.#summarize(chunk);
    this.#deferred = [];
    this.#deferredBytes = 0;
  }

  /**
   * Keeps the last {@linkcode TAIL_BYTES} of skipped output; each chunk
   * that drops out of that window is scanned once, on its way out (the
   * window itself is scanned when the tail is fed).
   */
  #summarize(bytes: Uint8Array): void {
    const skip = this.#skip;
    this.skippedBytes += bytes.length;
    skip.bytes += bytes.length;
    skip.chunks.push(bytes);
    skip.chunkBytes += bytes.length;
    while (skip.chunkBytes - skip.chunks[0].length >= TAIL_BYTES) {
      const out = skip.chunks.shift()!;
      skip.chunkBytes -= out.length;
      if (!skip.clean) continue;
      if (splitC1(out, skip.chunks[0])) skip.clean = false;
      else if (skip.lineFeeds >= this.rows) {
        // Enough line feeds counted (see exactTailStart): the faster scan.
        skip.clean = isPlainText(out);
      } else {
        const lineFeeds = plainLineFeeds(out);
        if (lineFeeds < 0) skip.clean = false;
        else skip.lineFeeds += lineFeeds;
      }
    }
  }

  /** Feeds only the tail of skipped output (see the module's comment). */
  #resyncFromTail(): void {
    const { clean, lineFeeds, chunks, chunkBytes, bytes } = this.#skip;
    this.#state = "live";
    this.#skip = newSkip();
    const window = concat(chunks, chunkBytes);
    const start = clean && this.#scrollsWholeScreen()
      ? exactTailStart(window, lineFeeds, this.rows)
      : -1;
    if (start < 0) {
      log.info(
        `model: skipped ${bytes} bytes of output: untrusted until the screen is cleared`,
      );
      this.#trusted = false;
      // Close, and a clear makes it exact again.
      this.#parse(window.subarray(untrustedParseStart(window)));
      return;
    }
    this.#parseFrom(
      window.subarray(start),
      EMPTY,
      window.length,
      `skipped ${bytes - window.length} and kept`,
    );
  }

  /**
   * True when line feeds at the bottom scroll the whole screen (no scroll
   * region): a screen height of them then leaves no row as it was, on the
   * local terminal as in the model, wherever the cursor stood.
   */
  #scrollsWholeScreen(): boolean {
    const buffer = this.#core.buffer;
    return buffer.scrollTop === 0 && buffer.scrollBottom === this.rows - 1;
  }
}

/**
 * Where to start parsing a kept tail that leaves the model untrusted: at
 * a line's start within the last {@linkcode UNTRUSTED_TAIL_BYTES} of its
 * leading plain text (skipping the rest changes nothing the model will be
 * trusted on), so that every control after it is parsed.
 */
function untrustedParseStart(window: Uint8Array): number {
  const control = firstControl(window);
  const plainEnd = control < 0 ? window.length : control;
  const from = plainEnd - UNTRUSTED_TAIL_BYTES;
  if (from <= 0) return 0;
  const lineFeed = window.indexOf(0x0a, from);
  return lineFeed < 0 || lineFeed >= plainEnd ? from : lineFeed + 1;
}

/** A fresh summary of skipped output. */
function newSkip() {
  return {
    /** Bytes skipped in all. */
    bytes: 0,
    /** No ESC, SO, SI or C1 before the kept chunks. */
    clean: true,
    /** Line feeds before the kept chunks (counted up to a screen height). */
    lineFeeds: 0,
    chunks: [] as Uint8Array[],
    chunkBytes: 0,
  };
}

const EMPTY = new Uint8Array(0);

/** Bytes `from` to `to` of `chunks` (offsets into all of them), in one array. */
function join(chunks: Uint8Array[], from: number, to: number): Uint8Array {
  const joined = new Uint8Array(Math.max(0, to - from));
  let offset = 0;
  for (const chunk of chunks) {
    const end = offset + chunk.length;
    if (end > from && offset < to) {
      const piece = chunk.subarray(
        Math.max(0, from - offset),
        Math.min(chunk.length, to - offset),
      );
      joined.set(piece, Math.max(0, offset - from));
    }
    offset = end;
    if (offset >= to) break;
  }
  return joined;
}

/** Line feeds in the first `to` bytes of `chunks`, counted up to `cap`. */
function countLineFeeds(chunks: Uint8Array[], to: number, cap: number): number {
  let count = 0;
  let offset = 0;
  for (const chunk of chunks) {
    if (offset >= to || count >= cap) break;
    const end = Math.min(chunk.length, to - offset);
    for (let at = chunk.indexOf(0x0a); at >= 0 && at < end;) {
      if (++count >= cap) return count;
      at = chunk.indexOf(0x0a, at + 1);
    }
    offset += chunk.length;
  }
  return count;
}

/** `chunks` (`bytes` in all) in one array. */
function concat(chunks: Uint8Array[], bytes: number): Uint8Array {
  const joined = new Uint8Array(bytes);
  let at = 0;
  for (const chunk of chunks) {
    joined.set(chunk, at);
    at += chunk.length;
  }
  return joined;
}
