/**
 * A client whose terminal goes away under it (the pty's master closed: a
 * hung-up terminal, every write EIO) must not linger holding the session:
 * it detaches, says so in one line on stderr, exits 74, and the session
 * lives on. A new client that attaches gets every byte the first one did
 * not show, byte-exact: what was still on its way, and what the first
 * client had received but could no longer write.
 *
 * The client runs in a session of its own (setsid), as under nohup or a
 * terminal it is not the controlling process of: no SIGHUP reaches it, so
 * only its failed writes can tell it the terminal is gone. (With SIGHUP it
 * leaves on the signal: lifecycle_test.ts.)
 */

import assert from "node:assert/strict";
import { PtyProcess } from "../helpers/pty_process.ts";
import { patternBytes } from "../helpers/session_pair.ts";
import {
  parseSessionList,
  PipedClient,
  runToEnd,
  sha256,
  waitUntil,
} from "./_client.ts";
import { E2E_TEST, ROOT, withWorld } from "./_world.ts";

Deno.test({
  ...E2E_TEST,
  name:
    "a client whose terminal is gone (master closed, EIO) detaches and exits 74 with one line; --list shows it detached; --attach gets the output it missed byte-exact",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const dir = world.dir;
      const before = patternBytes(32 * 1024, 7);
      // More than the channel window, the connected lead and one chunk:
      // some of it sits in the first client unwritten, some in the
      // transport unacknowledged, the rest in the session's backlog.
      const missed = patternBytes(3 * 1024 * 1024, 11);
      await Deno.writeFile(`${dir}/before.bin`, before);
      await Deno.writeFile(`${dir}/missed.bin`, missed);
      // Raw: the remote pty passes every byte as is (no \n -> \r\n).
      const script = [
        "stty raw -echo",
        `printf '<<A-''START>>'; cat ${dir}/before.bin; printf '<<A-''END>>'`,
        `while [ ! -e ${dir}/go ]; do sleep 0.05; done`,
        `cat ${dir}/missed.bin; printf '<<B-''END>>'`,
        `while [ ! -e ${dir}/finish ]; do sleep 0.05; done`,
        "exit 7",
      ].join("\n");
      await Deno.writeTextFile(`${dir}/program.sh`, script);

      const et = world.client(["--pty", "-c", `sh ${dir}/program.sh`]);
      // setsid -w: et leads no session on this pty, so its hangup sends et
      // no SIGHUP; sh records et's exit status for us.
      const wrapper = `echo $$ > ${dir}/wrapper.pid; "$@" 2> ${dir}/err; ` +
        `echo $? > ${dir}/code`;
      const first = PtyProcess.spawn([
        "setsid",
        "-w",
        "sh",
        "-c",
        wrapper,
        "sh",
        ...et,
      ]);
      let attached: PipedClient | undefined;
      let wrapperPid = 0;
      try {
        const start = await first.waitFor("<<A-START>>", { timeoutMs: 30_000 });
        const end = await first.waitFor("<<A-END>>", { from: start.end });
        assert.equal(
          first.sha256(start.end, end.start),
          sha256(before),
          "the first client showed the output before the hangup exactly",
        );
        wrapperPid = Number(await Deno.readTextFile(`${dir}/wrapper.pid`));

        await first.close(); // the master closes: the terminal is gone
        const hungUp = performance.now();
        await Deno.writeTextFile(`${dir}/go`, "");

        let code = "";
        await waitUntil(
          async () =>
            (code = await Deno.readTextFile(`${dir}/code`).catch(() => ""))
              .endsWith("\n"),
          20_000,
          () => `the client's exit; stderr: ${readErr(dir)}`,
        );
        const leftMs = performance.now() - hungUp;
        const err = readErr(dir);
        assert.equal(Number(code), 74, `exit status; stderr: ${err}`);
        const lines = err.split("\n").filter((line) => line.trim() !== "");
        assert.equal(lines.length, 1, `one line on stderr: ${err}`);
        const hint = lines[0].match(
          /^et: cannot write to the terminal \(.+\): detached; the session keeps running: et --attach ([0-9a-f]{8}) \S+$/,
        );
        assert.ok(hint, `the line names the resume command: ${err}`);
        console.log(`client left ${leftMs.toFixed(0)} ms after the hangup`);
        const listed = await runToEnd(world.client(["--list"]));
        assert.equal(listed.code, 0, listed.stderr);
        assert.deepEqual(
          parseSessionList(listed.stdout).map((s) => [s.id8, s.state]),
          [[hint[1], "detached"]],
          `--list finds it detached: ${listed.stdout}`,
        );

        attached = new PipedClient(world.client(["--attach", hint[1]]), true);
        await attached.waitFor("<<B-END>>", 30_000);
        await Deno.writeTextFile(`${dir}/finish`, "");
        assert.equal(await attached.exit(20_000), 7, attached.stderr);
        const got = attached.bytes();
        const expected = new Uint8Array([
          ...missed,
          ...new TextEncoder().encode("<<B-END>>"),
        ]);
        assert.equal(got.length, expected.length, "byte count");
        assert.equal(
          sha256(got),
          sha256(expected),
          "the attached client got exactly the output the first one missed",
        );
      } finally {
        await first.close();
        await attached?.close();
        if (wrapperPid > 0) {
          try {
            Deno.kill(-wrapperPid, "SIGKILL");
          } catch { /* gone */ }
        }
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "a stdout that says EAGAIN when full (a non-blocking pipe, a slow reader) is waited out, not taken for gone: exit 0, bytes exact",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const data = patternBytes(2 * 1024 * 1024, 5);
      await Deno.writeFile(`${world.dir}/data.bin`, data);
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          `${ROOT}/tests/e2e/_nonblocking_stdout.ts`,
          ...world.client(["--no-pty"]),
          `cat ${world.dir}/data.bin`,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const stderr = new Response(child.stderr).text();
      try {
        // Nobody reads for a while: the pipe fills and every write says
        // EAGAIN (before: the client took it for a gone terminal).
        await new Promise((resolve) => setTimeout(resolve, 1500));
        const got = new Uint8Array(
          await new Response(child.stdout).arrayBuffer(),
        );
        const status = await child.status;
        assert.equal(status.code, 0, await stderr);
        assert.equal(got.length, data.length, "byte count");
        assert.equal(sha256(got), sha256(data));
      } finally {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
        await child.status;
      }
    }),
});

/** The client's stderr so far ("" before it exists). */
function readErr(dir: string): string {
  try {
    return Deno.readTextFileSync(`${dir}/err`);
  } catch {
    return "";
  }
}
