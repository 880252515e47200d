/**
 * The control-stream reader catches what a damaged stream would show:
 * unpaired or nested blocks, undecodable `%output`, stray lines, a cut
 * last line. (So the tmux -CC test can fail.)
 */

import assert from "node:assert/strict";
import { decodeOutputPayload, parseControlStream } from "./tmux_control.ts";

Deno.test("tmux control stream: a good stream reads whole", () => {
  const stream = parseControlStream(
    [
      "%begin 1 2 0",
      "%end 1 2 0",
      "%session-changed $0 cc",
      "%output %0 a\\015\\012b\\134",
      "%begin 1 3 1",
      "bash 80x24",
      "%output %9 not a notification inside a block",
      "%end 1 3 1",
      "%output %0 c",
      "%exit",
      "",
    ].join("\r\n"), // as tmux sends it on a pty with ONLCR
  );
  assert.equal(stream.blocks.length, 2);
  assert.deepEqual(stream.blocks[1].lines, [
    "bash 80x24",
    "%output %9 not a notification inside a block",
  ]);
  assert.equal(
    new TextDecoder().decode(stream.output.get("%0")),
    "a\r\nb\\c",
  );
  assert.ok(stream.exited);
});

Deno.test("tmux control stream: each kind of damage is named", () => {
  const cases: [string, RegExp][] = [
    ["%begin 1 2 0\n%end 1 3 0\n", /ends block 1 3 0, open is 1 2 0/],
    ["%begin 1 2 0\n%begin 1 3 0\n", /%begin inside block/],
    ["%end 1 2 0\n", /%end without %begin/],
    ["%begin 1 2 0\nx\n", /never ended/],
    ["%output %0 a\\01\n", /bad escape/],
    ["%output %0 a\\\n", /bad escape/],
    ["%output %0 a\x1bb\n", /raw byte 0x1b/],
    ["%output 0 x\n", /malformed %output/],
    ["hello\n", /not a notification/],
    ["%output %0 ab", /unfinished last line/],
    ["%exit\n%output %0 a\n", /after %exit/],
  ];
  for (const [text, error] of cases) {
    assert.throws(() => parseControlStream(text), error, JSON.stringify(text));
  }
  assert.deepEqual([...decodeOutputPayload("\\000\\377 ")], [0, 255, 32]);
});
