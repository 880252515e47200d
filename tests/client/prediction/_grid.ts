/**
 * A plain grid of characters as a {@linkcode ScreenView}: the remote screen
 * in the predictor's unit tests, changed by hand as a remote echo would.
 *
 * @module
 */

import type {
  CursorPosition,
  ScreenView,
} from "../../../src/client/prediction/mod.ts";

/** A `cols` x `rows` screen of single characters ("" is blank). */
export class Grid implements ScreenView {
  readonly cols: number;
  readonly rows: number;
  cells: string[][];
  at: CursorPosition = { row: 0, col: 0 };
  alt = false;
  safe = true;

  constructor(cols = 20, rows = 4) {
    this.cols = cols;
    this.rows = rows;
    this.cells = Array.from({ length: rows }, () => Array(cols).fill(""));
  }

  cursor(): CursorPosition {
    return { ...this.at };
  }

  cellText(row: number, col: number): string {
    return this.cells[row]?.[col] ?? "";
  }

  alternate(): boolean {
    return this.alt;
  }

  predictable(): boolean {
    return this.safe;
  }

  /** Prints `text` at the cursor as a remote echo would (overwriting). */
  print(text: string): void {
    for (const ch of text) {
      this.cells[this.at.row][this.at.col] = ch === " " ? "" : ch;
      this.at.col++;
    }
  }

  /** One row as text, blanks as spaces, trailing blanks trimmed. */
  line(row: number): string {
    return this.cells[row].map((c) => c || " ").join("").trimEnd();
  }
}
