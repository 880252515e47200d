/**
 * The Windows path of the client's local terminal, run here on a real
 * pseudo-terminal: `LocalTerminal({ os: "windows" })` is what
 * `Deno.build.os === "windows"` selects, and everything it calls
 * (`Deno.stdin.setRaw`, `Deno.consoleSize`, signal listeners) exists on
 * Linux too. Each program runs with FFI denied, so any attempt to open
 * libc on that path would fail it; a control shows the Unix path does need
 * FFI under the same flags.
 */

import assert from "node:assert/strict";
import {
  guardedSignals,
  RESET_MODES,
} from "../../src/client/local_terminal.ts";
import { LINUX_TERMIOS, termiosFields } from "../../src/pty/termios.ts";
import { PtyProcess } from "../helpers/pty_process.ts";

const MODULE = new URL("../../src/client/local_terminal.ts", import.meta.url)
  .href;

/** Prints FFI-DENIED (or FFI-ALLOWED) and READY, waits for a typed line. */
const PROLOGUE = `
import { LocalTerminal } from ${JSON.stringify(MODULE)};
const encoder = new TextEncoder();
const out = (text) => Deno.stdout.writeSync(encoder.encode(text));
let ffi = "FFI-ALLOWED";
try {
  Deno.dlopen("libc.so.6", {});
} catch (error) {
  if (error instanceof Deno.errors.NotCapable) ffi = "FFI-DENIED";
}
const local = new LocalTerminal({ os: "windows" });
out(ffi + " READY\\n");
await Deno.stdin.read(new Uint8Array(64));
`;

async function withWindowsScript(
  body: string,
  test: (proc: PtyProcess, before: Uint8Array) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "et-local-windows-" });
  const script = `${dir}/script.js`;
  await Deno.writeTextFile(script, PROLOGUE + body);
  const proc = PtyProcess.spawn([
    Deno.execPath(),
    "run",
    "-A",
    "--deny-ffi",
    script,
  ]);
  try {
    await proc.waitFor("FFI-DENIED READY\r\n", { timeoutMs: 20_000 });
    await test(proc, proc.termios());
  } finally {
    await proc.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("Windows path: raw through Deno.stdin.setRaw, restored, no FFI", async () => {
  await withWindowsScript(
    `
    local.enterRaw();
    local.enterRaw(); // already raw: nothing happens
    out(local.isRaw ? "RAW\\n" : "NOT RAW\\n");
    await Deno.stdin.read(new Uint8Array(64));
    local.restore();
    local.restore(); // idempotent
    out(local.isRaw ? "STILL RAW\\n" : "RESTORED\\n");
    `,
    async (proc, before) => {
      await proc.type("go\r");
      // "\n" still leaves as "\r\n": output processing is not ours to
      // change on this path.
      await proc.waitFor("RAW\r\n");
      const raw = termiosFields(proc.termios());
      const t = LINUX_TERMIOS;
      // What Deno's setRaw turns off: line editing, echo, signal keys,
      // input translation and flow control.
      assert.equal(raw.lflag & (t.lflag.ICANON | t.lflag.ECHO), 0);
      assert.equal(raw.lflag & t.lflag.ISIG, 0);
      assert.equal(raw.iflag & (t.iflag.ICRNL | t.iflag.IXON), 0);
      assert.equal(raw.cc[t.cc.VMIN], 1);
      // Output processing is not touched: a Windows console has none (and
      // here, on a pty, setRaw leaves OPOST as it was).
      assert.equal(
        raw.oflag & t.oflag.OPOST,
        termiosFields(before).oflag & t.oflag.OPOST,
      );
      // One keystroke ends the read, and is not echoed.
      const at = proc.length;
      await proc.type("x");
      await proc.waitFor("RESTORED", { from: at });
      assert.equal((await proc.wait()).code, 0);
      assert.equal(proc.text.slice(at), "RESTORED\r\n");
      assert.deepEqual(proc.termios(), before);
    },
  );
});

Deno.test("Windows path: a signal restores the console, resets modes and exits 128 + n", async () => {
  await withWindowsScript(
    `
    // SIGBREAK is refused on Linux: skipped, as on a Windows Deno that
    // lacks one of the others.
    local.guardSignals(() => out("<<onSignal>>"));
    local.enterRaw();
    out("\\x1b[?1049h\\x1b[?25lRAW-READY");
    const buffer = new Uint8Array(64);
    while ((await Deno.stdin.read(buffer)) !== null);
    `,
    async (proc, before) => {
      await proc.type("go\r");
      const ready = await proc.waitFor("RAW-READY");
      assert.notDeepEqual(proc.termios(), before, "raw before the signal");
      proc.signal("SIGTERM");
      const status = await proc.wait();
      assert.equal(status.code, 128 + 15);
      assert.deepEqual(proc.termios(), before);
      assert.equal(
        proc.text.slice(ready.end),
        "<<onSignal>>" + RESET_MODES,
      );
    },
  );
});

Deno.test("Windows path: resizes are seen by polling the console size", async () => {
  await withWindowsScript(
    `
    const stop = local.onResize(({ cols, rows }) => out(\`SIZE \${cols}x\${rows}\\n\`));
    out("WATCHING\\n");
    await Deno.stdin.read(new Uint8Array(64));
    stop();
    out("STOPPED\\n");
    await Deno.stdin.read(new Uint8Array(64));
    `,
    async (proc) => {
      await proc.type("go\r");
      await proc.waitFor("WATCHING\r\n");
      proc.pty.resize(100, 40);
      await proc.waitFor("SIZE 100x40", { timeoutMs: 5_000 });
      proc.pty.resize(90, 30);
      await proc.waitFor("SIZE 90x30", { timeoutMs: 5_000 });
      const at = proc.length;
      await proc.type("\r");
      await proc.waitFor("STOPPED", { from: at });
      proc.pty.resize(70, 20);
      await new Promise((resolve) => setTimeout(resolve, 600));
      assert.ok(!proc.text.includes("SIZE 70x20"), "stopped polling");
      await proc.type("\r");
      assert.equal((await proc.wait()).code, 0);
    },
  );
});

Deno.test("control: under the same flags the Unix path needs FFI, and says so", async () => {
  const script = await Deno.makeTempFile({ suffix: ".js" });
  try {
    await Deno.writeTextFile(
      script,
      `
      import { LocalTerminal } from ${JSON.stringify(MODULE)};
      try {
        new LocalTerminal({ os: "linux" }).enterRaw();
        console.log("entered");
      } catch (error) {
        console.log(error.name);
      }
      `,
    );
    const proc = PtyProcess.spawn([
      Deno.execPath(),
      "run",
      "-A",
      "--deny-ffi",
      script,
    ]);
    try {
      assert.equal((await proc.wait()).code, 0);
      assert.match(proc.text, /NotCapable/);
    } finally {
      await proc.close();
    }
  } finally {
    await Deno.remove(script);
  }
});

Deno.test("signals guarded: the four Unix ones everywhere, SIGBREAK on Windows", () => {
  const unix = [["SIGHUP", 1], ["SIGINT", 2], ["SIGQUIT", 3], [
    "SIGTERM",
    15,
  ]];
  assert.deepEqual(guardedSignals("linux"), unix);
  assert.deepEqual(guardedSignals("darwin"), unix);
  assert.deepEqual(guardedSignals("windows"), [...unix, ["SIGBREAK", 21]]);
});
