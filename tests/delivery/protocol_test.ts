/**
 * Protocol versions across the ssh bootstrap: the client says which it
 * speaks on the bootstrap line (a line without it is a protocol 1
 * client's), the launcher refuses another version in one line naming both
 * and the side to upgrade, and the client passes that line on as its one
 * error line.
 */

import assert from "node:assert/strict";
import {
  bootstrapProtocol,
  decodeBootstrap,
  decodeRefusal,
  encodeBootstrap,
  encodeRefusal,
  protocolMismatch,
  REFUSED_MARKER,
} from "../../src/session/mod.ts";
import {
  generateSessionSecret,
  PROTOCOL_VERSION,
} from "../../src/transport/mod.ts";
import { startSshd } from "../helpers/sshd.ts";
import { writeScript } from "./_release.ts";

const ET = [
  Deno.execPath(),
  "run",
  "-A",
  new URL("../../main.ts", import.meta.url).pathname,
];

Deno.test("bootstrap lines carry the client's protocol; a line without one is protocol 1's", () => {
  const lines = [
    encodeBootstrap({ op: "list" }),
    encodeBootstrap({
      op: "attach",
      target: "",
      passkey: new Uint8Array(32),
      cols: 80,
      rows: 24,
    }),
    encodeBootstrap({
      op: "new",
      secret: generateSessionSecret(),
      program: { pty: true, term: "xterm", cols: 80, rows: 24, env: {} },
      limits: {
        connectTimeoutMs: 1000,
        sessionTimeoutMs: 0,
        maxBacklogBytes: 1024,
      },
      killOthers: false,
    }),
  ];
  for (const line of lines) {
    assert.equal(JSON.parse(line).protocol, PROTOCOL_VERSION);
    assert.equal(bootstrapProtocol(line.trim()), PROTOCOL_VERSION);
    decodeBootstrap(line.trim()); // the field is tolerated
  }
  assert.equal(bootstrapProtocol('{"op":"list"}'), 1);
  assert.deepEqual(decodeBootstrap('{"op":"list"}'), { op: "list" });
  // Another version's line may be shaped otherwise: its version is still read.
  assert.equal(bootstrapProtocol('{"op":"frobnicate","protocol":7}'), 7);
  for (const bad of ['"protocol":"2"', '"protocol":0', '"protocol":1.5']) {
    assert.throws(
      () => bootstrapProtocol(`{"op":"list",${bad}}`),
      /^Error: malformed bootstrap line: protocol$/,
    );
  }
  assert.throws(() => bootstrapProtocol("nope"), /not JSON/);
});

Deno.test("a protocol mismatch is one line naming both versions and the side to upgrade", () => {
  assert.equal(protocolMismatch(1, 1), null);
  assert.equal(
    protocolMismatch(1, 2),
    "this host's et speaks protocol 2, your client speaks 1: upgrade the client (et --version)",
  );
  assert.equal(
    protocolMismatch(3, 2),
    "this host's et speaks protocol 2, your client speaks 3: upgrade et on this host (et --version)",
  );
  const line = encodeRefusal("two\nlines");
  assert.equal(line, `${REFUSED_MARKER} two lines`);
  assert.equal(decodeRefusal(`  ${line}\r`), "two lines");
  assert.equal(decodeRefusal("ET_TERMINAL_READY {}"), null);
  assert.equal(decodeRefusal("motd: ET_TERMINAL_REFUSED x"), null);
  assert.equal(decodeRefusal(`${REFUSED_MARKER} a\x1b[2Jb`), "a?[2Jb");
});

async function launcher(line: string, env: Record<string, string> = {}) {
  const child = new Deno.Command(ET[0], {
    args: [...ET.slice(1), "terminal"],
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(line));
  await writer.close();
  const output = await child.output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
}

Deno.test("the launcher refuses another protocol before anything else, and serves a line without one", async () => {
  const newer = PROTOCOL_VERSION + 1;
  let run = await launcher(
    `{"op":"some-future-op","protocol":${newer}}\n`,
  );
  assert.equal(run.code, 1);
  assert.equal(run.stderr, "");
  assert.equal(
    run.stdout,
    `\n${REFUSED_MARKER} this host's et speaks protocol ${PROTOCOL_VERSION}, your client speaks ${newer}: upgrade et on this host (et --version)\n`,
  );

  const runtime = await Deno.makeTempDir({ prefix: "et-protocol-test-" });
  try {
    run = await launcher('{"op":"list"}\n', { ET_RUNTIME_DIR: runtime });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /\nET_TERMINAL_READY \{"sessions":\[\]\}\n$/);
  } finally {
    await Deno.remove(runtime, { recursive: true });
  }
});

Deno.test({
  name:
    "a newer launcher's refusal reaches the user as the client's one error line",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const sshd = await startSshd();
    const dir = await Deno.makeTempDir({ prefix: "et-protocol-test-" });
    try {
      // The launcher of a future et speaking protocol 2: it reads the
      // bootstrap line and refuses this client, as ours would.
      const fake = `${dir}/et-protocol-2`;
      await writeScript(
        fake,
        `[ "$1" = terminal ] || exit 3
IFS= read -r line
case "$line" in
*'"protocol":${PROTOCOL_VERSION}'*)
  printf '\\nET_TERMINAL_REFUSED %s\\n' "this host's et speaks protocol 2, your client speaks ${PROTOCOL_VERSION}: upgrade the client (et --version)" ;;
*) echo "no protocol on the bootstrap line" >&2 ;;
esac
exit 1
`,
      );
      await Deno.chmod(dir, 0o755);
      const output = await new Deno.Command(ET[0], {
        args: [
          ...ET.slice(1),
          "--ssh",
          sshd.sshCommand,
          "--terminal-path",
          fake,
          "--log-file",
          `${dir}/client.log`,
          "--list",
          sshd.hostAlias,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(output.stderr);
      assert.equal(output.code, 1, stderr);
      assert.equal(
        stderr,
        `et: ${sshd.hostAlias}: this host's et speaks protocol 2, your client speaks ${PROTOCOL_VERSION}: upgrade the client (et --version)\n`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
      await sshd.stop();
    }
  },
});
