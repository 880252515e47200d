/** The bootstrap and ready lines: round trips, and garbage refused in one line. */
import assert from "node:assert/strict";
import {
  CONTROL_LINE_LIMIT,
  ControlDecoder,
  decodeBootstrap,
  decodeReady,
  encodeBootstrap,
  encodeControl,
  encodeReady,
} from "../../src/session/mod.ts";
import { generateSessionSecret, toHex } from "../../src/transport/mod.ts";

const program = {
  command: "make -j8",
  pty: false,
  term: "xterm-256color",
  cols: 120,
  rows: 40,
  env: { LANG: "en_US.UTF-8", LC_TIME: "C", COLORTERM: "truecolor" },
};
const limits = {
  connectTimeoutMs: 30_000,
  sessionTimeoutMs: 0,
  maxBacklogBytes: 1 << 20,
};

Deno.test("bootstrap: new, attach and list round-trip", () => {
  const secret = generateSessionSecret();
  const line = encodeBootstrap({
    op: "new",
    secret,
    program,
    limits,
    killOthers: true,
  });
  assert.ok(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
  const back = decodeBootstrap(line.trim());
  assert.equal(back.op, "new");
  if (back.op !== "new") return;
  assert.deepEqual(back.secret, secret);
  assert.deepEqual(back.program, program);
  assert.deepEqual(back.limits, limits);
  assert.equal(back.killOthers, true);

  const attach = decodeBootstrap(
    encodeBootstrap({
      op: "attach",
      target: "ab12",
      passkey: secret.passkey,
      cols: 80,
      rows: 24,
    }),
  );
  assert.deepEqual(attach, {
    op: "attach",
    target: "ab12",
    passkey: secret.passkey,
    cols: 80,
    rows: 24,
  });
  assert.deepEqual(decodeBootstrap(encodeBootstrap({ op: "list" })), {
    op: "list",
  });
});

Deno.test("bootstrap: garbage is refused with one line, never a crash", () => {
  const secret = generateSessionSecret();
  const good = JSON.parse(
    encodeBootstrap({ op: "new", secret, program, limits, killOthers: false }),
  );
  const cases: unknown[] = [
    "not json",
    "{}",
    JSON.stringify({ ...good, op: "reboot" }),
    JSON.stringify({ ...good, secret: "zz" }),
    JSON.stringify({ ...good, program: { ...program, term: "x; rm -rf /" } }),
    JSON.stringify({
      ...good,
      program: { ...program, env: { LD_PRELOAD: "/tmp/x.so" } },
    }),
    JSON.stringify({ ...good, program: { ...program, env: { LANG: "a\nb" } } }),
    JSON.stringify({ ...good, program: { ...program, cols: -1 } }),
    JSON.stringify({ ...good, limits: { ...limits, maxBacklogBytes: -5 } }),
    JSON.stringify({
      op: "attach",
      target: "../../etc",
      passkey: toHex(secret.passkey),
      cols: 1,
      rows: 1,
    }),
    JSON.stringify({
      op: "attach",
      target: "",
      passkey: "short",
      cols: 1,
      rows: 1,
    }),
  ];
  for (const line of cases) {
    assert.throws(
      () => decodeBootstrap(line as string),
      (error: Error) =>
        /^malformed bootstrap line/.test(error.message) &&
        !error.message.includes("\n"),
      String(line),
    );
  }
  // A client cannot make the session keep more than the cap.
  const huge = decodeBootstrap(
    JSON.stringify({
      ...good,
      limits: { ...limits, maxBacklogBytes: 2 ** 50 },
    }),
  );
  assert.ok(huge.op === "new" && huge.limits.maxBacklogBytes <= 1024 ** 3);
});

Deno.test("ready line: found among noise; garbage after the marker is an error", () => {
  const id = "0123456789abcdef0123456789abcdef";
  assert.equal(decodeReady("Welcome to the host"), null);
  assert.equal(
    decodeReady("ET_TERMINAL_READY"),
    null,
    "the bare word of old launchers",
  );
  assert.deepEqual(decodeReady(encodeReady({ id, detached: 2 }) + "\r"), {
    id,
    detached: 2,
  });
  assert.deepEqual(decodeReady(encodeReady({ sessions: [] })), {
    sessions: [],
  });
  assert.throws(() => decodeReady("ET_TERMINAL_READY {nope"), /garbage/);
});

Deno.test("control messages: split anywhere, unknown and endless lines ignored", () => {
  const bytes = new Uint8Array([
    ...encodeControl({ type: "resize", cols: 100, rows: 30 }),
    ...new TextEncoder().encode('{"type":"reboot"}\nnot json\n'),
    ...encodeControl({ type: "detach" }),
    ...encodeControl({ type: "exit", code: 3 }),
  ]);
  for (let split = 0; split <= bytes.length; split += 7) {
    const decoder = new ControlDecoder();
    const messages = [
      ...decoder.push(bytes.subarray(0, split)),
      ...decoder.push(bytes.subarray(split)),
    ];
    assert.deepEqual(messages, [
      { type: "resize", cols: 100, rows: 30 },
      { type: "detach" },
      { type: "exit", code: 3 },
    ]);
  }
  const decoder = new ControlDecoder();
  decoder.push(new Uint8Array(100_000).fill(0x41));
  assert.deepEqual(
    decoder.push(encodeControl({ type: "detach" })),
    [],
    "the tail of an endless line is dropped with it",
  );
  assert.deepEqual(decoder.push(encodeControl({ type: "detach" })), [{
    type: "detach",
  }]);
});

Deno.test("control messages: a BOM inside a line is garbage wherever a chunk begins", () => {
  const line = (text: string) => new TextEncoder().encode(text);
  const bytes = new Uint8Array([
    ...line('{"type":"resize","cols":1,"rows":2}\n{"type":"resize","cols":'),
    0xef,
    0xbb,
    0xbf,
    ...line('8,"rows":9}\n{"type":"detach"}\n'),
  ]);
  for (let split = 0; split <= bytes.length; split++) {
    const decoder = new ControlDecoder();
    const messages = [
      ...decoder.push(bytes.subarray(0, split)),
      ...decoder.push(bytes.subarray(split)),
    ];
    assert.deepEqual(messages, [{ type: "resize", cols: 1, rows: 2 }, {
      type: "detach",
    }], `split at ${split}`);
  }
});

Deno.test("bootstrap: SetEnv and the keepalive round-trip; bad ones are refused", () => {
  const secret = generateSessionSecret();
  const withSetEnv = {
    ...program,
    setEnv: { FOO: "bar", _X9: "", SPACED: "a  b", UTF: "é\n" },
  };
  const back = decodeBootstrap(
    encodeBootstrap({
      op: "new",
      secret,
      program: withSetEnv,
      limits: { ...limits, keepaliveMs: 5000 },
      killOthers: false,
    }).trim(),
  );
  assert.equal(back.op, "new");
  if (back.op !== "new") return;
  assert.deepEqual(back.program.setEnv, withSetEnv.setEnv);
  assert.equal(back.limits.keepaliveMs, 5000);
  const attach = decodeBootstrap(
    encodeBootstrap({
      op: "attach",
      target: "",
      passkey: secret.passkey,
      cols: 80,
      rows: 24,
      keepaliveMs: 8000,
    }),
  );
  assert.equal(attach.op === "attach" && attach.keepaliveMs, 8000);

  const line = (setEnv: unknown) =>
    JSON.stringify({
      op: "new",
      secret: JSON.parse(encodeBootstrap({
        op: "new",
        secret,
        program,
        limits,
        killOthers: false,
      })).secret,
      program: { ...program, setEnv },
      limits,
    });
  const many = Object.fromEntries(
    Array.from({ length: 65 }, (_, i) => [`V${i}`, "x"]),
  );
  const cases: [unknown, string][] = [
    [{ "1BAD": "x" }, "setEnv 1BAD"],
    [{ "A-B": "x" }, "setEnv A?B"],
    [{ "A B": "x" }, "setEnv A?B"],
    [{ A: "nul\0inside" }, "setEnv A"],
    [{ A: "v".repeat(4097) }, "setEnv A"],
    [{ ["N".repeat(129)]: "x" }, `setEnv ${"N".repeat(32)}`],
    [{ A: 1 }, "setEnv A"],
    [["A=1"], "setEnv"],
    ["A=1", "setEnv"],
    [many, "setEnv count"],
  ];
  for (const [setEnv, what] of cases) {
    assert.throws(
      () => decodeBootstrap(line(setEnv)),
      new RegExp(
        `^Error: malformed bootstrap line: ${what.replace(/\?/g, "\\?")}$`,
      ),
      JSON.stringify(setEnv).slice(0, 60),
    );
  }
});

Deno.test("session sharing's control messages round-trip; bad tags or fields are dropped", () => {
  const decoder = new ControlDecoder();
  const asked = {
    type: "session-new" as const,
    tag: 7,
    bootstrap: '{"op":"new"}',
  };
  const answered = {
    type: "session-answer" as const,
    tag: 7,
    answer: 'ET_TERMINAL_READY {"id":"ab","detached":0}',
  };
  assert.deepEqual(decoder.push(encodeControl(asked)), [asked]);
  assert.deepEqual(decoder.push(encodeControl(answered)), [answered]);
  const bad = [
    { type: "session-new", tag: -1, bootstrap: "x" },
    { type: "session-new", tag: 1.5, bootstrap: "x" },
    { type: "session-new", tag: 1 },
    { type: "session-new", tag: 1, bootstrap: 5 },
    { type: "session-answer", tag: "1", answer: "x" },
    { type: "session-answer", tag: 1, answer: null },
  ];
  const text = bad.map((m) => JSON.stringify(m) + "\n").join("");
  assert.deepEqual(decoder.push(new TextEncoder().encode(text)), []);
});

Deno.test("a detach carries the written counts; malformed counts leave a plain detach", () => {
  const decoder = new ControlDecoder();
  assert.deepEqual(
    decoder.push(encodeControl({ type: "detach", written: { 1: 5, 3: 0 } })),
    [{ type: "detach", written: { 1: 5, 3: 0 } }],
  );
  const line = (text: string) => new TextEncoder().encode(text + "\n");
  for (
    const bad of [
      '{"type":"detach","written":{"1":-1}}',
      '{"type":"detach","written":{"1":1.5}}',
      '{"type":"detach","written":{"x":1}}',
      '{"type":"detach","written":{"01":1}}',
      '{"type":"detach","written":[1]}',
      '{"type":"detach","written":"1"}',
      '{"type":"detach","written":{"1":1e300}}',
    ]
  ) {
    assert.deepEqual(decoder.push(line(bad)), [{ type: "detach" }], bad);
  }
});

Deno.test("output-closed names an output channel of a session without a pty; any other is dropped", () => {
  const decoder = new ControlDecoder();
  for (const channel of [1, 3] as const) {
    assert.deepEqual(
      decoder.push(encodeControl({ type: "output-closed", channel })),
      [{ type: "output-closed", channel }],
    );
  }
  const line = (text: string) => new TextEncoder().encode(text + "\n");
  for (
    const bad of [
      '{"type":"output-closed","channel":2}',
      '{"type":"output-closed","channel":"1"}',
      '{"type":"output-closed"}',
      '{"type":"output-closed","channel":1.0000001}',
    ]
  ) {
    assert.deepEqual(decoder.push(line(bad)), [], bad);
  }
});

Deno.test("a session-new carrying a 16 KiB bootstrap line passes the control decoder, in any chunking", () => {
  // A bootstrap line is JSON itself: its quotes double when escaped again.
  const bootstrap = JSON.stringify({
    op: "new",
    command: `printf '%s' "${'\\"q\\"'.repeat(2000)}"`.padEnd(16 * 1024, "x"),
  }).slice(0, 16 * 1024);
  const message = encodeControl({ type: "session-new", tag: 7, bootstrap });
  assert.ok(message.length > 16 * 1024, `${message.length} bytes`);
  for (const size of [1, 1000, message.length]) {
    const dropped: number[] = [];
    const decoder = new ControlDecoder({ onDropped: (n) => dropped.push(n) });
    const got = [];
    for (let at = 0; at < message.length; at += size) {
      got.push(...decoder.push(message.subarray(at, at + size)));
    }
    assert.deepEqual(got, [{ type: "session-new", tag: 7, bootstrap }]);
    assert.deepEqual(dropped, []);
  }
});

Deno.test("a control line over CONTROL_LINE_LIMIT is dropped whole and reported once, whole or split; the next line still parses", () => {
  const long = new TextEncoder().encode(
    JSON.stringify({ type: "detach", pad: "p".repeat(CONTROL_LINE_LIMIT) }) +
      "\n",
  );
  const next = encodeControl({ type: "resize", cols: 80, rows: 24 });
  for (const size of [7, 4096, long.length]) {
    const dropped: number[] = [];
    const decoder = new ControlDecoder({ onDropped: (n) => dropped.push(n) });
    const got = [];
    for (let at = 0; at < long.length; at += size) {
      got.push(...decoder.push(long.subarray(at, at + size)));
    }
    got.push(...decoder.push(next));
    assert.deepEqual(got, [{ type: "resize", cols: 80, rows: 24 }], `${size}`);
    assert.equal(dropped.length, 1, `reported once (chunks of ${size})`);
    assert.ok(dropped[0] > CONTROL_LINE_LIMIT);
  }
});
