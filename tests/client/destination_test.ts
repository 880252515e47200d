/**
 * Every host form `et` takes (names, IPv4, IPv6 bare and in brackets, with
 * and without user and port) and one clear message for each malformed one.
 */

import assert from "node:assert/strict";
import {
  hostPort,
  looksLikeIpv6,
  parseDestination,
  sshTarget,
} from "../../src/client/destination.ts";

Deno.test("destination: every accepted form", () => {
  const cases: [string, { user?: string; host: string; port?: number }][] = [
    ["host", { host: "host" }],
    ["my-host.example.com", { host: "my-host.example.com" }],
    ["user@host", { user: "user", host: "host" }],
    ["host:2022", { host: "host", port: 2022 }],
    ["user@host:2022", { user: "user", host: "host", port: 2022 }],
    ["10.0.0.1:7", { host: "10.0.0.1", port: 7 }],
    ["::1", { host: "::1" }],
    ["2001:db8::7", { host: "2001:db8::7" }],
    ["fe80::1%eth0", { host: "fe80::1%eth0" }],
    ["::ffff:10.0.0.1", { host: "::ffff:10.0.0.1" }],
    ["[::1]", { host: "::1" }],
    ["[::1]:2022", { host: "::1", port: 2022 }],
    ["user@::1", { user: "user", host: "::1" }],
    ["user@[::1]:2022", { user: "user", host: "::1", port: 2022 }],
    ["first.last@[2001:db8::1]", { user: "first.last", host: "2001:db8::1" }],
    ["machine$@h", { user: "machine$", host: "h" }],
    // "cafe" is hex, but one colon is host:port, never an address.
    ["cafe:22", { host: "cafe", port: 22 }],
  ];
  for (const [text, expected] of cases) {
    assert.deepEqual(
      parseDestination(text),
      { user: undefined, port: undefined, ...expected },
      text,
    );
  }
});

Deno.test("destination: each malformed form gets its own one-line reason", () => {
  const cases: [string, RegExp][] = [
    ["", /: empty$/],
    ["a b", /: spaces$/],
    ["-oProxyCommand=x", /: starts with '-'$/],
    ["@host", /: empty user$/],
    ["us er@h", /: spaces$/],
    ["u/x@h", /: bad user name 'u\/x'$/],
    ["[::1", /: '\[' without '\]'$/],
    ["[::1]x", /: 'x' after '\]'$/],
    ["[]:22", /: '\[\]' is not an IPv6 address$/],
    ["[host]:22", /: '\[host\]' is not an IPv6 address$/],
    ["[-1::]", /: '\[-1::\]' is not an IPv6 address$/],
    ["host:22:33", /needs brackets: \[addr\]:port$/],
    ["user@:22", /: no host$/],
    ["h!st", /: bad character in host 'h!st'$/],
    ["u@-h", /: host starts with '-'$/],
  ];
  for (const [text, reason] of cases) {
    assert.throws(() => parseDestination(text), (error: Error) => {
      assert.ok(!error.message.includes("\n"), "one line");
      assert.ok(
        error.message.startsWith(
          `malformed destination '${text}' (expected [user@]host[:port])`,
        ),
        error.message,
      );
      assert.match(error.message, reason, text);
      return true;
    }, text);
  }
  for (const text of ["[::1]:", "[::1]:0", "[::1]:65536", "h:port", "h:"]) {
    assert.throws(
      () => parseDestination(text),
      /^Error: invalid port '[^']*' \(expected 1-65535\)$/,
      text,
    );
  }
});

Deno.test("destination: ssh gets IPv6 bare, messages show it in brackets", () => {
  assert.equal(sshTarget(parseDestination("me@[::1]:2022")), "me@::1");
  assert.equal(sshTarget(parseDestination("[::1]")), "::1");
  assert.equal(hostPort("::1", 2022), "[::1]:2022");
  assert.equal(hostPort("10.0.0.1", 2022), "10.0.0.1:2022");
  assert.ok(looksLikeIpv6("::"));
  assert.ok(!looksLikeIpv6("host"));
  assert.ok(!looksLikeIpv6("cafe:1"));
});
