import assert from "node:assert/strict";
import {
  ControlDecoder,
  decodeBootstrap,
  encodeBootstrap,
  encodeControl,
  isTunnelChannelOf,
  parseTunnelMessage,
} from "../../src/session/mod.ts";
import { generateSessionSecret } from "../../src/transport/mod.ts";

const program = {
  pty: true,
  term: "xterm",
  cols: 80,
  rows: 24,
  env: {},
};
const limits = {
  connectTimeoutMs: 1000,
  sessionTimeoutMs: 1000,
  maxBacklogBytes: 1000,
};

Deno.test("tunnel channel ids: client even from 16, server odd from 17", () => {
  assert.ok(isTunnelChannelOf("client", 16));
  assert.ok(isTunnelChannelOf("client", 1_000_000));
  assert.ok(!isTunnelChannelOf("client", 17));
  assert.ok(!isTunnelChannelOf("client", 14));
  assert.ok(isTunnelChannelOf("server", 17));
  assert.ok(!isTunnelChannelOf("server", 3));
  assert.ok(!isTunnelChannelOf("server", 2 ** 32 + 1));
});

Deno.test("tunnel messages round-trip on the control channel; garbage is dropped", () => {
  const messages = [
    {
      type: "tunnel-open" as const,
      channel: 16,
      target: { kind: "tcp" as const, host: "::1", port: 80 },
    },
    { type: "tunnel-open" as const, channel: 17, tunnel: 0 },
    { type: "tunnel-refused" as const, channel: 16, error: "nope" },
    { type: "tunnel-close" as const, channel: 19 },
  ];
  const decoder = new ControlDecoder();
  const bytes = messages.map((m) => encodeControl(m));
  const out = bytes.flatMap((b) => decoder.push(b));
  assert.deepEqual(out, messages);
  for (
    const bad of [
      { type: "tunnel-open", channel: 2, tunnel: 0 },
      { type: "tunnel-open", channel: 16 },
      { type: "tunnel-open", channel: 16, tunnel: -1 },
      { type: "tunnel-open", channel: 16, target: { kind: "env", name: "X" } },
      { type: "tunnel-open", channel: 16, target: { kind: "unix", path: "x" } },
      { type: "tunnel-close", channel: "16" },
      { type: "tunnel-whatever", channel: 16 },
    ]
  ) assert.equal(parseTunnelMessage(bad), null, JSON.stringify(bad));
  assert.deepEqual(
    parseTunnelMessage({
      type: "tunnel-refused",
      channel: 18,
      error: "a\x1b[31mb",
    }),
    { type: "tunnel-refused", channel: 18, error: "a?[31mb" },
  );
});

Deno.test("the bootstrap line carries reverse tunnels and -N, checked", () => {
  const secret = generateSessionSecret();
  const line = encodeBootstrap({
    op: "new",
    secret,
    program,
    limits,
    killOthers: false,
    reverseTunnels: [
      { kind: "env", name: "SSH_AUTH_SOCK" },
      { kind: "tcp", host: "127.0.0.1", port: 8080 },
      { kind: "unix", path: "/tmp/r.sock" },
    ],
    noTerminal: true,
  });
  const request = decodeBootstrap(line.trim());
  assert.equal(request.op, "new");
  if (request.op !== "new") return;
  assert.deepEqual(request.reverseTunnels, [
    { kind: "env", name: "SSH_AUTH_SOCK" },
    { kind: "tcp", host: "127.0.0.1", port: 8080 },
    { kind: "unix", path: "/tmp/r.sock" },
  ]);
  assert.equal(request.noTerminal, true);
  // Without them: none, and a terminal.
  const plain = decodeBootstrap(
    encodeBootstrap({ op: "new", secret, program, limits, killOthers: false })
      .trim(),
  );
  assert.ok(plain.op === "new" && plain.reverseTunnels?.length === 0);
  assert.ok(plain.op === "new" && plain.noTerminal === false);
  // --resume: absent means bytes (the line of a client without the option
  // is unchanged), screen travels, anything else is refused.
  assert.ok(plain.op === "new" && plain.resume === "bytes");
  assert.ok(
    !encodeBootstrap({
      op: "new",
      secret,
      program,
      limits,
      killOthers: false,
      resume: "bytes",
    }).includes("resume"),
  );
  const screen = decodeBootstrap(
    encodeBootstrap({
      op: "new",
      secret,
      program,
      limits,
      killOthers: false,
      resume: "screen",
    }).trim(),
  );
  assert.ok(screen.op === "new" && screen.resume === "screen");
  assert.throws(
    () => decodeBootstrap(JSON.stringify({ ...JSON.parse(line), resume: "x" })),
    /malformed bootstrap line: resume/,
  );
  const value = JSON.parse(line);
  for (
    const bad of [
      [{ kind: "env", name: "1BAD" }],
      [{ kind: "tcp", host: "h", port: 99999 }],
      [{ kind: "unix", path: "relative.sock" }],
      "not a list",
    ]
  ) {
    assert.throws(
      () => decodeBootstrap(JSON.stringify({ ...value, reverseTunnels: bad })),
      /malformed bootstrap line: reverse tunnel/,
    );
  }
});
