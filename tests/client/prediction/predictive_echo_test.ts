/**
 * PredictiveEcho between a scripted remote and a real emulator standing in
 * for the local terminal (a second headless xterm fed every byte the echo
 * writes): what the person sees at each step, and at the end exactly what
 * a terminal fed only the remote's bytes shows (glyphs, attributes,
 * cursor).
 */

import assert from "node:assert/strict";
import {
  PredictiveEcho,
  ScreenModel,
} from "../../../src/client/prediction/mod.ts";
import { sgr } from "../../../src/client/prediction/painter.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

/** Every cell as glyph + SGR, and the cursor: a screen to compare. */
function dump(model: ScreenModel): string {
  const rows: string[] = [];
  for (let row = 0; row < model.rows; row++) {
    let line = "";
    for (let col = 0; col < model.cols; col++) {
      const cell = model.cell(row, col)!;
      line += sgr(cell.attributes) + (cell.chars || " ");
    }
    rows.push(line);
  }
  const { row, col } = model.cursor();
  return `${rows.join("\n")}\ncursor ${row},${col}`;
}

/** A local terminal, the echo writing to it, a reference and a clock. */
async function setup(cols = 40, rows = 5) {
  const local = await ScreenModel.create(cols, rows);
  const reference = await ScreenModel.create(cols, rows);
  const written: Uint8Array[] = [];
  const clock = { t: 0 };
  const echo = await PredictiveEcho.create(
    "always",
    cols,
    rows,
    (data) => {
      written.push(data.slice());
      local.feed(data);
      return Promise.resolve();
    },
    () => clock.t,
  );
  const remote = async (text: string) => {
    reference.feed(bytes(text));
    await echo.output(bytes(text));
  };
  const row = (r: number) => {
    let line = "";
    for (let c = 0; c < cols; c++) line += local.cellText(r, c) || " ";
    return line.trimEnd();
  };
  return { local, reference, echo, remote, clock, row, written };
}

Deno.test("typed keys show at once at the cursor, underlined on a slow link, and end exactly as the remote drew them", async () => {
  const { local, reference, echo, remote, clock, row } = await setup();
  await remote("\x1b[32muser\x1b[0m$ ");
  await echo.keys(bytes("e"));
  assert.equal(row(0), "user$", "first key of the epoch: hidden");
  clock.t += 200;
  await remote("e"); // its echo confirms the epoch
  for (const key of "cho hi") {
    await echo.keys(bytes(key));
  }
  assert.equal(row(0), "user$ echo hi", "shown before any echo");
  assert.deepEqual(local.cursor(), { row: 0, col: 13 });
  assert.ok(local.cell(0, 8)!.attributes.isUnderline(), "underlined: slow");
  clock.t += 200;
  await remote("cho hi");
  assert.equal(dump(local), dump(reference));
  await echo.keys(bytes("\r"));
  await remote("\r\nhi\r\n\x1b[32muser\x1b[0m$ ");
  assert.equal(dump(local), dump(reference));
  await echo.finish();
  assert.equal(dump(local), dump(reference));
});

Deno.test("a program that echoes upper case ends with the server's glyphs, no underline left", async () => {
  const { local, reference, echo, remote, clock, row } = await setup();
  await remote("> ");
  await echo.keys(bytes("A"));
  clock.t += 200;
  await remote("A");
  await echo.keys(bytes("bc"));
  assert.equal(row(0), "> Abc", "predicted lower case");
  clock.t += 200;
  await remote("B");
  assert.equal(row(0), "> AB", "the wrong guess is repainted at once");
  await remote("C");
  assert.equal(dump(local), dump(reference));
});

Deno.test("keys typed at a prompt that does not echo never show, and leave nothing", async () => {
  const { local, reference, echo, remote, clock, row } = await setup();
  await remote("$ ");
  await echo.keys(bytes("r"));
  clock.t += 150;
  await remote("r");
  await echo.keys(bytes("ead -s\r"));
  clock.t += 150;
  await remote("ead -s\r\n");
  await echo.keys(bytes("hunter2"));
  assert.equal(row(1), "", "a new epoch after Enter: hidden");
  clock.t += 5000; // the timer runs on real time: wait past the expiry
  await new Promise((resolve) => setTimeout(resolve, 1200));
  assert.equal(echo.predictor.pending, false);
  assert.equal(dump(local), dump(reference));
});

Deno.test("a scrolling echo after Enter moves no stale guess onto another row", async () => {
  const { local, reference, echo, remote, clock } = await setup(20, 3);
  await remote("$ \r\n$ \r\n$ ");
  await echo.keys(bytes("l"));
  clock.t += 200;
  await remote("l");
  await echo.keys(bytes("s\r"));
  clock.t += 200;
  await remote("s\r\nfile\r\n$ "); // confirms "s", then scrolls twice
  assert.equal(dump(local), dump(reference));
});

Deno.test("overlay sequences never use the remote's saved-cursor slot, and a pending wrap survives", async () => {
  const { local, reference, echo, remote, clock, written } = await setup(10, 3);
  await remote("$ ");
  await echo.keys(bytes("a"));
  clock.t += 200;
  await remote("a");
  await echo.keys(bytes("bcdef")); // up to column 8, the last one it may use
  clock.t += 200;
  await remote("bcdefgh"); // the remote goes on to the last column: wrap pending
  await remote("X");
  assert.equal(dump(local), dump(reference));
  const all = written.map((w) => new TextDecoder().decode(w)).join("");
  assert.ok(!all.includes("\x1b7") && !all.includes("\x1b8"));
});

Deno.test("the model starts where the local cursor stands: the terminal's position report is asked for and kept from the remote", async () => {
  const { local, echo, remote, written } = await setup(20, 6);
  local.feed(bytes("old\r\nlocal\r\nlines\r\n$ et host\r\n")); // before et
  const asked = echo.locate();
  await remote("remote$ "); // held until the answer
  const all = written.map((w) => new TextDecoder().decode(w)).join("");
  assert.equal(all, "\x1b[6nremote$ ", "asked where the cursor is, first");
  assert.deepEqual(local.cursor(), { row: 4, col: 8 });
  // The answer comes on the keyboard's side, cut in two, amid keys.
  assert.equal(new TextDecoder().decode(echo.input(bytes("ab\x1b[5"))), "ab");
  assert.equal(new TextDecoder().decode(echo.input(bytes(";1Rcd"))), "cd");
  await asked;
  assert.deepEqual(echo.model.cursor(), local.cursor(), "the model agrees");
});

Deno.test("without an answer in 2 s the model is untrusted; an answer that comes later is still kept from the remote", async () => {
  const { echo, remote, clock } = await setup(20, 6);
  echo.locate();
  await remote("$ ");
  await new Promise((resolve) => setTimeout(resolve, 2100));
  assert.equal(echo.model.predictable(), false, "no answer: untrusted");
  clock.t += 5000;
  const late = echo.input(bytes("\x1b[3;1Rx"));
  assert.equal(
    new TextDecoder().decode(late),
    "x",
    "the late answer is not sent",
  );
  clock.t += 60_000;
  const much = echo.input(bytes("\x1b[3;1R"));
  assert.equal(much.length, 6, "long after, a report is the remote's");
  await remote("\x1b[H\x1b[2J$ ");
  assert.equal(echo.model.predictable(), true, "a full clear: exact again");
});

Deno.test("keys are taken before they are sent and predicted after: nothing shows until predict, then the same screen as input()", async () => {
  const { local, reference, echo, remote, clock, row } = await setup();
  await remote("$ ");
  await echo.keys(bytes("l"));
  clock.t += 200;
  await remote("l"); // confirms the epoch: later guesses show
  const typed = echo.takeInput(bytes("s"));
  assert.equal(new TextDecoder().decode(typed), "s", "sent unchanged");
  assert.equal(echo.predictor.pending, false, "not predicted yet");
  assert.equal(row(0), "$ l");
  echo.predict(typed);
  await echo.keys(new Uint8Array(0)); // the drawing written
  assert.equal(row(0), "$ ls", "shown once predicted");
  clock.t += 200;
  await remote("s");
  assert.equal(dump(local), dump(reference));
});

Deno.test("with nothing shown, the echo's bytes reach the terminal before the model parses them, and the screen ends as the remote drew it", async () => {
  const local = await ScreenModel.create(40, 5);
  const reference = await ScreenModel.create(40, 5);
  // Each write to the terminal, with the model's cursor column at that time.
  const seen: { text: string; modelCol: number }[] = [];
  const echo: PredictiveEcho = await PredictiveEcho.create(
    "always",
    40,
    5,
    (data) => {
      seen.push({
        text: new TextDecoder().decode(data),
        modelCol: echo.model.cursor().col,
      });
      local.feed(data);
      return Promise.resolve();
    },
    () => 0,
  );
  const remote = async (text: string) => {
    reference.feed(bytes(text));
    await echo.output(bytes(text));
  };
  await remote("$ ");
  await echo.keys(bytes("e")); // first key of the epoch: predicted, hidden
  assert.equal(echo.predictor.pending, true);
  seen.length = 0;
  await remote("e");
  assert.deepEqual(
    seen[0],
    { text: "e", modelCol: 2 },
    "written first, while the model still stood before it",
  );
  assert.equal(echo.model.cursor().col, 3, "parsed after");
  assert.equal(echo.predictor.pending, false, "and judged: confirmed");
  assert.equal(dump(local), dump(reference));
});

Deno.test("a key typed after a burst that must be parsed byte by byte brings the model up to date at the next short lull", async () => {
  const { echo, remote, clock } = await setup();
  const wait = () => new Promise((resolve) => setTimeout(resolve, 300));
  // Colored lines, over 64 KiB at once: set aside, no exact shortcut.
  let burst = "";
  for (let i = 1; i <= 5000; i++) burst += `\x1b[32mline ${i}\x1b[0m\r\n`;
  await remote(burst);
  clock.t = 300; // a pause, not yet the end of a stream
  await wait();
  assert.equal(echo.model.current, false, "still set aside at a pause");
  echo.input(bytes("x"));
  await wait();
  assert.equal(echo.model.current, true, "parsed once a key was typed");
  assert.equal(echo.model.skippedBytes, 0);
  await echo.finish();
});
