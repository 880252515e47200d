/**
 * Tests of TtyWriter on a real pseudo-terminal, through a child process
 * whose stdout is that terminal.
 */

import assert from "node:assert/strict";
import { Pty } from "../../src/pty/mod.ts";

const CHILD = new URL("./_tty_writer_child.ts", import.meta.url).pathname;

Deno.test({
  name:
    "TtyWriter: a full terminal is 'no room now' even when errno reads back clobbered (the 20-session stall)",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "tty-writer-" });
    const result = `${dir}/outcomes.json`;
    // Nobody reads the child's terminal until it exited: it fills up.
    const pty = Pty.spawn({
      command: Deno.execPath(),
      args: ["run", "-A", "--quiet", CHILD, result],
      cols: 80,
      rows: 24,
    });
    try {
      const status = await pty.exited;
      assert.equal(status.code, 0);
      const outcomes: string[] = JSON.parse(await Deno.readTextFile(result));
      // Full for want of room: EAGAIN, nothing odd.
      assert.match(outcomes[0], /^filled [1-9]\d*, odd null$/);
      // Before the fix the first try threw "write failed: ENOENT (2)": the
      // client's output copy ended there and its session went silent.
      assert.deepEqual(outcomes.slice(1), Array(20).fill("took 0, odd ENOENT"));
    } finally {
      await pty.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
