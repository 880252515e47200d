/**
 * Tests of the client's local terminal on real pseudo-terminals: small Deno
 * programs use `LocalTerminal` with a pty as their terminal, and the tests
 * read what reached the master and the terminal's exact attributes.
 */

import assert from "node:assert/strict";
import { RESET_MODES } from "../../src/client/local_terminal.ts";
import { LINUX_TERMIOS, termiosFields } from "../../src/pty/termios.ts";
import { PtyProcess } from "../helpers/pty_process.ts";

const MODULE = new URL("../../src/client/local_terminal.ts", import.meta.url)
  .href;

/** The prologue of every script: prints READY, waits for a typed line. */
const PROLOGUE = `
import { LocalTerminal, notice } from ${JSON.stringify(MODULE)};
const encoder = new TextEncoder();
const out = (text) => Deno.stdout.writeSync(encoder.encode(text));
const local = new LocalTerminal();
out("READY\\n");
await Deno.stdin.read(new Uint8Array(64));
`;

/**
 * Runs `body` (after PROLOGUE) as a Deno program on a pty; hands the test
 * the process and the terminal's attributes before the program touched
 * them, once it printed READY.
 */
async function withScript(
  body: string,
  test: (proc: PtyProcess, before: Uint8Array) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "et-local-terminal-" });
  const script = `${dir}/script.js`;
  await Deno.writeTextFile(script, PROLOGUE + body);
  const proc = PtyProcess.spawn([Deno.execPath(), "run", "-A", script]);
  try {
    await proc.waitFor("READY\r\n", { timeoutMs: 20_000 });
    await test(proc, proc.termios());
  } finally {
    await proc.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** True when output processing (OPOST) is on in `termios`. */
function processesOutput(termios: Uint8Array): boolean {
  return (termiosFields(termios).oflag & LINUX_TERMIOS.oflag.OPOST) !== 0;
}

Deno.test("raw mode passes output through unchanged, and restore() puts back the exact attributes", async () => {
  await withScript(
    `
    local.enterRaw();
    out(local.isTty && local.isOutputTty && local.isRaw ? "<<" : "not raw <<");
    out("a\\nb\\r\\n>>");
    notice("hello", true);
    local.restore();
    local.restore(); // idempotent
    out(local.isRaw ? "still raw" : "AFTER\\n");
    `,
    async (proc, before) => {
      assert.ok(processesOutput(before), "a fresh pty processes output");
      const typed = proc.length;
      await proc.type("go\r");
      const status = await proc.wait();
      assert.deepEqual(status, { code: 0, signal: null });
      const output = new TextDecoder("latin1").decode(proc.bytes(typed));
      assert.equal(
        output,
        // The terminal's echo of the typed line (cooked), then the program.
        "go\r\n" + "<<a\nb\r\n>>" + "\r\n[et: hello]\r\n" + "AFTER\r\n",
      );
      assert.deepEqual(proc.termios(), before);
    },
  );
});

Deno.test("enterRaw() switches output processing, echo and line editing off", async () => {
  await withScript(
    `
    local.enterRaw();
    out("RAW\\n");
    await Deno.stdin.read(new Uint8Array(64));
    local.restore();
    `,
    async (proc, before) => {
      await proc.type("go\r");
      await proc.waitFor("RAW\n");
      const raw = termiosFields(proc.termios());
      const t = LINUX_TERMIOS;
      assert.equal(raw.oflag & t.oflag.OPOST, 0);
      assert.equal(raw.lflag & (t.lflag.ICANON | t.lflag.ECHO), 0);
      assert.equal(raw.lflag & t.lflag.ISIG, 0);
      assert.equal(raw.iflag & (t.iflag.ICRNL | t.iflag.IXON), 0);
      // One keystroke is enough for a read, and is not echoed.
      const at = proc.length;
      await proc.type("x");
      assert.equal((await proc.wait()).code, 0);
      assert.equal(proc.text.slice(at), "");
      assert.deepEqual(proc.termios(), before);
    },
  );
});

for (
  const [signal, number] of [
    ["SIGINT", 2],
    ["SIGTERM", 15],
    ["SIGHUP", 1],
    ["SIGQUIT", 3],
  ] as const
) {
  Deno.test(
    `${signal}: onSignal runs, the terminal is restored and reset, exit code ${
      128 + number
    }`,
    async () => {
      await withScript(
        `
      local.guardSignals(async (signal) => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        out("<<onSignal " + signal + ">>");
      });
      local.enterRaw();
      // What a full-screen remote program leaves on.
      out("\\x1b[?1049h\\x1b[?25l\\x1b[?1000h\\x1b[?2004hRAW-READY");
      const buffer = new Uint8Array(64);
      while ((await Deno.stdin.read(buffer)) !== null);
      `,
        async (proc, before) => {
          await proc.type("go\r");
          const ready = await proc.waitFor("RAW-READY");
          assert.ok(!processesOutput(proc.termios()), "raw before the signal");
          proc.signal(signal);
          const status = await proc.wait();
          assert.equal(status.code, 128 + number);
          assert.deepEqual(
            proc.termios(),
            before,
            "attributes restored exactly",
          );
          const tail = proc.text.slice(ready.end);
          assert.equal(tail, `<<onSignal ${signal}>>` + RESET_MODES);
          assert.ok(tail.includes("\x1b[?1049l"), "left the alternate screen");
          assert.ok(tail.includes("\x1b[?25h"), "showed the cursor");
        },
      );
    },
  );
}

Deno.test("a signal handler that never finishes delays the exit by about 300 ms only", async () => {
  await withScript(
    `
    local.guardSignals(() => new Promise(() => {}));
    local.enterRaw();
    out("RAW-READY");
    setInterval(() => {}, 1000);
    `,
    async (proc, before) => {
      await proc.type("go\r");
      await proc.waitFor("RAW-READY");
      const sent = performance.now();
      proc.signal("SIGTERM");
      const status = await proc.wait();
      const elapsed = performance.now() - sent;
      assert.equal(status.code, 128 + 15);
      assert.ok(elapsed >= 280, `exited after ${elapsed} ms`);
      assert.ok(elapsed < 2000, `exited after ${elapsed} ms`);
      assert.deepEqual(proc.termios(), before);
    },
  );
});

Deno.test("an uncaught error after enterRaw() still restores through finally", async () => {
  await withScript(
    `
    local.enterRaw();
    try {
      out("RAW-READY");
      throw new Error("boom");
    } finally {
      local.restore();
    }
    `,
    async (proc, before) => {
      await proc.type("go\r");
      const status = await proc.wait();
      assert.equal(status.code, 1);
      assert.match(proc.text, /RAW-READY[^]*boom/);
      assert.deepEqual(proc.termios(), before);
    },
  );
});

Deno.test("without a terminal, enterRaw, restore and resetModes do nothing", async () => {
  const script = await Deno.makeTempFile({ suffix: ".js" });
  try {
    await Deno.writeTextFile(
      script,
      `
      import { LocalTerminal } from ${JSON.stringify(MODULE)};
      const local = new LocalTerminal();
      local.enterRaw();
      local.resetModes();
      local.restore();
      console.log(JSON.stringify([local.isTty, local.isOutputTty, local.isRaw, local.size()]));
      `,
    );
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", script],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.equal(
      new TextDecoder().decode(stdout),
      JSON.stringify([false, false, false, { cols: 80, rows: 24 }]) + "\n",
    );
  } finally {
    await Deno.remove(script);
  }
});

Deno.test("a terminal that stops reading never stalls the event loop, and every byte still arrives in order", async () => {
  const { Pty } = await import("../../src/pty/pty.ts");
  const dir = await Deno.makeTempDir({ prefix: "et-local-terminal-" });
  const script = `${dir}/script.js`;
  const ticks = `${dir}/ticks`;
  // 4 MiB: far more than a pty's buffer, so writes must wait for the reader.
  await Deno.writeTextFile(
    script,
    `
    import { LocalTerminal } from ${JSON.stringify(MODULE)};
    const local = new LocalTerminal();
    local.enterRaw();
    const data = new Uint8Array(4 << 20);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 0xff;
    let count = 0;
    // Written aside and renamed: a reader never sees a truncated file.
    const timer = setInterval(() => {
      Deno.writeTextFileSync(${
      JSON.stringify(ticks + ".new")
    }, String(++count));
      Deno.renameSync(${JSON.stringify(ticks + ".new")}, ${
      JSON.stringify(ticks)
    });
    }, 10);
    for (let at = 0; at < data.length;) at += await local.write(data.subarray(at));
    clearInterval(timer);
    local.restore();
    `,
  );
  const pty = Pty.spawn({
    command: Deno.execPath(),
    args: ["run", "-A", script],
    cols: 80,
    rows: 24,
  });
  try {
    const tick = () => Number(Deno.readTextFileSync(ticks));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      try {
        if (tick() > 0) break;
      } catch { /* not yet written */ }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    // Nobody reads the terminal: its buffer is full and the writer waits,
    // but its timers still run.
    let exited = false;
    pty.exited.then(() => exited = true);
    const before = tick();
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.ok(!exited, "the writer waits for the terminal");
    assert.ok(tick() >= before + 5, `timers ran: ${before} -> ${tick()}`);
    const chunks: Uint8Array[] = [];
    for (let chunk; (chunk = await pty.read()) !== null;) chunks.push(chunk);
    const received = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const chunk of chunks) {
      received.set(chunk, at);
      at += chunk.length;
    }
    const expected = new Uint8Array(4 << 20);
    for (let i = 0; i < expected.length; i++) {
      expected[i] = (i * 7 + (i >> 12)) & 0xff;
    }
    const digest = async (bytes: Uint8Array<ArrayBuffer>) =>
      Array.from(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes)))
        .map((b) => b.toString(16).padStart(2, "0")).join("");
    // Deno itself may clear its progress line on a terminal at start.
    const start = received.length - expected.length;
    assert.equal(
      new TextDecoder("latin1").decode(received.subarray(0, start))
        .replaceAll("\x1b[0G\x1b[2K\x1b[J", ""),
      "",
    );
    assert.equal(
      await digest(received.slice(start)),
      await digest(expected),
    );
    assert.deepEqual(await pty.exited, { code: 0, signal: null });
  } finally {
    await pty.close();
    await Deno.remove(dir, { recursive: true });
  }
});
