import assert from "node:assert/strict";
import { TmuxTerminal } from "./tmux.ts";

const BASH = ["bash", "--norc", "--noprofile"];

Deno.test("types into bash, reads the screen, resizes, reads the exit status", async () => {
  const term = await TmuxTerminal.start(BASH);
  try {
    await term.type("stty size");
    await term.sendKeys("Enter");
    await term.waitFor(/^30 100$/m);

    await term.type("echo hi");
    await term.sendKeys("Enter");
    const screen = await term.waitFor(/^hi$/m);
    assert.equal(screen.split("\n").length - 1, 30, "one line per row");
    assert.equal(await term.exitStatus(), null);

    await term.resize(80, 24);
    await term.type("stty size");
    await term.sendKeys("Enter");
    await term.waitFor(/^24 80$/m);

    await term.type("exit 3");
    await term.sendKeys("Enter");
    assert.equal(await term.waitExit(), 3);
    assert.equal(await term.exitStatus(), 3);
  } finally {
    await term.kill();
  }
});

Deno.test("C-c reaches the program as SIGINT", async () => {
  const term = await TmuxTerminal.start(BASH);
  try {
    await term.type("sleep 30; echo after");
    await term.sendKeys("Enter");
    await new Promise((resolve) => setTimeout(resolve, 200));
    await term.sendKeys("C-c");
    await term.type("echo interrupted");
    await term.sendKeys("Enter");
    await term.waitFor(/^interrupted$/m);
    assert.doesNotMatch(await term.capture(), /^after$/m);
    assert.equal(await term.exitStatus(), null, "bash survives its own C-c");
  } finally {
    await term.kill();
  }
});

Deno.test("runs argv without a shell, with env, cwd and size options", async () => {
  const cwd = await Deno.makeTempDir();
  const term = await TmuxTerminal.start(
    [
      "sh",
      "-c",
      'printf "%s|%s|%s\\n" "$1" "$ET_TEST" "$(pwd)"; stty size; exit 7',
      "sh",
      "a  b",
    ],
    { cols: 60, rows: 10, env: { ET_TEST: "yes" }, cwd },
  );
  try {
    assert.equal(await term.waitExit(), 7);
    // A program that exits at once still has all its output on the screen.
    const screen = await term.capture();
    assert.match(screen, new RegExp(`^a  b\\|yes\\|${cwd}$`, "m"));
    assert.match(screen, /^10 60$/m);
    assert.equal(screen.split("\n").length - 1, 10);
  } finally {
    await term.kill();
    await Deno.remove(cwd);
  }
});

Deno.test("a program killed by a signal reports 128 + the signal", async () => {
  const term = await TmuxTerminal.start(["sh", "-c", "kill -TERM $$"]);
  try {
    assert.equal(await term.waitExit(), 128 + 15);
  } finally {
    await term.kill();
  }
});

Deno.test("waitFor times out with the last screen in the error", async () => {
  const term = await TmuxTerminal.start([
    "sh",
    "-c",
    "echo visible; exec sleep 30",
  ]);
  try {
    await term.waitFor("visible");
    await assert.rejects(
      term.waitFor("never shown", 300),
      (error: Error) => {
        assert.match(
          error.message,
          /timed out after 300 ms waiting for never shown/,
        );
        assert.match(error.message, /^\|visible *\|$/m);
        return true;
      },
    );
    await assert.rejects(term.waitExit(200), /still running/);
  } finally {
    await term.kill();
    await term.kill(); // idempotent
  }
});
