/**
 * The compiled single binary end to end: it is the client, and over ssh
 * it is `et terminal` and the session process it starts again through
 * `Deno.execPath()`. The daemon is the world's, from source.
 *
 * It needs a compiled binary: `ET_TEST_BINARY=/path/to/et-<os>-<arch>`
 * (e.g. dist/ after `deno task compile`), or `DENORT_BIN` so the test
 * compiles this host's binary itself. Without either it is skipped, with a
 * line saying why.
 */

import assert from "node:assert/strict";
import { hostTarget } from "../../scripts/compile.ts";
import { PipedClient, waitUntil } from "../e2e/_client.ts";
import { ET, startWorld } from "../e2e/_world.ts";
import { ROOT, VERSION_LINE } from "./_release.ts";

const given = Deno.env.get("ET_TEST_BINARY");
const denort = Deno.env.get("DENORT_BIN");
const host = hostTarget();
const runnable = Boolean(given || (denort && host));
if (!runnable) {
  console.log(
    "compiled_test: skipped: no compiled et to test (set ET_TEST_BINARY=" +
      "dist/et-<os>-<arch> after deno task compile, or DENORT_BIN=<Deno's " +
      "runtime, denort> to compile one here)",
  );
}

/** The binary under test: the given one, or this host's, compiled now. */
async function binaryUnderTest(dir: string): Promise<string> {
  if (given) return given.startsWith("/") ? given : `${Deno.cwd()}/${given}`;
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}/scripts/compile.ts`,
      "--target",
      host!.name,
      "--out",
      dir,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
  return `${dir}/et-${host!.name}`;
}

Deno.test({
  name:
    "compiled et: --version, then a session through sshd and et server, the terminal re-executing the binary",
  ignore: !runnable,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "et-compiled-test-" });
    await Deno.chmod(dir, 0o755);
    const binary = await binaryUnderTest(dir);
    const version = await new Deno.Command(binary, {
      args: ["--version"],
      stdout: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(version.stdout).trim(), VERSION_LINE);

    const world = await startWorld({ privateRuntime: true });
    let client: PipedClient | undefined;
    try {
      const argv = world.client();
      assert.deepEqual(argv.slice(0, ET.length), ET);
      const at = argv.indexOf("--terminal-path") + 1;
      argv[at] = argv[at].replace(ET.join(" "), binary);
      assert.ok(argv[at].endsWith(binary), argv[at]);
      client = new PipedClient([binary, ...argv.slice(ET.length)]);
      await client.type("echo MARK-$((6*7))\n");
      await client.waitFor("MARK-42", 30_000);
      // The host process is the binary (the launcher ssh ran stayed on as
      // the host), not deno.
      await waitUntil(
        async () =>
          (await world.sessionProcesses()).some((p) =>
            p.cmdline === `${binary} terminal`
          ),
        10_000,
        async () =>
          `a host process '${binary} terminal'; found ${
            JSON.stringify(await world.sessionProcesses())
          }`,
      );
      await client.type("exit 0\n");
      assert.equal(await client.exit(20_000), 0, client.stderr);
    } finally {
      await client?.close();
      await world.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
