/**
 * The screen of a headless emulator (`@xterm/headless`) as bytes that put
 * a terminal in the same state: `--resume screen`'s snapshot. A later
 * byte stream fed after the snapshot must land exactly as it would have
 * after the whole stream, so besides the cells (text, width, colours,
 * flags, which lines continue the one above) the snapshot carries the
 * state those bytes depend on: the scroll region, the tab stops, the
 * saved cursor (DECSC) of each screen, the cursor's pending wrap at the
 * right margin, the G0–G3 charsets and which is shifted in, the modes,
 * the pen; the main screen under the alternate one with all of its own.
 *
 * It reads the emulator through its public buffer API and, for the rest,
 * its core (`terminal._core`); the package is pinned, and the property
 * test (`tests/terminal/screen_snapshot_test.ts`) fails if an upgrade
 * moves any of it. (`@xterm/addon-serialize` did the cells before: it
 * drops coloured blank lines at the bottom and breaks lines that wrap
 * onto blank cells.)
 *
 * @module
 */

/** Lines of scrollback a snapshot carries above the screen. */
export const SNAPSHOT_SCROLLBACK_LINES = 500;

/**
 * What a snapshot begins with: the local terminal back to the defaults
 * the cells are written against (main screen, pen, scroll region, the
 * modes set later only when they are on, cursor shown), then cursor home
 * and erase display, a full clear (the client's prediction model trusts
 * itself again after it).
 */
const SNAPSHOT_PREFIX = "\x1b[?1049l" + // leave the alternate screen
  "\x1b[0m\x1b[r" + // pen, scroll region
  "\x1b[?1l\x1b>\x1b[?66l\x1b[?2004l\x1b[4l\x1b[?6l\x1b[?45l\x1b[?1004l" +
  "\x1b[20l" + // newline mode (LF alone goes down)
  "\x1b[?7h\x1b[?25h" + // wraparound, cursor shown
  "\x1b[?9l\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1016l" + // mouse
  "\x1b(B\x1b)B\x0f" + // G0 and G1 ASCII, shift in
  "\x1b[H\x1b[2J";

/** G0–G3 as designated by `ESC ( F`, `ESC ) F`, `ESC * F`, `ESC + F`. */
const DESIGNATE = ["(", ")", "*", "+"];

/** Shifting Gn into GL: SI, SO, LS2, LS3. */
const SHIFT = ["\x0f", "\x0e", "\x1bn", "\x1bo"];

/** The final bytes of every charset the emulator knows (aliases after). */
const CHARSET_FINALS = "0AB4C5RQKYE6ZH7=";

// deno-lint-ignore no-explicit-any
type Any = any;
let loaded: Promise<Any> | undefined;
// The emulator's charset tables (module singletons) → their final byte.
let charsetFinals: Map<unknown, string> | undefined;

/** Loads the emulator once, on first use. */
function loadEmulator(): Promise<Any> {
  // Inline, not through deno.json's imports: `et` runs from any directory.
  // deno-lint-ignore no-import-prefix
  return loaded ??= import("npm:@xterm/headless@6.0.0").then((module) => {
    const headless = module.default ?? module;
    charsetFinals = probeCharsets(headless.Terminal);
    return headless;
  });
}

/**
 * Which final byte designates which of the emulator's charset tables: the
 * tables are not exported, so each is designated once in a scratch
 * terminal and recognised by identity later.
 */
function probeCharsets(Terminal: Any): Map<unknown, string> {
  const scratch = new Terminal({ cols: 2, rows: 1, logLevel: "off" });
  const finals = new Map<unknown, string>();
  for (const final of CHARSET_FINALS) {
    scratch._core.writeSync(`\x1b(${final}`);
    const table = scratch._core._charsetService.charset;
    if (!finals.has(table)) finals.set(table, final);
  }
  scratch.dispose();
  return finals;
}

/** A headless emulator whose screen {@link screenSnapshot} can write. */
export interface ScreenEmulator {
  /** The `@xterm/headless` Terminal. */
  readonly terminal: Any;
}

/**
 * A new headless emulator with {@link SNAPSHOT_SCROLLBACK_LINES} of
 * scrollback (the package loads on first use).
 *
 * @example
 * ```ts
 * const emulator = await createScreenEmulator(80, 24);
 * emulator.terminal._core.writeSync(bytes);
 * const snapshot = screenSnapshot(emulator);
 * ```
 */
export async function createScreenEmulator(
  cols: number,
  rows: number,
): Promise<ScreenEmulator> {
  const { Terminal } = await loadEmulator();
  const terminal = new Terminal({
    cols,
    rows,
    scrollback: SNAPSHOT_SCROLLBACK_LINES,
    allowProposedApi: true,
    logLevel: "off",
  });
  return { terminal };
}

/**
 * Feeds output to the emulator. It throws on a few sequences (xterm.js
 * 6.0.0: ED 1 in the bottom right corner past the margin), after which
 * it would take no more input and hold all further input in memory: its
 * writer and parser are put back to rest, the rest of the chunk is lost
 * to it. Returns the error, or null.
 *
 * @example
 * ```ts
 * const error = feedEmulator(emulator, chunk);
 * if (error !== null) console.warn(error);
 * ```
 */
export function feedEmulator(
  emulator: ScreenEmulator,
  bytes: Uint8Array,
): unknown {
  const core = emulator.terminal._core;
  try {
    core.writeSync(bytes);
    return null;
  } catch (error) {
    const writer = core._writeBuffer;
    writer._isSyncWriting = false;
    writer._syncCalls = 0;
    writer._pendingData = 0;
    writer._writeBuffer.length = 0;
    writer._callbacks.length = 0;
    core._inputHandler._parser.reset();
    return error;
  }
}

/**
 * The emulator's state as terminal bytes: a reset and full clear, the
 * last {@link SNAPSHOT_SCROLLBACK_LINES} lines of scrollback and the main
 * screen with its state, then, when it is in use, the alternate screen
 * with its own; the modes, the pen last.
 */
export function screenSnapshot(emulator: ScreenEmulator): string {
  const { terminal } = emulator;
  const buffers = terminal._core.buffers;
  const normal = terminal.buffer.normal;
  let out = SNAPSHOT_PREFIX +
    lines(terminal, normal, SNAPSHOT_SCROLLBACK_LINES) +
    bufferState(terminal, buffers.normal);
  if (buffers.active === buffers.alt) {
    // `?1047h`, not `?1049h`: that would save the cursor again, over the
    // main screen's saved cursor (which `ESC[?1049l` restores).
    out += "\x1b[?1047h\x1b[H\x1b[2J" +
      lines(terminal, terminal.buffer.alternate, 0) +
      bufferState(terminal, buffers.alt);
  } else if (!savedIsDefault(buffers.alt)) {
    // A later `ESC[?1049h` then `ESC 8` restores what the alternate
    // screen saved back then: set it in a passing visit.
    out += "\x1b[?47h" + savedCursor(terminal, buffers.alt) +
      "\x1b[0m\x1b(B\x0f\x1b[?47l";
  }
  return out + activeState(terminal);
}

/**
 * A screen's lines, the last `scrollback` above it first, written from
 * the top left of a cleared screen with the default pen, G0 ASCII and
 * autowrap: each line as its cells (a run of empty cells is skipped, or
 * erased with its background), a line that continues the one above
 * reached by wrapping onto it (the emulator marks it so). Ends with the
 * pen default, the cursor anywhere.
 */
function lines(terminal: Any, buffer: Any, scrollback: number): string {
  const { cols } = terminal;
  const first = Math.max(0, buffer.baseY - Math.max(0, scrollback));
  let out = "";
  let pen = DEFAULT_PEN;
  const setPen = (next: string) => {
    if (next !== pen) out += next;
    pen = next;
  };
  // Whether the cursor is past the margin after the line's last cell.
  let pending = false as boolean;
  // Whether the line was reached by wrapping (it may hold the pen's
  // background, from a scroll, where it is empty).
  let wrapped = false;
  // A screen without scrollback whose top line continues one gone: it is
  // reached by wrapping from a line of spaces, which the screen's last
  // line scrolls away.
  const lead = scrollback === 0 && buffer.getLine(first)?.isWrapped === true;
  if (lead) {
    out += " ".repeat(cols);
    pending = true;
  }
  // One cell read into over and over, and the last text cell's pen.
  const scratch = buffer.getNullCell();
  let lastFg = -1;
  let lastBg = -1;
  let lastExt: unknown = null;
  let lastPen = DEFAULT_PEN;
  for (let y = first; y < buffer.length; y++) {
    const line = buffer.getLine(y);
    if (y > first || lead) {
      if (line.isWrapped && pending && hasText(line.getCell(0))) {
        // The line's first character wraps onto it.
        wrapped = true;
      } else if (line.isWrapped) {
        // Wrap onto it with a space and erase that; when the line above
        // did not reach the margin, print a space in its last cell first
        // and erase that too, with its background.
        setPen(DEFAULT_PEN);
        if (pending) out += " \b\x1b[X";
        else {
          const above = sgrBackground(buffer.getLine(y - 1).getCell(cols - 1));
          out += `\x1b[${cols}G  \b\x1b[X\x1b[A\x1b[${cols}G${above}` +
            "\x1b[X\x1b[B\r";
          pen = above;
          setPen(DEFAULT_PEN);
        }
        wrapped = true;
      } else {
        setPen(DEFAULT_PEN);
        out += "\r\n";
        wrapped = false;
      }
    }
    pending = false;
    let blank = 0;
    let blankPen = DEFAULT_PEN;
    const flushBlank = (end: boolean) => {
      if (blank === 0) return;
      if (blankPen !== DEFAULT_PEN || wrapped) {
        setPen(blankPen);
        out += `\x1b[${blank}X`;
      }
      if (!end) out += `\x1b[${blank}C`;
      blank = 0;
    };
    for (let x = 0; x < cols; x++) {
      const cell = line.getCell(x, scratch);
      // A wide character's right half is skipped below: one met here is
      // left over (an insertion moved it) and shows as a blank.
      const width = Math.max(1, cell.getWidth());
      // A wide character in the last column (the emulator lets insertions
      // push one there) cannot be printed there: it shows as a blank.
      if (!hasText(cell) || x + width > cols) {
        const cellPen = cell.isBgDefault() ? DEFAULT_PEN : sgrBackground(cell);
        if (blank > 0 && cellPen !== blankPen) flushBlank(false);
        blankPen = cellPen;
        blank += width;
        continue;
      }
      flushBlank(false);
      // The same attributes as the cell before: the same pen (most are).
      if (
        cell.fg !== lastFg || cell.bg !== lastBg || cell.extended !== lastExt
      ) {
        lastFg = cell.fg;
        lastBg = cell.bg;
        lastExt = cell.extended;
        lastPen = sgr(cell);
      }
      setPen(lastPen);
      out += cell.getChars();
      pending = x + width >= cols;
      // What a wide character covers is hidden, whatever it holds.
      x += width - 1;
    }
    flushBlank(true);
  }
  setPen(DEFAULT_PEN);
  return out;
}

function hasText(cell: Any): boolean {
  return cell.getChars() !== "";
}

/**
 * `text` (a line for the person, ASCII) as bytes that show it as written
 * whatever state the program left the terminal in, then put that state
 * back: G0 ASCII shifted in, the default pen, no insertion for the text;
 * after it the charsets, insert mode and the pen as they were (so the
 * emulator, fed the same bytes, still holds the program's state).
 *
 * @example
 * ```ts
 * const bytes = neutralText(emulator, "\r\n[et: a line]\r\n");
 * ```
 */
export function neutralText(emulator: ScreenEmulator, text: string): string {
  const core = emulator.terminal._core;
  const charsets = core._charsetService;
  const insert = core.coreService.modes.insertMode;
  // A charset in GL that its G-set does not hold (after DECRC) comes
  // back only by DECRC, which would move the cursor: left alone.
  const consistent = charsets.charset === charsets._charsets[charsets.glevel];
  return "\x1b[0m" + (insert ? "\x1b[4l" : "") +
    (consistent ? "\x1b(B\x0f" : "") + text +
    (consistent ? designate(charsets) : "") + (insert ? "\x1b[4h" : "") +
    sgr(core._inputHandler._curAttrData);
}

/**
 * A screen's state besides its cells: its scroll region, its tab stops
 * and its saved cursor; the cursor ends anywhere, the pen default, G0
 * ASCII shifted in (what cells are written with).
 */
function bufferState(terminal: Any, buffer: Any): string {
  const { cols, rows } = terminal;
  let out = "";
  if (buffer.scrollTop !== 0 || buffer.scrollBottom !== rows - 1) {
    out += `\x1b[${buffer.scrollTop + 1};${buffer.scrollBottom + 1}r`;
  }
  out += "\x1b[3g";
  for (let x = 0; x < cols; x++) {
    if (buffer.tabs[x]) out += `\x1b[${x + 1}G\x1bH`;
  }
  return out + savedCursor(terminal, buffer) + "\x1b[0m\x1b(B\x0f";
}

/**
 * DECSC's slot of a screen: the position (the row relative to the screen
 * as the emulator restores it; a column past the margin comes back at
 * it), the pen's colours and flags, the charset in GL.
 */
function savedCursor(
  terminal: Any,
  buffer: Any,
  charset: unknown = buffer.savedCharset,
): string {
  const row = clamp(buffer.savedY - buffer.ybase, 0, terminal.rows - 1);
  const col = clamp(buffer.savedX, 0, terminal.cols - 1);
  return `\x1b[${row + 1};${col + 1}H` + sgr(buffer.savedCurAttrData) +
    `\x1b(${charsetFinal(charset)}\x0f\x1b7`;
}

function savedIsDefault(buffer: Any): boolean {
  const attr = buffer.savedCurAttrData;
  return buffer.savedX === 0 && buffer.savedY === 0 && attr.fg === 0 &&
    attr.bg === 0 && buffer.savedCharset === undefined;
}

/**
 * What belongs to the whole terminal, written after the active screen:
 * origin mode, the cursor (with its pending wrap), the charsets, the
 * modes, the pen.
 */
function activeState(terminal: Any): string {
  const core = terminal._core;
  const buffer = core.buffer;
  const coreService = core.coreService;
  const charsets = core._charsetService;
  const origin = coreService.decPrivateModes.origin;
  let out = "";
  // Origin mode homes the cursor: before placing it.
  if (origin) out += "\x1b[?6h";
  const designations = designate(charsets);
  const current = charsets.charset;
  if (current === charsets._charsets[charsets.glevel]) {
    out += cursor(terminal, buffer, origin) + designations;
  } else {
    // After DECRC the charset in GL can differ from the one its G-set
    // holds (the emulator restores only the former): only DECRC makes
    // that, from a slot holding it. The active screen's slot holds it
    // whenever DECRC there brought it in; else, on the main screen, the
    // alternate screen's slot lends itself (a passing visit), and on the
    // alternate screen its own slot keeps it instead of what it held.
    const main = core.buffers.active === core.buffers.normal;
    if (current !== buffer.savedCharset && main) {
      out += "\x1b[?47h" + savedCursor(terminal, core.buffers.alt, current) +
        designations + "\x1b8\x1b[?47l";
    } else {
      if (current !== buffer.savedCharset) {
        out += savedCursor(terminal, buffer, current);
      }
      out += designations + "\x1b8";
    }
    // The cell printed again for a pending wrap goes through the charset
    // now in GL: one it would change is placed without it.
    out += cursor(terminal, buffer, origin, current);
  }
  out += modes(terminal);
  return out + sgr(core._inputHandler._curAttrData);
}

/** G0–G3 designated, the one in use shifted in. */
function designate(charsets: Any): string {
  let out = "";
  for (let g = 0; g < DESIGNATE.length; g++) {
    const table = charsets._charsets[g];
    // G2 and G3 only when set: a real terminal's defaults stay.
    if (g < 2 || table !== undefined) {
      out += `\x1b${DESIGNATE[g]}${charsetFinal(table)}`;
    }
  }
  return out + SHIFT[charsets.glevel];
}

/**
 * The cursor placed where it is. Past the last column (a character was
 * just printed there: the next one goes to the next line) no cursor move
 * gets there: the last character is printed again, with its own pen. On
 * the main screen two states need a passing visit to the alternate one,
 * whose cursor the main screen takes over when it comes back: past the
 * margin over an erased cell (printing would fill it), and outside the
 * scroll region in origin mode (a cursor move stays inside).
 */
function cursor(
  terminal: Any,
  buffer: Any,
  origin: boolean,
  charset: Record<string, string> | undefined = undefined,
): string {
  const { cols } = terminal;
  const main = terminal._core.buffers.active === terminal._core.buffers.normal;
  const pending = buffer.x >= cols;
  const line = terminal.buffer.active.getLine(buffer.ybase + buffer.y);
  // The last cell that shows: a wide character's, if one ends the line.
  const x = line?.getCell(cols - 2)?.getWidth() === 2 ? cols - 2 : cols - 1;
  const cell = line?.getCell(x);
  const chars: string = cell?.getChars() ?? "";
  const outside = origin &&
    (buffer.y < buffer.scrollTop || buffer.y > buffer.scrollBottom);
  if (main && (outside || (pending && chars === ""))) {
    // The alternate screen's region is the whole screen.
    const at = `\x1b[${buffer.y + 1};${Math.min(buffer.x, cols - 1) + 1}H`;
    return "\x1b[?47h" + at + (pending ? " " : "") + "\x1b[?47l";
  }
  const top = origin ? buffer.scrollTop : 0;
  const place = (x: number) => `\x1b[${buffer.y - top + 1};${x + 1}H`;
  if (!pending) return place(buffer.x);
  if (cell === undefined || charset?.[chars] !== undefined) {
    return place(cols - 1);
  }
  // On the alternate screen an erased last cell comes back as a space
  // (same colours).
  return place(x) + sgr(cell) + (chars || " ");
}

/** The modes that are on (the prefix turned them all off). */
function modes(terminal: Any): string {
  const core = terminal._core;
  const dec = core.coreService.decPrivateModes;
  let out = "";
  if (dec.applicationCursorKeys) out += "\x1b[?1h";
  if (dec.applicationKeypad) out += "\x1b[?66h";
  if (dec.bracketedPasteMode) out += "\x1b[?2004h";
  if (core.coreService.modes.insertMode) out += "\x1b[4h";
  if (dec.reverseWraparound) out += "\x1b[?45h";
  if (dec.sendFocus) out += "\x1b[?1004h";
  if (!dec.wraparound) out += "\x1b[?7l";
  if (terminal.options.convertEol) out += "\x1b[20h";
  const tracking: Record<string, string> = {
    x10: "\x1b[?9h",
    vt200: "\x1b[?1000h",
    drag: "\x1b[?1002h",
    any: "\x1b[?1003h",
  };
  out += tracking[terminal.modes.mouseTrackingMode] ?? "";
  const encoding = core.coreMouseService?.activeEncoding;
  if (encoding === "SGR") out += "\x1b[?1006h";
  if (encoding === "SGR_PIXELS") out += "\x1b[?1016h";
  if (core.coreService.isCursorHidden) out += "\x1b[?25l";
  // The cursor's shape, once a program set one (DECSCUSR: 1 blinking
  // block … 6 steady bar); else the person's own stays.
  const shape = { block: 1, underline: 3, bar: 5 }[dec.cursorStyle as string];
  if (shape !== undefined) out += `\x1b[${shape + (dec.cursorBlink ? 0 : 1)} q`;
  return out;
}

const COLOR_P16 = 0x1000000;
const DEFAULT_PEN = "\x1b[0m";
const COLOR_P256 = 0x2000000;
const COLOR_RGB = 0x3000000;

/**
 * A pen (the emulator's attribute data, or a cell) as one SGR from the
 * default: colours in the form they were set (16 or 256 colours, RGB),
 * then the flags.
 */
function sgr(attr: Any): string {
  const params: (number | string)[] = [0];
  if (!attr.isFgDefault()) {
    addColor(params, 30, 90, attr.getFgColorMode(), attr.getFgColor());
  }
  if (!attr.isBgDefault()) {
    addColor(params, 40, 100, attr.getBgColorMode(), attr.getBgColor());
  }
  if (attr.isBold()) params.push(1);
  if (attr.isDim()) params.push(2);
  if (attr.isItalic()) params.push(3);
  // Single, double, curly, dotted, dashed; and its own colour, if set.
  // (The emulator can say underlined with no style: plain then.)
  const underline = attr.getUnderlineStyle();
  if (underline > 1) params.push(`4:${underline}`);
  else if (attr.isUnderline()) params.push(4);
  if (attr.hasExtendedAttrs() && ~attr.extended.underlineColor) {
    const mode = attr.getUnderlineColorMode();
    addColor(params, 50, 50, mode, attr.getUnderlineColor());
  }
  if (attr.isBlink()) params.push(5);
  if (attr.isInverse()) params.push(7);
  if (attr.isInvisible()) params.push(8);
  if (attr.isStrikethrough()) params.push(9);
  if (attr.isOverline()) params.push(53);
  return `\x1b[${params.join(";")}m`;
}

/**
 * A colour's SGR parameters, in the form it was set: `base` 30 for the
 * foreground, 40 the background, 50 the underline (58: no short form).
 */
function addColor(
  params: (number | string)[],
  base: number,
  bright: number,
  mode: number,
  c: number,
) {
  if (mode === COLOR_P16 && base !== 50) {
    params.push(c < 8 ? base + c : bright + c - 8);
  } else if (mode === COLOR_P16 || mode === COLOR_P256) {
    params.push(`${base + 8};5;${c}`);
  } else if (mode === COLOR_RGB) {
    params.push(`${base + 8};2;${c >>> 16 & 255};${c >>> 8 & 255};${c & 255}`);
  }
}

/** The background of a cell alone, as ECH erases with it. */
function sgrBackground(cell: Any): string {
  const params: (number | string)[] = [0];
  if (!cell.isBgDefault()) {
    addColor(params, 40, 100, cell.getBgColorMode(), cell.getBgColor());
  }
  return `\x1b[${params.join(";")}m`;
}

/** The final byte designating a charset table (ASCII when unknown). */
function charsetFinal(table: unknown): string {
  return charsetFinals?.get(table) ?? "B";
}

function clamp(value: number, low: number, high: number): number {
  return Math.max(low, Math.min(high, value));
}
