/**
 * The escape sequences prediction adds to the local terminal's byte
 * stream: draw a predicted glyph, repaint a cell exactly as the model has
 * it, and put the cursor and the pen back where the remote left them.
 * Only absolute cursor moves (CUP) and SGR are used, never the save/restore
 * cursor slot (DECSC), which belongs to the remote program.
 *
 * @module
 */

import type { OverlayCell } from "./echo_predictor.ts";
import type { CellAttributes, ScreenModel } from "./screen_model.ts";
import type { CursorPosition } from "./screen_view.ts";

/** `CSI row;col H` for a 0-based position. */
export function moveTo(row: number, col: number): string {
  return `\x1b[${row + 1};${col + 1}H`;
}

/** The SGR sequence that sets exactly `attributes` (from a reset). */
export function sgr(attributes: CellAttributes, underline = false): string {
  const codes = ["0"];
  if (attributes.isBold()) codes.push("1");
  if (attributes.isDim()) codes.push("2");
  if (attributes.isItalic()) codes.push("3");
  if (attributes.isUnderline() || underline) codes.push("4");
  if (attributes.isBlink()) codes.push("5");
  if (attributes.isInverse()) codes.push("7");
  if (attributes.isInvisible()) codes.push("8");
  if (attributes.isStrikethrough()) codes.push("9");
  if (attributes.isOverline()) codes.push("53");
  codes.push(
    ...color(
      attributes.isFgRGB(),
      attributes.isFgPalette(),
      attributes.getFgColor(),
      30,
      90,
      38,
    ),
    ...color(
      attributes.isBgRGB(),
      attributes.isBgPalette(),
      attributes.getBgColor(),
      40,
      100,
      48,
    ),
  );
  return `\x1b[${codes.join(";")}m`;
}

function color(
  rgb: boolean,
  palette: boolean,
  value: number,
  base: number,
  bright: number,
  extended: number,
): string[] {
  if (rgb) {
    return [
      `${extended}`,
      "2",
      `${(value >> 16) & 255}`,
      `${(value >> 8) & 255}`,
      `${value & 255}`,
    ];
  }
  if (!palette) return [];
  if (value < 8) return [`${base + value}`];
  if (value < 16) return [`${bright + value - 8}`];
  return [`${extended}`, "5", `${value}`];
}

/** Draws predicted cells with the remote's pen (underlined when flagged). */
export function drawCells(cells: OverlayCell[], model: ScreenModel): string {
  let out = "";
  const pen = model.pen();
  for (const cell of cells) {
    out += moveTo(cell.row, cell.col) + sgr(pen, cell.underline) +
      (cell.glyph === "" ? " " : cell.glyph);
  }
  return out;
}

/** Repaints cells from the model, as the remote drew them. */
export function repaintCells(
  positions: { row: number; col: number }[],
  model: ScreenModel,
): string {
  let out = "";
  for (const { row, col } of positions) out += repaintCell(row, col, model);
  return out;
}

function repaintCell(row: number, col: number, model: ScreenModel): string {
  let cell = model.cell(row, col);
  if (cell === undefined) return "";
  if (cell.width === 0 && col > 0) {
    // The right half of a wide character: paint the whole character.
    col--;
    cell = model.cell(row, col);
    if (cell === undefined) return "";
  }
  if (cell.width === 2 && col + 1 >= model.cols) return ""; // cannot fit
  return moveTo(row, col) + sgr(cell.attributes) +
    (cell.chars === "" ? " " : cell.chars);
}

/**
 * Puts the cursor where the model has it and the pen back to the remote's,
 * including a pending wrap: the cursor after the last column is restored
 * by printing the last cell again (that sets the same pending wrap).
 */
export function restoreCursor(model: ScreenModel): string {
  const { row, col } = model.cursor();
  if (col >= model.cols && model.autowrap()) {
    return repaintCell(row, model.cols - 1, model) + sgr(model.pen());
  }
  return moveTo(row, Math.min(col, model.cols - 1)) + sgr(model.pen());
}

/** Moves the cursor to a predicted position (the pen does not matter there). */
export function showCursorAt(at: CursorPosition): string {
  return moveTo(at.row, at.col);
}
