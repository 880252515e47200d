/**
 * What no-root mode adds to the bootstrap and ready lines: the client's
 * `daemon` choice and `portRange` (a line without them is from a client
 * that can dial only the daemon), and the session's own `port` in the
 * ready report.
 */

import assert from "node:assert/strict";
import {
  type BootstrapRequest,
  decodeBootstrap,
  decodeReady,
  DEFAULT_PORT_RANGE,
  encodeBootstrap,
  encodeReady,
} from "../../src/session/mod.ts";
import { generateSessionSecret } from "../../src/transport/mod.ts";

const base = {
  op: "new" as const,
  secret: generateSessionSecret(),
  program: { pty: true, term: "xterm", cols: 80, rows: 24, env: {} },
  limits: { connectTimeoutMs: 1000, sessionTimeoutMs: 0, maxBacklogBytes: 1 },
  killOthers: false,
};

function decodeNew(line: string) {
  const request = decodeBootstrap(line.trim());
  assert.equal(request.op, "new");
  return request as Extract<BootstrapRequest, { op: "new" }>;
}

Deno.test("bootstrap: daemon and portRange round-trip; absent, a client that dials only the daemon", () => {
  const old = decodeNew(encodeBootstrap(base));
  assert.equal(old.daemon, "only");
  assert.deepEqual(old.portRange, DEFAULT_PORT_RANGE);
  for (const daemon of ["auto", "only", "never"] as const) {
    const line = encodeBootstrap({
      ...base,
      daemon,
      portRange: { first: 60000, last: 60010 },
    });
    assert.deepEqual(JSON.parse(line).portRange, [60000, 60010]);
    const back = decodeNew(line);
    assert.equal(back.daemon, daemon);
    assert.deepEqual(back.portRange, { first: 60000, last: 60010 });
  }
});

Deno.test("bootstrap: a bad daemon or portRange is refused in one line", () => {
  const good = JSON.parse(encodeBootstrap(base));
  const cases: [Record<string, unknown>, string][] = [
    [{ daemon: "sometimes" }, "daemon"],
    [{ daemon: true }, "daemon"],
    [{ portRange: [10, 5] }, "port range"],
    [{ portRange: [0, 5] }, "port range"],
    [{ portRange: [1, 65536] }, "port range"],
    [{ portRange: [1.5, 2] }, "port range"],
    [{ portRange: "2022-2122" }, "port range"],
    [{ portRange: [2022] }, "port range"],
  ];
  for (const [fields, what] of cases) {
    assert.throws(
      () => decodeBootstrap(JSON.stringify({ ...good, ...fields })),
      new RegExp(`^Error: malformed bootstrap line: ${what}$`),
      JSON.stringify(fields),
    );
  }
});

Deno.test("ready: the session's own port is carried; a bad one is garbage", () => {
  const id = "ab".repeat(16);
  assert.deepEqual(decodeReady(encodeReady({ id, detached: 1, port: 2023 })), {
    id,
    detached: 1,
    port: 2023,
  });
  assert.deepEqual(decodeReady(encodeReady({ id, detached: 0 })), {
    id,
    detached: 0,
  });
  for (const port of [0, 65536, "2023", 20.5, null]) {
    assert.throws(
      () => decodeReady(`ET_TERMINAL_READY ${JSON.stringify({ id, port })}`),
      /^Error: the remote et terminal answered garbage$/,
      String(port),
    );
  }
});
