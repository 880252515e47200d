/**
 * `--jumphost` on the client's side: the hops as typed, the `-J` that
 * sends ssh through them, the `jump` bootstrap line (no secret in it),
 * and bad input refused in one line with exit 2.
 */

import assert from "node:assert/strict";
import { parseJumpHosts, sshJumpOptions } from "../../src/client/jump.ts";
import { decodeBootstrap, encodeBootstrap } from "../../src/session/mod.ts";
import { runToEnd } from "../e2e/_client.ts";
import { ET } from "../e2e/_world.ts";

Deno.test("parseJumpHosts: one hop or a chain, each with its et port or --jport's", () => {
  assert.deepEqual(parseJumpHosts("bastion", 2022), [
    {
      destination: { user: undefined, host: "bastion", port: undefined },
      port: 2022,
    },
  ]);
  assert.deepEqual(parseJumpHosts("ops@gw:3022,inner", 4022), [
    { destination: { user: "ops", host: "gw", port: 3022 }, port: 3022 },
    {
      destination: { user: undefined, host: "inner", port: undefined },
      port: 4022,
    },
  ]);
  assert.deepEqual(parseJumpHosts("[::1]:2023", 2022)[0].port, 2023);
  for (
    const [text, message] of [
      ["", /empty hop/],
      ["a,,b", /empty hop/],
      ["a,-oProxyCommand=x", /malformed hop '-oProxyCommand=x'/],
      ["a:99999", /malformed hop 'a:99999'/],
      ["a b", /malformed hop 'a b'/],
      [Array(9).fill("h").join(","), /at most 8 hops/],
    ] as const
  ) {
    assert.throws(() => parseJumpHosts(text, 2022), message, text);
  }
});

Deno.test("sshJumpOptions: -J through the first hops, user kept, et ports left out, IPv6 bracketed", () => {
  const hops = parseJumpHosts("ops@gw:3022,[fd00::5],inner", 2022);
  assert.deepEqual(sshJumpOptions(hops, 0), []);
  assert.deepEqual(sshJumpOptions(hops, 1), ["-J", "ops@gw"]);
  assert.deepEqual(sshJumpOptions(hops, 3), [
    "-J",
    "ops@gw,[fd00::5],inner",
  ]);
});

Deno.test("bootstrap: the jump line round-trips, carries no secret, and garbage is refused in one line", () => {
  const id = "0123456789abcdef0123456789abcdef";
  const line = encodeBootstrap({
    op: "jump",
    id,
    host: "10.1.2.3",
    port: 2022,
    daemon: "auto",
    portRange: { first: 2022, last: 2030 },
    limits: { connectTimeoutMs: 30_000, sessionTimeoutMs: 0 },
  });
  assert.deepEqual(Object.keys(JSON.parse(line)).sort(), [
    "daemon",
    "host",
    "id",
    "limits",
    "op",
    "port",
    "portRange",
    "protocol",
  ]);
  assert.deepEqual(decodeBootstrap(line.trim()), {
    op: "jump",
    id,
    host: "10.1.2.3",
    port: 2022,
    daemon: "auto",
    portRange: { first: 2022, last: 2030 },
    limits: { connectTimeoutMs: 30_000, sessionTimeoutMs: 0 },
  });
  const good = JSON.parse(line);
  for (
    const [change, message] of [
      [{ id: "xyz" }, /session id/],
      [{ id: undefined }, /session id/],
      [{ host: "-oProxyCommand=x" }, /host/],
      [{ host: "a b" }, /host/],
      [{ host: "" }, /host/],
      [{ port: 0 }, /port/],
      [{ port: "2022" }, /port/],
      [{ daemon: "sometimes" }, /daemon/],
      [{ portRange: [5, 1] }, /port range/],
      [{ limits: { connectTimeoutMs: -1 } }, /connect timeout/],
    ] as const
  ) {
    assert.throws(
      () => decodeBootstrap(JSON.stringify({ ...good, ...change })),
      message,
      JSON.stringify(change),
    );
  }
});

Deno.test("--jumphost and --jport: bad input is one line and exit 2", async () => {
  for (
    const [args, pattern] of [
      [["--jport", "x", "host"], /^et: invalid port 'x'/],
      [["--jumphost", "a,,b", "host"], /^et: --jumphost: empty hop/],
      [["--jumphost", "gw", "--jport", "x", "host"], /^et: invalid port 'x'/],
      [["--jumphost", "us er@gw", "host"], /^et: --jumphost: malformed hop/],
    ] as const
  ) {
    const result = await runToEnd([...ET, ...args]);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    const lines = result.stderr.trim().split("\n");
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0], pattern);
  }
});
