/**
 * `et host cmd | head`: without a pty, a pipe's reader that leaves on
 * purpose ends the remote command as under ssh (its output there is
 * closed, so it dies of SIGPIPE), rather than leaving a detached session
 * that runs on for days. Each case runs the client in a real shell
 * pipeline and checks the reader got exactly what it asked for, the
 * client's exit status is the command's (141 = SIGPIPE), nothing was said
 * on stderr, and no session is left. One case runs through a path cut
 * from before the first handshake on, so that `output-closed` and the
 * end of the session cross reconnects.
 */

import assert from "node:assert/strict";
import { chaos, FaultProxy } from "../helpers/fault_proxy.ts";
import { parseSessionList, runToEnd } from "./_client.ts";
import { E2E_TEST, withWorld } from "./_world.ts";

for (
  const { output, program, redirect, bytes, faults } of [
    // et's own stderr goes where the test can see it: a file, or into the
    // pipe, where any line would spoil the reader's bytes.
    {
      output: "stdout",
      program: "yes",
      redirect: "2>$ERR",
      bytes: 100_000,
      faults: false,
    },
    {
      output: "stderr",
      program: "yes >&2",
      redirect: "2>&1 >/dev/null",
      bytes: 100_000,
      faults: false,
    },
    // A slow writer (~100 lines a second): the stream and the reader's
    // leaving span several cuts.
    {
      output: "stdout",
      program: "while :; do echo y; sleep 0.01; done",
      redirect: "2>$ERR",
      bytes: 200,
      faults: true,
    },
  ]
) {
  Deno.test({
    ...E2E_TEST,
    name: `--no-pty: the reader of ${output} leaves (| head)${
      faults ? ", connections cut from before the first handshake" : ""
    }: the command ends by SIGPIPE, the client exits 141, no session is left`,
    fn: () =>
      withWorld({ privateRuntime: true }, async (world) => {
        const dir = world.dir;
        const proxy = faults
          ? await FaultProxy.start({ targetPort: world.daemonPort })
          : null;
        let firstHandshakeCut = false;
        // The first connection dies in its handshake; random cuts follow.
        proxy?.setTap((up) => {
          if (!up) return;
          proxy.setTap(null);
          queueMicrotask(() => firstHandshakeCut = proxy.cut() > 0);
        });
        const stopChaos = proxy
          ? chaos(proxy, { minMs: 150, maxMs: 400, kinds: ["cut"] })
          : () => Promise.resolve();
        const pipeline = new Deno.Command("bash", {
          args: [
            "-c",
            `ERR=${dir}/err; "$@" ${redirect} | head -c ${bytes} > ${dir}/got; ` +
            `echo "\${PIPESTATUS[0]}"`,
            "bash",
            ...world.client(
              ["--no-pty"],
              proxy ? { port: proxy.port } : {},
            ),
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
        await stopChaos();
        await proxy?.close();
        const err = await Deno.readTextFile(`${dir}/err`).catch(() => "");
        assert.ok(ended, `the pipeline did not end in 30 s; stderr: ${err}`);
        const code = new TextDecoder().decode(ended.stdout).trim();
        assert.equal(code, "141", `the client's exit status; stderr: ${err}`);
        assert.equal(err, "", "nothing said on stderr");
        const got = await Deno.readTextFile(`${dir}/got`);
        assert.equal(got, "y\n".repeat(bytes / 2), "the reader's bytes");
        if (proxy) {
          assert.ok(firstHandshakeCut, "the first handshake was cut");
          assert.ok(proxy.stats.accepted >= 2, "the client reconnected");
          console.log(
            `${proxy.stats.cuts} pairs cut, ${proxy.stats.accepted} connections`,
          );
        }
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
