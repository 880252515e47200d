/**
 * Predictive local echo as pure, synchronous state (no timers, no I/O):
 * which keystrokes are predicted where, which predictions the remote
 * screen has confirmed or refuted, and what overlay to show now. The
 * rules are mosh's (`src/frontend/terminaloverlay.cc`, PredictionEngine),
 * cut down to one row:
 *
 * - A printable ASCII key is predicted at the predicted cursor (inserting:
 *   the rest of the row shifts right), backspace deletes left, and the left
 *   and right arrows move the cursor. Anything else (Enter, control keys,
 *   other escape sequences, non-ASCII) cannot be foreseen: it starts a new
 *   epoch, and the next prediction anchors at the model's cursor.
 * - Predictions of an epoch stay hidden (tentative) until one of them is
 *   confirmed by the remote's echo. After Enter the first key of the next
 *   line waits for its echo, so a password prompt (echo off) never shows a
 *   typed character: its predictions expire unconfirmed and are dropped.
 * - A prediction is confirmed when the model's cell shows the predicted
 *   glyph where it showed something else before, and refuted when the cell
 *   turns into another non-blank glyph or the echo does not come in time.
 *   A refuted prediction drops its epoch (and, if it was showing, every
 *   prediction): the cells are then repainted from the model.
 * - Adaptive: predictions show only while the smoothed echo round trip is
 *   above 30 ms (below 20 ms they hide again), and are underlined while it
 *   is above 80 ms (50 ms to clear) or after a glitch (a shown prediction
 *   unconfirmed for 250 ms), until confirmed.
 *
 * @module
 */

import type { CursorPosition, ScreenView } from "./screen_view.ts";

/** When predictions are shown (`--predict`). */
export type PredictMode = "always" | "adaptive" | "never";

/** Smoothed echo round trip above which adaptive predictions show (ms). */
export const SHOW_ABOVE_MS = 30;
/** Smoothed echo round trip below which adaptive predictions hide again. */
export const HIDE_BELOW_MS = 20;
/** Smoothed echo round trip above which predictions are underlined. */
export const UNDERLINE_ABOVE_MS = 80;
/** Smoothed echo round trip below which the underline goes again. */
export const PLAIN_BELOW_MS = 50;
/** A shown prediction unconfirmed this long is a glitch (underline). */
export const GLITCH_MS = 250;
/** Confirmations after a glitch during which predictions stay underlined. */
const GLITCH_REPAIR_COUNT = 10;
/** Keys of a run kept for anchoring again. */
const MAX_RUN = 64;
/** A prediction not confirmed within this (at least) is refuted. */
export const MIN_EXPIRY_MS = 500;

/** One predicted cell. */
interface PredictedCell {
  row: number;
  col: number;
  /** What the key should make the cell show ("" for blank). */
  glyph: string;
  /** What the cell showed whenever it was predicted (no credit for these). */
  originals: string[];
  epoch: number;
  sentAt: number;
  expiresAt: number;
}

/** One cell of the overlay to draw over the model. */
export interface OverlayCell {
  row: number;
  col: number;
  /** The glyph ("" draws a blank). */
  glyph: string;
  /** Underlined: the prediction is not confirmed yet on a slow link. */
  underline: boolean;
}

/** What the local terminal should show on top of the model. */
export interface Overlay {
  /** Cells that differ from the model, by position. */
  cells: OverlayCell[];
  /** Where to show the cursor, or null for the model's own. */
  cursor: CursorPosition | null;
}

/** Printable keys predicted one after the other on a row. */
interface TypedRun {
  row: number;
  keys: { glyph: string; typedAt: number }[];
}

/**
 * How many keys of `glyphs` the screen has answered: the largest `j` such
 * that `glyphs[k..j)` (for some `k < j`, not all blank) is what the row
 * shows just left of `at`; 0 when no echo of the run shows there.
 */
function echoedKeys(
  glyphs: string[],
  screen: ScreenView,
  at: CursorPosition,
): number {
  for (let j = glyphs.length; j > 0; j--) {
    for (let k = 0; k < j; k++) {
      const from = at.col - (j - k);
      if (from < 0) continue;
      let matches = true;
      let visible = false; // blanks alone match any empty stretch
      for (let i = k; matches && i < j; i++) {
        matches = screen.cellText(at.row, from + i - k) === glyphs[i];
        visible ||= glyphs[i] !== "";
      }
      if (matches && visible) return j;
    }
  }
  return 0;
}

/** Key parser state: within an escape sequence or not. */
type KeyState = "ground" | "escape" | "csi" | "ss3";

const key = (row: number, col: number) => row * 65536 + col;

/**
 * The predictor. Feed it keystrokes ({@linkcode keys}) and, after each
 * change of the model, {@linkcode update}; draw {@linkcode overlay}.
 *
 * @example
 * ```ts
 * const predictor = new EchoPredictor("always");
 * predictor.keys(new TextEncoder().encode("l"), screen, performance.now());
 * // ...the echo reaches the model...
 * predictor.update(screen, performance.now());
 * predictor.overlay(); // { cells: [...], cursor }
 * ```
 */
export class EchoPredictor {
  #mode: PredictMode;
  #cells = new Map<number, PredictedCell>();
  /** The predicted cursor, or null: the model's. */
  #cursor:
    | (CursorPosition & { epoch: number; expiresAt: number; byArrow: boolean })
    | null = null;
  #epoch = 1;
  #confirmedEpoch = 0;
  #srtt: number | null = null;
  #showing = false;
  #flagging = false;
  #glitchCredits = 0;
  #keyState: KeyState = "ground";
  #csi = "";
  #alternate: boolean | null = null;
  #run: TypedRun | null = null;

  /** A predictor for `mode` (`never` predicts nothing). */
  constructor(mode: PredictMode) {
    this.#mode = mode;
    this.#showing = mode === "always";
  }

  /** Why predictions were refuted since last emptied (for the log). */
  refutations: string[] = [];

  /** The smoothed echo round trip in ms, or null before the first echo. */
  get srtt(): number | null {
    return this.#srtt;
  }

  /** True while predictions are shown when confirmed (adaptive: slow link). */
  get showing(): boolean {
    return this.#showing;
  }

  /** True while any prediction waits for its echo. */
  get pending(): boolean {
    return this.#cells.size > 0 || this.#cursor !== null;
  }

  /** The epoch new predictions belong to; above the confirmed one: hidden. */
  get epoch(): number {
    return this.#epoch;
  }

  /** The newest epoch an echo confirmed. */
  get confirmedEpoch(): number {
    return this.#confirmedEpoch;
  }

  /**
   * The earliest time {@linkcode update} has something to do without new
   * output (an expiry or a glitch), or null.
   */
  nextDeadline(): number | null {
    let next: number | null = this.#cursor?.expiresAt ?? null;
    for (const cell of this.#cells.values()) {
      const due = Math.min(cell.expiresAt, cell.sentAt + GLITCH_MS);
      if (next === null || due < next) next = due;
    }
    return next;
  }

  /** Drops every prediction and starts a new (hidden) epoch. */
  reset(): void {
    this.#cells.clear();
    this.#cursor = null;
    this.#run = null;
    this.#becomeTentative();
  }

  /** Takes keystrokes the user typed at `now` (already sent or about to be). */
  keys(bytes: Uint8Array, screen: ScreenView, now: number): void {
    if (this.#mode === "never") return;
    this.#checkScreen(screen);
    for (const byte of bytes) this.#key(byte, screen, now);
    // A lone ESC at the end of a read is the Escape key, not a sequence.
    if (this.#keyState === "escape") {
      this.#keyState = "ground";
      this.#unforeseeable();
    }
  }

  /**
   * Compares the predictions with the model after it changed, or at a
   * deadline. `settled` is false while a chunk of output is only partly
   * parsed (the cursor may be away for a moment, e.g. on a status line).
   */
  update(screen: ScreenView, now: number, settled = true): void {
    if (this.#mode === "never") return;
    if (!this.#checkScreen(screen)) return;
    const sorted = [...this.#cells.values()].sort((a, b) => a.epoch - b.epoch);
    const cursorRow = screen.cursor().row;
    for (const cell of sorted) {
      if (this.#cells.get(key(cell.row, cell.col)) !== cell) continue; // killed
      const now_ = screen.cellText(cell.row, cell.col);
      const expired = now >= cell.expiresAt;
      const changed = !cell.originals.includes(now_);
      if (now_ === cell.glyph) {
        if (changed) this.#confirm(cell, now);
        else if (expired) this.#cells.delete(key(cell.row, cell.col));
        continue;
      }
      // A hidden guess on a row the remote has left (it was anchored before
      // the remote moved on, e.g. to the next prompt) will not be echoed.
      const left = settled && cell.row !== cursorRow &&
        cell.epoch > this.#confirmedEpoch;
      const refuted = expired || left || (changed && now_ !== "");
      if (refuted) {
        this.refutations.push(
          `${expired ? "expired" : "wrong"}: ${
            JSON.stringify(cell.glyph)
          } at ${cell.row},${cell.col} shows ${JSON.stringify(now_)}${
            cell.epoch > this.#confirmedEpoch ? " (hidden)" : ""
          }`,
        );
        this.#refute(cell, screen, now);
        continue;
      }
      if (
        cell.epoch <= this.#confirmedEpoch && now - cell.sentAt >= GLITCH_MS
      ) {
        this.#glitchCredits = GLITCH_REPAIR_COUNT;
      }
    }
    const cursor = this.#cursor;
    if (cursor !== null && this.#cells.size === 0) {
      const real = screen.cursor();
      if (real.row === cursor.row && real.col === cursor.col) {
        this.#cursor = null; // the remote caught up with every key
      } else if (!cursor.byArrow) {
        // Every glyph is settled: where the remote put the cursor is right.
        this.#cursor = null;
      } else if (now >= cursor.expiresAt) {
        this.#cursor = null;
        this.#becomeTentative();
      }
    }
  }

  /** What to show now on top of the model (nothing while hidden). */
  overlay(screen: ScreenView): Overlay {
    const shown = (epoch: number) =>
      this.#showing && epoch <= this.#confirmedEpoch;
    const underline = this.#flagging || this.#glitchCredits > 0;
    const cells: OverlayCell[] = [];
    for (const cell of this.#cells.values()) {
      if (!shown(cell.epoch)) continue;
      if (screen.cellText(cell.row, cell.col) === cell.glyph) continue;
      cells.push({
        row: cell.row,
        col: cell.col,
        glyph: cell.glyph,
        underline,
      });
    }
    cells.sort((a, b) => a.row - b.row || a.col - b.col);
    const cursor = this.#cursor !== null && shown(this.#cursor.epoch)
      ? { row: this.#cursor.row, col: this.#cursor.col }
      : null;
    return { cells, cursor };
  }

  /** Resets when the screen switched or became unsafe; false if unsafe. */
  #checkScreen(screen: ScreenView): boolean {
    const alternate = screen.alternate();
    if (this.#alternate !== null && alternate !== this.#alternate) {
      this.reset(); // another screen: what was confirmed says nothing here
    }
    this.#alternate = alternate;
    if (!screen.predictable()) {
      if (this.pending) this.reset();
      return false;
    }
    return true;
  }

  #key(byte: number, screen: ScreenView, now: number): void {
    switch (this.#keyState) {
      case "escape":
        if (byte === 0x5b) {
          this.#keyState = "csi";
          this.#csi = "";
        } else if (byte === 0x4f) this.#keyState = "ss3";
        else {
          this.#keyState = "ground";
          this.#unforeseeable();
        }
        return;
      case "csi":
        if (byte >= 0x40 && byte <= 0x7e) {
          this.#keyState = "ground";
          if (this.#csi === "" && (byte === 0x43 || byte === 0x44)) {
            this.#arrow(byte === 0x43 ? 1 : -1, screen, now);
          } else this.#unforeseeable();
        } else if (this.#csi.length < 16) {
          this.#csi += String.fromCharCode(byte);
        }
        return;
      case "ss3":
        this.#keyState = "ground";
        if (byte === 0x43 || byte === 0x44) {
          this.#arrow(byte === 0x43 ? 1 : -1, screen, now);
        } else this.#unforeseeable();
        return;
    }
    if (byte === 0x1b) this.#keyState = "escape";
    else if (byte >= 0x20 && byte <= 0x7e) {
      // A space reads as a blank cell, as the model reports it.
      const glyph = byte === 0x20 ? "" : String.fromCharCode(byte);
      this.#printable(glyph, screen, now);
    } else if (byte === 0x7f || byte === 0x08) this.#backspace(screen, now);
    else this.#unforeseeable();
  }

  /** The predicted cursor, anchored at the model's when none is pending. */
  #anchor(screen: ScreenView): CursorPosition | null {
    if (!screen.predictable()) return null;
    const at = this.#cursor ?? screen.cursor();
    if (at.col >= screen.cols || at.row >= screen.rows) return null;
    return { row: at.row, col: at.col };
  }

  /** The text a cell will show once every pending prediction holds. */
  #current(row: number, col: number, screen: ScreenView): string {
    return this.#cells.get(key(row, col))?.glyph ?? screen.cellText(row, col);
  }

  /** The last column of `row` that is (or is predicted) non-blank, or -1. */
  #lastContent(row: number, screen: ScreenView): number {
    for (let col = screen.cols - 1; col >= 0; col--) {
      if (this.#current(row, col, screen) !== "") return col;
    }
    return -1;
  }

  #predict(
    row: number,
    col: number,
    glyph: string,
    screen: ScreenView,
    now: number,
  ): void {
    const id = key(row, col);
    const existing = this.#cells.get(id);
    const original = screen.cellText(row, col);
    const originals = existing
      ? (existing.originals.includes(original)
        ? existing.originals
        : [...existing.originals, original])
      : [original];
    this.#cells.set(id, {
      row,
      col,
      glyph,
      originals,
      epoch: this.#epoch,
      sentAt: now,
      expiresAt: now + this.#expiryMs(),
    });
  }

  #moveCursor(row: number, col: number, now: number, byArrow = false): void {
    this.#cursor = {
      row,
      col,
      byArrow,
      epoch: this.#epoch,
      expiresAt: now + this.#expiryMs(),
    };
  }

  #printable(
    glyph: string,
    screen: ScreenView,
    now: number,
    typedAt = now,
  ): void {
    const fresh = this.#cursor === null;
    const at = this.#anchor(screen);
    // The last column would wrap: beyond what one row can foresee.
    if (at === null || at.col >= screen.cols - 1) return this.#unforeseeable();
    const last = this.#lastContent(at.row, screen);
    if (last >= screen.cols - 1) return this.#unforeseeable(); // no room
    if (fresh || this.#run === null) this.#run = { row: at.row, keys: [] };
    this.#run.keys.push({ glyph, typedAt });
    if (this.#run.keys.length > MAX_RUN) this.#run.keys.shift();
    for (let col = last + 1; col > at.col; col--) {
      this.#predict(
        at.row,
        col,
        this.#current(at.row, col - 1, screen),
        screen,
        now,
      );
    }
    this.#predict(at.row, at.col, glyph, screen, typedAt);
    this.#moveCursor(at.row, at.col + 1, now);
  }

  #backspace(screen: ScreenView, now: number): void {
    this.#run = null;
    const at = this.#anchor(screen);
    if (at === null || at.col === 0) return this.#unforeseeable();
    const last = this.#lastContent(at.row, screen);
    for (let col = at.col - 1; col <= Math.max(last, at.col - 1); col++) {
      const next = col + 1 < screen.cols
        ? this.#current(at.row, col + 1, screen)
        : "";
      this.#predict(at.row, col, next, screen, now);
    }
    this.#moveCursor(at.row, at.col - 1, now);
  }

  #arrow(step: 1 | -1, screen: ScreenView, now: number): void {
    this.#run = null;
    const at = this.#anchor(screen);
    if (at === null) return this.#unforeseeable();
    const col = at.col + step;
    // Right stops after the text (as line editors do); left at column 0.
    const last = this.#lastContent(at.row, screen);
    if (col < 0 || col > last + 1 || col >= screen.cols) {
      return this.#unforeseeable();
    }
    this.#moveCursor(at.row, col, now, true);
  }

  /** A key whose effect cannot be foreseen: start a new hidden epoch. */
  #unforeseeable(): void {
    this.#cursor = null;
    this.#run = null;
    this.#becomeTentative();
  }

  #becomeTentative(): void {
    this.#epoch++;
  }

  #confirm(cell: PredictedCell, now: number): void {
    this.#cells.delete(key(cell.row, cell.col));
    if (cell.epoch > this.#confirmedEpoch) this.#confirmedEpoch = cell.epoch;
    const sample = now - cell.sentAt;
    this.#srtt = this.#srtt === null ? sample : this.#srtt * 7 / 8 + sample / 8;
    if (this.#glitchCredits > 0 && sample < GLITCH_MS) this.#glitchCredits--;
    this.#adapt();
  }

  #refute(
    cell: PredictedCell,
    screen: ScreenView,
    now: number,
  ): void {
    const run = this.#run;
    this.#drop(cell);
    // Expired keys are not predicted again (see #reanchor), so this ends.
    if (run !== null) this.#reanchor(run, screen, now);
  }

  /**
   * After a wrong guess, predicts again the keys of the run that are still
   * on their way, from where the remote's cursor is now. A byte stream
   * does not say which keys the output answers (mosh's frames do), so a
   * guess anchored while earlier echoes were still coming lands too far
   * left; here the run's keys up to the last whose echo shows just left of
   * the cursor are skipped (keys before it may have had no echo: vim's
   * `i`), and keys typed longer ago than an echo takes are not predicted
   * again. The new guesses are hidden until one is confirmed.
   */
  #reanchor(run: TypedRun, screen: ScreenView, now: number): void {
    const at = screen.cursor();
    if (at.col >= screen.cols || !screen.predictable()) return;
    const echoed = echoedKeys(run.keys.map((k) => k.glyph), screen, at);
    const inFlightSince = now - this.#expiryMs() + 1;
    const rest = run.keys.slice(echoed).filter((k) =>
      k.typedAt >= inFlightSince
    );
    for (const typed of rest) {
      this.#printable(typed.glyph, screen, now, typed.typedAt);
    }
  }

  #drop(cell: PredictedCell): void {
    this.#run = null;
    if (cell.epoch > this.#confirmedEpoch) {
      // A hidden guess was wrong: drop its epoch (and later ones) only.
      for (const [id, other] of this.#cells) {
        if (other.epoch >= cell.epoch) this.#cells.delete(id);
      }
      if (this.#cursor !== null && this.#cursor.epoch >= cell.epoch) {
        this.#cursor = null;
      }
      this.#becomeTentative();
      return;
    }
    // A shown prediction was wrong: drop everything and underline a while.
    this.#glitchCredits = GLITCH_REPAIR_COUNT;
    this.reset();
  }

  #adapt(): void {
    const srtt = this.#srtt ?? 0;
    if (this.#mode === "adaptive") {
      if (srtt > SHOW_ABOVE_MS) this.#showing = true;
      else if (srtt < HIDE_BELOW_MS) this.#showing = false;
    }
    if (srtt > UNDERLINE_ABOVE_MS) this.#flagging = true;
    else if (srtt < PLAIN_BELOW_MS) this.#flagging = false;
  }

  #expiryMs(): number {
    return Math.max(MIN_EXPIRY_MS, 2 * (this.#srtt ?? 0) + 250);
  }
}
