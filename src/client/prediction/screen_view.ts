/**
 * What the echo predictor reads of the remote screen: a narrow, synchronous
 * view that the real model ({@linkcode ScreenModel}) and the predictor's
 * unit tests (a plain grid) both provide.
 *
 * @module
 */

/** A cursor position, 0-based. */
export interface CursorPosition {
  row: number;
  /** Equals the width while a wrap is pending (after the last column). */
  col: number;
}

/** The screen as the local terminal shows it, without any prediction. */
export interface ScreenView {
  /** Width in columns. */
  readonly cols: number;
  /** Height in rows. */
  readonly rows: number;
  /** The cursor position. */
  cursor(): CursorPosition;
  /**
   * The text of one cell: "" for a blank cell, else its characters; a cell
   * that holds the right half of a wide character reads as "\u0000".
   */
  cellText(row: number, col: number): string;
  /** True while the alternate screen shows (full-screen programs). */
  alternate(): boolean;
  /**
   * Whether predicting into this screen is safe at all: false in insert or
   * origin mode, and while the model is not known to match the local
   * terminal (it skipped output, or was resized).
   */
  predictable(): boolean;
}

/** Lets a timer not keep the process alive; returns it. */
export function unref<T>(timer: T): T {
  Deno.unrefTimer(timer as number);
  return timer;
}
