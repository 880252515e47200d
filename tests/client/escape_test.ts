/**
 * Tests of the ssh-style escape filter: each rule, splits across pushes,
 * and a randomized comparison against a reference transcribed from ssh's
 * `process_escapes` loop.
 */

import assert from "node:assert/strict";
import {
  DEFAULT_ESCAPE_CHAR,
  type EscapeAction,
  EscapeFilter,
} from "../../src/client/escape.ts";

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** Pushes each piece; returns everything forwarded (as text) and the actions. */
function run(
  pieces: (string | Uint8Array)[],
  filter = new EscapeFilter(),
): { text: string; actions: EscapeAction[] } {
  let text = "";
  const actions: EscapeAction[] = [];
  for (const piece of pieces) {
    const result = filter.push(
      typeof piece === "string" ? encoder.encode(piece) : piece,
    );
    text += latin1.decode(result.forward);
    actions.push(...result.actions);
  }
  return { text, actions };
}

/**
 * The reference: ssh's clientloop.c `process_escapes`, reduced to the
 * escapes we support, over the whole input at once.
 */
function reference(
  input: Uint8Array,
  escape: number | null,
): { forward: number[]; actions: EscapeAction[] } {
  const forward: number[] = [];
  const actions: EscapeAction[] = [];
  if (escape === null) return { forward: [...input], actions };
  let lastWasCr = true;
  let escapePending = false;
  for (const ch of input) {
    if (escapePending) {
      escapePending = false;
      if (ch === ".".charCodeAt(0)) {
        actions.push("detach");
        return { forward, actions };
      }
      if (ch === "?".charCodeAt(0)) {
        actions.push("help");
        continue;
      }
      if (ch !== escape) forward.push(escape);
    } else if (lastWasCr && ch === escape) {
      escapePending = true;
      continue;
    }
    lastWasCr = ch === 0x0d || ch === 0x0a;
    forward.push(ch);
  }
  return { forward, actions };
}

Deno.test("plain keystrokes pass through unchanged", () => {
  assert.deepEqual(run(["ls -l\r", "echo a~b\r", "x~.y~?"]), {
    text: "ls -l\recho a~b\rx~.y~?",
    actions: [],
  });
});

Deno.test("~. at the start of input detaches; nothing after it is forwarded", () => {
  const filter = new EscapeFilter();
  assert.deepEqual(run(["~.rest of it"], filter), {
    text: "",
    actions: ["detach"],
  });
  assert.ok(filter.detached);
  assert.deepEqual(run(["more\r~."], filter), { text: "", actions: [] });
});

Deno.test("~. after \\r or \\n detaches; what came before is forwarded", () => {
  assert.deepEqual(run(["ls\r~.x"]), { text: "ls\r", actions: ["detach"] });
  assert.deepEqual(run(["ls\n~.x"]), { text: "ls\n", actions: ["detach"] });
});

Deno.test("~ in the middle of a line is an ordinary byte", () => {
  assert.deepEqual(run(["a~.", "b~?", "c~~"]), {
    text: "a~.b~?c~~",
    actions: [],
  });
});

Deno.test("~? asks for help, forwards nothing, and stays at a line start", () => {
  assert.deepEqual(run(["~?"]), { text: "", actions: ["help"] });
  assert.deepEqual(run(["x\r~?~?~."]), {
    text: "x\r",
    actions: ["help", "help", "detach"],
  });
  assert.deepEqual(run(["~?ab"]), { text: "ab", actions: ["help"] });
});

Deno.test("~~ forwards one ~, which does not start a line", () => {
  assert.deepEqual(run(["~~"]), { text: "~", actions: [] });
  assert.deepEqual(run(["~~."]), { text: "~.", actions: [] });
  assert.deepEqual(run(["\r~~~."]), { text: "\r~~.", actions: [] });
});

Deno.test("~ followed by another byte forwards both", () => {
  assert.deepEqual(run(["~a"]), { text: "~a", actions: [] });
  assert.deepEqual(run(["~\r~."]), { text: "~\r", actions: ["detach"] });
  assert.deepEqual(run(["~\x03"]), { text: "~\x03", actions: [] });
});

Deno.test("a held ~ waits for the next push", () => {
  const filter = new EscapeFilter();
  const first = filter.push(encoder.encode("ls\r~"));
  assert.equal(latin1.decode(first.forward), "ls\r");
  assert.deepEqual(first.actions, []);
  const second = filter.push(encoder.encode("x"));
  assert.equal(latin1.decode(second.forward), "~x");
  assert.deepEqual(run(["~", "."]), { text: "", actions: ["detach"] });
  assert.deepEqual(run(["~", "~", "."]), { text: "~.", actions: [] });
  assert.deepEqual(run(["\r", "~", "?", "~", "."]), {
    text: "\r",
    actions: ["help", "detach"],
  });
});

Deno.test("null disables escapes; another escape character works the same way", () => {
  assert.deepEqual(run(["~.~?\r~."], new EscapeFilter(null)), {
    text: "~.~?\r~.",
    actions: [],
  });
  const caret = new EscapeFilter("^".charCodeAt(0));
  assert.deepEqual(run(["~.\r^^\r^?^."], caret), {
    text: "~.\r^\r",
    actions: ["help", "detach"],
  });
  assert.equal(DEFAULT_ESCAPE_CHAR, "~".charCodeAt(0));
  assert.throws(() => new EscapeFilter(256), RangeError);
  assert.throws(() => new EscapeFilter(-1), RangeError);
});

Deno.test("an empty push changes nothing", () => {
  const filter = new EscapeFilter();
  assert.deepEqual(run(["", "~", "", "."], filter), {
    text: "",
    actions: ["detach"],
  });
});

/** A small seeded generator, so a failure can be replayed. */
function random(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

Deno.test("randomized: any split of any input gives the reference result", () => {
  const seed = Date.now() & 0xffff_ffff;
  const next = random(seed);
  // Bytes that matter, often; any byte, sometimes.
  const interesting = [0x7e, 0x7e, 0x2e, 0x3f, 0x0d, 0x0a, 0x61, 0x5e];
  for (let round = 0; round < 3000; round++) {
    const escape = next() < 0.1 ? (next() < 0.5 ? null : 0x5e) : 0x7e;
    const input = new Uint8Array(Math.floor(next() * 40));
    for (let i = 0; i < input.length; i++) {
      input[i] = next() < 0.85
        ? interesting[Math.floor(next() * interesting.length)]
        : Math.floor(next() * 256);
    }
    const expected = reference(input, escape);
    const cuts = new Set<number>();
    const splits = Math.floor(next() * 6);
    for (let i = 0; i < splits; i++) {
      cuts.add(Math.floor(next() * (input.length + 1)));
    }
    const points = [0, ...[...cuts].sort((a, b) => a - b), input.length];
    const pieces = points.slice(1).map((end, i) => input.slice(points[i], end));
    const byteByByte = [...input].map((byte) => new Uint8Array([byte]));
    for (const split of [[input], pieces, byteByByte]) {
      const got = run(split, new EscapeFilter(escape));
      const context = `seed ${seed}, round ${round}, input ${
        JSON.stringify(latin1.decode(input))
      }, split at ${points}`;
      assert.deepEqual(
        got.text,
        latin1.decode(new Uint8Array(expected.forward)),
        context,
      );
      assert.deepEqual(got.actions, expected.actions, context);
    }
  }
});
