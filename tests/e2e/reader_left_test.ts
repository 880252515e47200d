/**
 * `et host cmd | head`: without a pty, a pipe's reader that leaves on
 * purpose ends the remote command as under ssh (its output there is
 * closed, so it dies of SIGPIPE), rather than leaving a detached session
 * that runs on for days. Each case runs the client in a real shell
 * pipeline and checks the reader got exactly what it asked for, the
 * client's exit status is the command's (141 = SIGPIPE), nothing was said
 * on stderr, and no session is left.
 */

import assert from "node:assert/strict";
import { parseSessionList, runToEnd } from "./_client.ts";
import { E2E_TEST, withWorld } from "./_world.ts";

for (
  const { output, program, redirect } of [
    // et's own stderr goes where the test can see it: a file, or into the
    // pipe, where any line would spoil the reader's bytes.
    { output: "stdout", program: "yes", redirect: "2>$ERR" },
    { output: "stderr", program: "yes >&2", redirect: "2>&1 >/dev/null" },
  ]
) {
  Deno.test({
    ...E2E_TEST,
    name:
      `--no-pty: the reader of ${output} leaves (| head): the command ends by SIGPIPE, the client exits 141, no session is left`,
    fn: () =>
      withWorld({ privateRuntime: true }, async (world) => {
        const dir = world.dir;
        const pipeline = new Deno.Command("bash", {
          args: [
            "-c",
            `ERR=${dir}/err; "$@" ${redirect} | head -c 100000 > ${dir}/got; ` +
            `echo "\${PIPESTATUS[0]}"`,
            "bash",
            ...world.client(["--no-pty"]),
            program,
          ],
          stdin: "null",
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
        const ended = await Promise.race([
          pipeline.output(),
          new Promise<null>((resolve) => setTimeout(resolve, 30_000, null)),
        ]);
        if (ended === null) pipeline.kill("SIGKILL");
        const err = await Deno.readTextFile(`${dir}/err`).catch(() => "");
        assert.ok(ended, `the pipeline did not end in 30 s; stderr: ${err}`);
        const code = new TextDecoder().decode(ended.stdout).trim();
        assert.equal(code, "141", `the client's exit status; stderr: ${err}`);
        assert.equal(err, "", "nothing said on stderr");
        const got = await Deno.readTextFile(`${dir}/got`);
        assert.equal(got, "y\n".repeat(50_000), "the reader's bytes");
        const listed = await runToEnd(world.client(["--list"]));
        assert.equal(listed.code, 0, listed.stderr);
        assert.deepEqual(
          parseSessionList(listed.stdout),
          [],
          `no session left: ${listed.stdout}`,
        );
      }),
  });
}
