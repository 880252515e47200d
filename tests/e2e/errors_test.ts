/**
 * Bad input gets one clear line on stderr and a non-zero exit — never a
 * stack trace.
 */
import assert from "node:assert/strict";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import { sleep } from "./_client.ts";
import { E2E_TEST, ET, withWorld } from "./_world.ts";

async function run(argv: string[]) {
  const output = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  return {
    code: output.code,
    stderr,
    etLines: stderr.split("\n").filter((l) => l.startsWith("et")),
  };
}

function assertOneLine(
  result: { stderr: string; etLines: string[] },
  pattern: RegExp,
) {
  assert.equal(result.etLines.length, 1, `stderr: ${result.stderr}`);
  assert.match(result.etLines[0], pattern);
  assert.doesNotMatch(result.stderr, /^\s+at /m, "no stack trace");
  assert.doesNotMatch(result.stderr, /error: Uncaught/);
}

Deno.test("unknown option, malformed destination, bad port: usage errors exit 2", async () => {
  let result = await run([...ET, "--frobnicate", "host"]);
  assert.equal(result.code, 2);
  assertOneLine(result, /^et: unknown option '--frobnicate'/);

  result = await run([...ET, "user@host:notaport"]);
  assert.equal(result.code, 2);
  assertOneLine(result, /^et: invalid port 'notaport'/);

  result = await run([...ET, "us er@host"]);
  assert.equal(result.code, 2);
  assertOneLine(result, /^et: malformed destination/);

  result = await run([...ET]);
  assert.equal(result.code, 2);
  assertOneLine(result, /^et: missing destination/);

  result = await run([...ET, "server", "--port", "70000"]);
  assert.equal(result.code, 2);
  assertOneLine(result, /^et: invalid port '70000'/);
});

Deno.test("--help answers and exits 0", async () => {
  const output = await new Deno.Command(ET[0], {
    args: [...ET.slice(1), "--help"],
    stdout: "piped",
  }).output();
  assert.equal(output.code, 0);
  const text = new TextDecoder().decode(output.stdout);
  for (
    const word of [
      "--ssh",
      "--terminal-path",
      "-c, --command",
      "et server",
      "Exit status",
    ]
  ) {
    assert.ok(text.includes(word), `help mentions ${word}`);
  }
});

Deno.test({
  ...E2E_TEST,
  name: "runtime failures: one clear line each",
  fn: () =>
    // A private runtime dir: the user's sessions left by other runs would
    // add a "detached sessions" line before the ones asserted here.
    withWorld({ privateRuntime: true }, async (world) => {
      // Nothing listens on the daemon port, and after the bootstrap's login
      // ssh is refused too: et tries TCP (a status line after 1 s names
      // why), carries on over ssh (one line says so), then gives up with
      // one line at the deadline.
      const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const deadPort = (closed.addr as Deno.NetAddr).port;
      closed.close();
      const sshProxy = await FaultProxy.start({
        targetPort: world.sshd.port,
      });
      const began = performance.now();
      const running = run(
        world.client([
          "--connect-timeout",
          "3s",
          "--ssh",
          `${world.sshd.sshCommand} -p ${sshProxy.port}`,
        ], { port: deadPort }),
      );
      // The bootstrap's connection is through; later logins are reset.
      while (sshProxy.stats.accepted < 1) await sleep(10);
      sshProxy.setRefuse(true);
      let result = await running;
      const took = performance.now() - began;
      await sshProxy.close();
      assert.equal(result.code, 1);
      assert.ok(took > 3000, `gave up after ${took} ms, before the deadline`);
      assert.match(
        result.etLines[0],
        /^et: connecting to 127\.0\.0\.1:\d+… \(connection refused\)$/,
      );
      assert.match(
        result.etLines[1],
        /^et: port \d+ on et-test is not reachable; carrying the session over ssh instead$/,
      );
      assertOneLine(
        { ...result, etLines: result.etLines.slice(2) },
        /^et: cannot connect to the session over ssh \(et relay\) at ssh et-test within 3s: ssh to et-test failed: .+$/,
      );

      // ssh cannot log in.
      result = await run(world.client([], { user: "no-such-user-et" }));
      assert.equal(result.code, 1);
      assertOneLine(result, /^et: ssh to no-such-user-et@et-test failed/);
      assert.match(
        result.stderr,
        /Permission denied|Invalid user|denied/i,
        "ssh's own message shows",
      );

      // No et on the remote.
      const argv = world.client();
      argv[argv.indexOf("--terminal-path") + 1] = "/nonexistent/et";
      result = await run(argv);
      assert.equal(result.code, 1);
      assertOneLine(
        result,
        /^et: '\/nonexistent\/et' was not found on et-test/,
      );

      // ssh itself missing.
      result = await run([...ET, "--ssh", "/nonexistent/ssh", "host"]);
      assert.equal(result.code, 1);
      assertOneLine(result, /^et: ssh command not found/);
    }),
});
