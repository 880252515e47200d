import assert from "node:assert/strict";
import { forwardingOptions } from "../../src/cli/forwarding.ts";

const none = {
  command: false,
  attach: false,
  list: false,
  authSock: undefined,
};

Deno.test("-f forwards SSH_AUTH_SOCK, or --ssh-socket when given", () => {
  assert.equal(
    forwardingOptions({ "forward-ssh-agent": true }, {
      ...none,
      authSock: "/tmp/agent.1",
    }).agentSocket,
    "/tmp/agent.1",
  );
  assert.equal(
    forwardingOptions({
      "forward-ssh-agent": true,
      "ssh-socket": "/run/other.sock",
    }, { ...none, authSock: "/tmp/agent.1" }).agentSocket,
    "/run/other.sock",
  );
  assert.equal(forwardingOptions({}, none).agentSocket, undefined);
});

Deno.test("forwarding contradictions are refused in one line", () => {
  const cases: Array<[Record<string, unknown>, Partial<typeof none>, RegExp]> =
    [
      [{ "forward-ssh-agent": true }, {}, /SSH_AUTH_SOCK is unset/],
      [{ "ssh-socket": "/a" }, {}, /--ssh-socket goes with -f/],
      [
        { "forward-ssh-agent": true, "ssh-socket": "rel" },
        {},
        /must be an absolute path/,
      ],
      [{ "no-terminal": true }, { command: true }, /runs no command/],
      [{ "no-terminal": true }, { attach: true }, /not with --attach/],
      [{ reversetunnel: ["1:2"] }, { attach: true }, /-r and -f .*--attach/],
      [{ tunnel: ["1:2", "3"] }, {}, /-t '3': expected SRC:DST/],
    ];
  for (const [values, context, message] of cases) {
    assert.throws(
      () => forwardingOptions(values, { ...none, ...context }),
      message,
    );
  }
});

Deno.test("-t and -r add up in order, -N is kept", () => {
  const result = forwardingOptions({
    tunnel: ["8000:80", "9000-9001:9100-9101"],
    reversetunnel: ["X:/tmp/s"],
    "no-terminal": true,
  }, none);
  assert.deepEqual(result.tunnels.map((t) => t.direction), [
    "forward",
    "forward",
    "forward",
    "reverse",
  ]);
  assert.equal(result.noTerminal, true);
});
