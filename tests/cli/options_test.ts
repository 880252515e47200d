/**
 * The client's command line: ET's flag names, hints for unknown options
 * (read from the option table), the keepalive's scaling, `--ssh-option`
 * checks, and what `et` prints and returns for bad usage (run for real).
 */

import assert from "node:assert/strict";
import { CLIENT_OPTIONS, SERVER_OPTIONS } from "../../src/cli/main.ts";
import {
  closestOption,
  editDistance,
  usageMessage,
} from "../../src/cli/suggest.ts";
import { checkSshOption, parseKeepalive } from "../../src/cli/units.ts";
import { CLIENT_HELP, SERVER_HELP } from "../../src/cli/help.ts";
import { ET } from "../e2e/_world.ts";

Deno.test("options: ET's flag names are in the client's table", () => {
  const expected: [string, string | undefined][] = [
    ["username", "u"],
    ["port", "p"],
    ["ssh-option", undefined],
    ["keepalive", "k"],
    ["logdir", "l"],
    ["logtostdout", undefined],
    ["silent", undefined],
    ["serverfifo", undefined],
    ["terminal-path", undefined],
    ["help", "h"],
    ["version", undefined],
  ];
  for (const [name, short] of expected) {
    assert.ok(CLIENT_OPTIONS[name], `--${name}`);
    assert.equal(CLIENT_OPTIONS[name].short, short, `--${name}'s letter`);
  }
  assert.equal(CLIENT_OPTIONS["ssh-option"].multiple, true);
  assert.equal(SERVER_OPTIONS.bind.multiple, true);
  for (const name of Object.keys(CLIENT_OPTIONS)) {
    assert.ok(CLIENT_HELP.includes(`--${name}`), `--${name} in the help`);
  }
  for (const name of Object.keys(SERVER_OPTIONS)) {
    assert.ok(SERVER_HELP.includes(`--${name}`), `--${name} in server help`);
  }
});

Deno.test("options: the help groups options like ssh's manual, an example each", () => {
  const groups = [
    "Connection:",
    "Session:",
    "Forwarding",
    "Escapes",
    "Logging:",
  ];
  let at = 0;
  for (const group of groups) {
    const start = CLIENT_HELP.indexOf(`\n${group}`, at);
    assert.ok(start > at, `group ${group} in order`);
    const end = CLIENT_HELP.indexOf("\n\n", start + 2);
    assert.match(
      CLIENT_HELP.slice(start, end),
      /\n {2}e\.g\. et /,
      `${group} example`,
    );
    at = start;
  }
  // The forwarding and jumphost lines the other features fill in.
  for (
    const flag of [
      "-t, --tunnel",
      "-r, --reversetunnel",
      "-N, --no-terminal",
      "-f, --forward-ssh-agent",
      "--ssh-socket",
      "--jumphost",
      "--jport",
    ]
  ) {
    assert.ok(CLIENT_HELP.includes(flag), flag);
  }
});

Deno.test("options: the closest name by edit distance, or none", () => {
  assert.equal(editDistance("tunel", "tunnel"), 1);
  assert.equal(editDistance("ab", "ba"), 1); // a swap is one edit
  assert.equal(editDistance("", "abc"), 3);
  const names = [...Object.keys(CLIENT_OPTIONS), "tunnel", "reversetunnel"];
  assert.equal(closestOption("--tunel", names), "--tunnel");
  assert.equal(closestOption("--reversetunel", names), "--reversetunnel");
  assert.equal(closestOption("--keepalve", names), "--keepalive");
  assert.equal(closestOption("--usernmae", names), "--username");
  assert.equal(closestOption("--slient", names), "--silent");
  assert.equal(closestOption("--ssh-opt", names), "--ssh-option"); // a prefix
  assert.equal(closestOption("--PORT", names), "--port");
  assert.equal(closestOption("--logdri=x", names), "--logdir");
  assert.equal(closestOption("--zzzzzz", names), null);
  assert.equal(closestOption("--x", names), null);
});

Deno.test("options: hints read the table, so added options are hinted", () => {
  const table = { ...CLIENT_OPTIONS, frobnicate: { type: "string" as const } };
  assert.equal(
    usageMessage("Unknown option '--frobnicat'. To specify …", table),
    "unknown option '--frobnicat'; did you mean '--frobnicate'? (see et --help)",
  );
  assert.equal(
    usageMessage("Unknown option '--frobnicat'. To specify …", CLIENT_OPTIONS),
    "unknown option '--frobnicat' (see et --help)",
  );
  // The options other modules added are in the table, so hinted too.
  assert.equal(
    usageMessage("Unknown option '--tunel'. To specify …", CLIENT_OPTIONS),
    "unknown option '--tunel'; did you mean '--tunnel'? (see et --help)",
  );
  assert.equal(
    usageMessage("Unknown option '-z'", CLIENT_OPTIONS),
    "unknown option '-z' (see et --help)",
  );
  assert.equal(
    usageMessage(
      "Option '-p, --port <value>' argument missing",
      CLIENT_OPTIONS,
    ),
    "option '-p, --port <value>' needs a value",
  );
});

Deno.test("options: -k scales the dead-after with the keepalive", () => {
  assert.deepEqual(parseKeepalive("5"), {
    keepaliveMs: 5000,
    deadAfterMs: 30000,
  });
  assert.deepEqual(parseKeepalive("30s"), {
    keepaliveMs: 30000,
    deadAfterMs: 180000,
  });
  // Shorter keepalives never make the dead-after shorter than the default.
  assert.deepEqual(parseKeepalive("500ms"), {
    keepaliveMs: 500,
    deadAfterMs: 6000,
  });
  assert.throws(() => parseKeepalive("0"), /out of range \(0.5s to 600s\)/);
  assert.throws(() => parseKeepalive("601"), /out of range/);
  assert.throws(() => parseKeepalive("five"), /invalid --keepalive 'five'/);
});

Deno.test("options: --ssh-option takes one Key=value, nothing ssh reads as more", () => {
  assert.equal(checkSshOption("SetEnv=FOO=bar"), "SetEnv=FOO=bar");
  assert.equal(checkSshOption("ConnectTimeout 5"), "ConnectTimeout 5");
  for (
    const bad of ["", "-oFoo=1", "=x", "Foo", "Foo=", "Foo=1\nBar=2", "1Foo=2"]
  ) {
    assert.throws(
      () => checkSshOption(bad),
      /^Error: invalid --ssh-option/,
      JSON.stringify(bad),
    );
  }
});

/** Runs et from source with `args`; stdin closed. */
async function et(args: string[], env?: Record<string, string>) {
  const out = await new Deno.Command(ET[0], {
    args: [...ET.slice(1), ...args],
    stdin: "null",
    env,
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test("options: bad usage is one line on stderr and exit 2, for real", async () => {
  const cases: [string[], string][] = [
    [
      ["--keepalve", "5", "host"],
      "et: unknown option '--keepalve'; did you mean '--keepalive'? (see et --help)\n",
    ],
    [["--zzz", "host"], "et: unknown option '--zzz' (see et --help)\n"],
    [
      ["server", "--bnd", "::"],
      "et: unknown option '--bnd'; did you mean '--bind'? (see et server --help)\n",
    ],
    [
      ["-u", "a", "b@host"],
      "et: give the user either with -u or before the @, not both\n",
    ],
    [
      ["-u", "a b", "host"],
      "et: invalid user name 'a b' (letters, digits, '.', '_', '-')\n",
    ],
    [
      ["-u", "-oProxyCommand=x", "host"],
      "et: option '-u' got a value starting with '-': write it as --username=VALUE\n",
    ],
    [
      ["--username=-oProxyCommand=x", "host"],
      "et: invalid user name '-oProxyCommand=x' (letters, digits, '.', '_', '-')\n",
    ],
    [
      ["--logtostdout", "-l", "/tmp", "host"],
      "et: --logtostdout and a log file (--logdir, --log-file) exclude each other\n",
    ],
    [
      ["-k", "0", "host"],
      "et: --keepalive '0' is out of range (0.5s to 600s)\n",
    ],
    [
      ["--ssh-option=-oX", "host"],
      "et: invalid --ssh-option '-oX' (expected Key=value, e.g. SetEnv=FOO=bar)\n",
    ],
    [
      ["--silent", "--logtostdout", "host"],
      "et: --silent and --logtostdout contradict each other\n",
    ],
    [
      ["-l", "/tmp", "--log-file", "/tmp/x", "host"],
      "et: give either --logdir or --log-file, not both\n",
    ],
    [
      ["host:1:2"],
      "et: malformed destination 'host:1:2' (expected [user@]host[:port]): an IPv6 address with a port needs brackets: [addr]:port\n",
    ],
  ];
  cases.push([
    ["--resume", "pixels", "host"],
    "et: invalid --resume 'pixels' (expected bytes or screen)\n",
  ]);
  cases.push([
    ["--attach", "--resume", "screen", "host"],
    "et: --resume is for a new session (an attached one keeps its own)\n",
  ]);
  cases.push([
    ["--resume", "screen", "--no-pty", "host", "ls"],
    "et: --resume screen needs a pty: not with --no-pty or -N\n",
  ]);
  cases.push([
    ["--ssh-option", "-oX", "host"],
    "et: option '--ssh-option' got a value starting with '-': write it as --ssh-option=VALUE\n",
  ]);
  for (const [args, stderr] of cases) {
    const result = await et(args);
    assert.equal(result.stderr, stderr, args.join(" "));
    assert.equal(result.code, 2, args.join(" "));
    assert.equal(result.stdout, "");
  }
});

Deno.test("options: --serverfifo is accepted with a one-line note", async () => {
  // A bad --ssh makes the run end right after the options are taken.
  const result = await et([
    "--serverfifo",
    "/tmp/etserver.idpasskey.fifo",
    "--ssh",
    "/nonexistent/ssh",
    "--log-file",
    "/dev/null",
    "host",
  ]);
  const lines = result.stderr.trimEnd().split("\n");
  assert.match(
    lines[0],
    /^et: --serverfifo does not apply to this et .*; ignored$/,
  );
  assert.equal(lines[1], "et: ssh command not found: /nonexistent/ssh");
  assert.equal(lines.length, 2);
  assert.equal(result.code, 1);
});
