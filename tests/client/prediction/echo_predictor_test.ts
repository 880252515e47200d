/**
 * The predictor as pure state: keystrokes, a hand-changed screen (the
 * remote's echo) and a hand-set clock, so every rule is checked alone.
 */

import assert from "node:assert/strict";
import {
  EchoPredictor,
  type Overlay,
} from "../../../src/client/prediction/mod.ts";
import { MIN_EXPIRY_MS } from "../../../src/client/prediction/echo_predictor.ts";
import { Grid } from "./_grid.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const glyphs = (overlay: Overlay) =>
  overlay.cells.map((c) => `${c.col}:${c.glyph || "_"}`).join(" ");

/** Types `text` at `t`, echoes it at `t + rtt` (the remote prints it). */
function typeAndEcho(
  p: EchoPredictor,
  grid: Grid,
  text: string,
  t: number,
  rtt: number,
): number {
  p.keys(bytes(text), grid, t);
  grid.print(text);
  p.update(grid, t + rtt);
  return t + rtt;
}

Deno.test("the first key of an epoch stays hidden until its echo confirms the epoch", () => {
  const grid = new Grid();
  grid.print("$ ");
  const p = new EchoPredictor("always");
  p.keys(bytes("l"), grid, 0);
  assert.equal(glyphs(p.overlay(grid)), "", "tentative: nothing shown");
  grid.print("l");
  p.update(grid, 200);
  assert.equal(p.confirmedEpoch, p.epoch);
  p.keys(bytes("s"), grid, 210);
  const overlay = p.overlay(grid);
  assert.equal(
    glyphs(overlay),
    "3:s",
    "shown at once, at the predicted cursor",
  );
  assert.deepEqual(overlay.cursor, { row: 0, col: 4 });
  grid.print("s");
  p.update(grid, 410);
  assert.equal(glyphs(p.overlay(grid)), "", "confirmed: the echo shows itself");
  assert.equal(p.pending, false);
});

Deno.test("adaptive: shown only once the echo round trip exceeds 30 ms, hidden again below 20 ms", () => {
  const grid = new Grid();
  const p = new EchoPredictor("adaptive");
  let t = typeAndEcho(p, grid, "a", 0, 5);
  p.keys(bytes("b"), grid, t);
  assert.equal(glyphs(p.overlay(grid)), "", "fast link: no prediction shown");
  grid.print("b");
  p.update(grid, t += 5);
  for (let i = 0; i < 3; i++) t = typeAndEcho(p, grid, "c", t, 200);
  assert.ok(p.srtt! > 30, `srtt ${p.srtt}`);
  assert.equal(p.showing, true);
  p.keys(bytes("d"), grid, t);
  assert.equal(glyphs(p.overlay(grid)), `${grid.at.col}:d`);
  grid.print("d");
  p.update(grid, t += 200);
  while (p.srtt! >= 20) t = typeAndEcho(p, grid, "e", t, 1);
  assert.equal(p.showing, false, "hysteresis: hidden below 20 ms");
});

Deno.test("predictions are underlined while the round trip is over 80 ms, plain below 50 ms", () => {
  const grid = new Grid(80);
  const p = new EchoPredictor("always");
  let t = typeAndEcho(p, grid, "a", 0, 200);
  p.keys(bytes("b"), grid, t);
  assert.equal(p.overlay(grid).cells[0].underline, true);
  grid.print("b");
  p.update(grid, t += 200);
  while (p.srtt! >= 50) t = typeAndEcho(p, grid, "x", t, 10);
  p.keys(bytes("c"), grid, t);
  assert.equal(p.overlay(grid).cells[0].underline, false);
});

Deno.test("after Enter, keys at a prompt without echo (a password) are never shown and expire", () => {
  const grid = new Grid();
  const p = new EchoPredictor("always");
  const t = typeAndEcho(p, grid, "read -s", 0, 150);
  p.keys(bytes("\r"), grid, t);
  grid.at = { row: 1, col: 0 }; // the remote moved to the next line
  p.keys(bytes("secret"), grid, t + 10);
  assert.equal(glyphs(p.overlay(grid)), "", "a new epoch: hidden");
  assert.ok(p.pending);
  p.update(grid, t + 10 + MIN_EXPIRY_MS + 400);
  assert.equal(p.pending, false, "no echo: dropped");
  assert.equal(glyphs(p.overlay(grid)), "");
});

Deno.test("a wrong glyph (upper-case echo) refutes the prediction at once", () => {
  const grid = new Grid();
  const p = new EchoPredictor("always");
  const t = typeAndEcho(p, grid, "x", 0, 150);
  p.keys(bytes("ab"), grid, t);
  assert.equal(glyphs(p.overlay(grid)), "1:a 2:b");
  grid.print("A");
  p.update(grid, t + 150);
  assert.equal(glyphs(p.overlay(grid)), "", "everything hidden");
  assert.ok(p.epoch > p.confirmedEpoch, "hidden until confirmed again");
  grid.print("B");
  p.update(grid, t + 220);
  p.update(grid, t + 220 + MIN_EXPIRY_MS * 2);
  assert.equal(p.pending, false, "and gone once the keys are old");
});

Deno.test("keys typed before the next prompt came are anchored again where it came", () => {
  const grid = new Grid(40);
  grid.print("$ ");
  const p = new EchoPredictor("always");
  const t = typeAndEcho(p, grid, "x", 0, 200);
  p.keys(bytes("\r"), grid, t);
  // "echo" typed 70 ms apart right after Enter: the remote has not moved
  // to the next line yet, so the guesses land on the old one (hidden).
  for (const [i, key] of [..."echo"].entries()) {
    p.keys(bytes(key), grid, t + 10 + 70 * i);
  }
  assert.equal(glyphs(p.overlay(grid)), "", "hidden");
  grid.at = { row: 1, col: 0 };
  grid.print("$ e"); // the prompt, and the echo of "e"
  p.update(grid, t + 210);
  // The run is anchored again after its echoed "e": c, h, o at 3, 4, 5.
  grid.print("c");
  p.update(grid, t + 280);
  assert.equal(p.confirmedEpoch, p.epoch, "the new anchor confirmed");
  const overlay = p.overlay(grid);
  assert.equal(glyphs(overlay), "4:h 5:o", "the rest shows at once");
  assert.deepEqual(overlay.cursor, { row: 1, col: 6 });
});

Deno.test("a blank cell on the way (a line being redrawn) is not a refutation", () => {
  const grid = new Grid();
  grid.print("abc");
  const p = new EchoPredictor("always");
  const t = typeAndEcho(p, grid, "d", 0, 150);
  grid.at.col = 1; // cursor after "a"
  p.keys(bytes("X"), grid, t); // insert: X, then b c d shift right
  assert.equal(glyphs(p.overlay(grid)), "1:X 2:b 3:c 4:d");
  grid.cells[0][2] = ""; // the remote erased the rest of the line first
  p.update(grid, t + 50);
  assert.ok(p.pending, "still waiting");
  grid.at.col = 1;
  grid.print("Xbcd");
  grid.at.col = 2; // and puts the cursor back after the X
  p.update(grid, t + 150);
  assert.equal(glyphs(p.overlay(grid)), "");
  assert.equal(p.pending, false);
});

Deno.test("backspace deletes left and shifts the rest; arrows move the cursor", () => {
  const grid = new Grid();
  const p = new EchoPredictor("always");
  const t = typeAndEcho(p, grid, "abcd", 0, 150);
  p.keys(bytes("\x7f"), grid, t);
  let overlay = p.overlay(grid);
  assert.equal(glyphs(overlay), "3:_");
  assert.deepEqual(overlay.cursor, { row: 0, col: 3 });
  p.keys(bytes("\x1b[D\x1b[D"), grid, t);
  assert.deepEqual(p.overlay(grid).cursor, { row: 0, col: 1 });
  p.keys(bytes("\x1bOC"), grid, t);
  assert.deepEqual(p.overlay(grid).cursor, { row: 0, col: 2 });
  p.keys(bytes("\x7f"), grid, t); // deletes "b": c moves left, d is gone
  overlay = p.overlay(grid);
  assert.equal(glyphs(overlay), "1:c 2:_ 3:_");
  assert.deepEqual(overlay.cursor, { row: 0, col: 1 });
  // The remote's line editor does the same.
  grid.cells[0] = grid.cells[0].map(() => "");
  grid.cells[0][0] = "a";
  grid.cells[0][1] = "c";
  grid.at = { row: 0, col: 1 };
  p.update(grid, t + 150);
  assert.equal(p.pending, false);
});

Deno.test("control keys and unknown escape sequences start a new hidden epoch", () => {
  for (const key of ["\x03", "\t", "\x1b[A", "\x1bx", "\x1b", "é"]) {
    const grid = new Grid();
    const p = new EchoPredictor("always");
    const t = typeAndEcho(p, grid, "a", 0, 150);
    p.keys(bytes(key), grid, t);
    p.keys(bytes("b"), grid, t);
    assert.equal(glyphs(p.overlay(grid)), "", JSON.stringify(key));
  }
});

Deno.test("a switch to the alternate screen, or an unsafe screen, drops every prediction", () => {
  const grid = new Grid();
  const p = new EchoPredictor("always");
  const t = typeAndEcho(p, grid, "a", 0, 150);
  p.keys(bytes("b"), grid, t);
  assert.equal(glyphs(p.overlay(grid)), "1:b");
  grid.alt = true;
  p.update(grid, t + 1);
  assert.equal(p.pending, false);
  p.keys(bytes("c"), grid, t + 2);
  assert.equal(
    glyphs(p.overlay(grid)),
    "",
    "alternate screen: hidden until confirmed there",
  );
  grid.safe = false;
  p.update(grid, t + 3);
  assert.equal(p.pending, false);
  p.keys(bytes("d"), grid, t + 4);
  assert.equal(p.pending, false, "nothing predicted on an unsafe screen");
});

Deno.test("no prediction at the last column (it would wrap) or with mode never", () => {
  const grid = new Grid(5);
  const p = new EchoPredictor("always");
  const t = typeAndEcho(p, grid, "abc", 0, 150);
  p.keys(bytes("d"), grid, t);
  assert.equal(glyphs(p.overlay(grid)), "3:d");
  p.keys(bytes("e"), grid, t);
  assert.equal(
    glyphs(p.overlay(grid)),
    "3:d",
    "column 4 is the last: not predicted",
  );
  const never = new EchoPredictor("never");
  never.keys(bytes("abc"), grid, 0);
  assert.equal(never.pending, false);
});

Deno.test("a shown prediction refuted by expiry drops all and underlines the next ones", () => {
  const grid = new Grid(80);
  const p = new EchoPredictor("always");
  let t = 0;
  for (let i = 0; i < 20; i++) t = typeAndEcho(p, grid, "a", t, 5);
  p.keys(bytes("b"), grid, t);
  assert.equal(p.overlay(grid).cells[0].underline, false);
  p.update(grid, t + MIN_EXPIRY_MS + 1); // the echo never came
  assert.equal(p.pending, false);
  t += MIN_EXPIRY_MS + 1;
  p.keys(bytes("c"), grid, t);
  grid.print("c");
  p.update(grid, t + 5);
  p.keys(bytes("d"), grid, t + 5);
  assert.equal(p.overlay(grid).cells[0].underline, true, "glitch: underlined");
});
