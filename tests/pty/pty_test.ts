/**
 * Tests of the pty layer against real pseudo-terminals and real programs
 * (sh, bash, stty, ps, head); nothing is mocked.
 */

import assert from "node:assert/strict";
import { Pty, type PtySpawnOptions } from "../../src/pty/mod.ts";

const encoder = new TextEncoder();

/** A small environment, so tests do not depend on the caller's shell. */
const BASE_ENV: Record<string, string> = {
  PATH: Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
  HOME: Deno.env.get("HOME") ?? "/",
  TERM: "dumb",
  LC_ALL: "C",
};

function spawn(options: Partial<PtySpawnOptions> & { command: string }): Pty {
  return Pty.spawn({ cols: 80, rows: 24, env: BASE_ENV, ...options });
}

/**
 * Reads a pty to its end in the background and lets a test wait for text to
 * appear. The pump ends at null, so each test closes its pty in `finally`.
 */
class Transcript {
  bytes: Uint8Array<ArrayBuffer>[] = [];
  text = "";
  /** Resolves when read() returned null. */
  readonly done: Promise<void>;
  #decoder = new TextDecoder();
  #changed: () => void = () => {};

  constructor(readonly pty: Pty) {
    this.done = this.#pump();
  }

  async #pump() {
    try {
      for (let chunk; (chunk = await this.pty.read()) !== null;) {
        this.bytes.push(chunk);
        this.text += this.#decoder.decode(chunk, { stream: true });
        this.#changed();
      }
    } finally {
      this.#changed();
    }
  }

  /** Waits until `pattern` matches the text from `from` on; returns where the match ends. */
  async waitFor(pattern: RegExp, from = 0, timeoutMs = 5000): Promise<number> {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      this.#changed();
    }, timeoutMs);
    let ended = false;
    const end = () => ended = true;
    this.done.then(end, end);
    try {
      while (true) {
        const match = pattern.exec(this.text.slice(from));
        if (match) return from + match.index + match[0].length;
        if (timedOut || ended) {
          throw new Error(
            `${timedOut ? "timed out" : "pty ended"} waiting for ${pattern}; ` +
              `transcript: ${JSON.stringify(this.text.slice(from))}`,
          );
        }
        await new Promise<void>((resolve) => this.#changed = resolve);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Every byte read so far, concatenated. */
  concat(): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(this.bytes.reduce((n, b) => n + b.length, 0));
    let offset = 0;
    for (const b of this.bytes) {
      out.set(b, offset);
      offset += b.length;
    }
    return out;
  }
}

async function sha256(data: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data);
  return Array.from(
    new Uint8Array(digest),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** Random bytes of any length (getRandomValues caps one call at 64 KiB). */
function randomBytes(length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(length, i + 65536)));
  }
  return out;
}

Deno.test("output, exit code, and null at the end", async () => {
  const pty = spawn({ command: "/bin/sh", args: ["-c", "echo hello; exit 7"] });
  try {
    const transcript = new Transcript(pty);
    await transcript.done;
    assert.match(transcript.text, /hello\r\n/);
    assert.deepEqual(await pty.exited, { code: 7, signal: null });
    assert.equal(await pty.read(), null, "read() stays null after the end");
    // Nobody holds the terminal any more: the kernel drops input (or the
    // write rejects with BrokenPipe); either way it must not hang.
    await withTimeout(
      pty.write(new Uint8Array(100_000)).catch(() => {}),
      2000,
      "write() to a terminal nobody holds did not settle",
    );
  } finally {
    await pty.close();
  }
});

Deno.test("env and cwd reach the child; a missing program exits 127", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const pty = spawn({
      command: "/bin/sh",
      args: ["-c", 'echo "cwd=$(pwd) foo=$FOO home=$HOME"'],
      env: { PATH: BASE_ENV.PATH, FOO: "bar baz" },
      cwd: dir,
    });
    const transcript = new Transcript(pty);
    await transcript.done;
    await pty.close();
    const real = await Deno.realPath(dir);
    assert.match(
      transcript.text,
      new RegExp(`cwd=${real} foo=bar baz home=\r`),
    );

    const missing = spawn({ command: "/no/such/program" });
    const missingTranscript = new Transcript(missing);
    await missingTranscript.done;
    await missing.close();
    assert.equal((await missing.exited).code, 127);
    assert.match(missingTranscript.text, /\/no\/such\/program/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the child's controlling tty is the slave, sized and resizable", async () => {
  const pty = spawn({
    command: "/bin/bash",
    args: [
      "--norc",
      "--noprofile",
      "-c",
      "trap 'echo got-winch' WINCH; tty; stty size; " +
      "ps -o sid=,pid=,tpgid=,tty= -p $$; echo ready; read -r line; stty size",
    ],
    cols: 91,
    rows: 27,
  });
  try {
    const transcript = new Transcript(pty);
    const ready = await transcript.waitFor(/ready\r\n/);
    const [, ptsPath, rows, cols, sid, pid, tpgid, tty] =
      /^(\/dev\/pts\/\d+)\r\n(\d+) (\d+)\r\n\s*(\d+)\s+(\d+)\s+(\d+)\s+(\S+)\r\n/
        .exec(transcript.text) ?? assert.fail(transcript.text);
    assert.deepEqual([rows, cols], ["27", "91"]);
    // Session leader, foreground process group, and on our slave.
    assert.deepEqual([sid, pid, tpgid].map(Number), [
      pty.pid,
      pty.pid,
      pty.pid,
    ]);
    assert.equal(`/dev/${tty}`, ptsPath);

    pty.resize(100, 40);
    await pty.write(encoder.encode("\r"));
    await transcript.waitFor(/40 100\r\n/, ready);
    await transcript.done;
    // bash may run the trap only once `read` returns, so the order varies.
    assert.match(transcript.text.slice(ready), /got-winch\r\n/);
    assert.deepEqual(await pty.exited, { code: 0, signal: null });
  } finally {
    await pty.close();
  }
});

Deno.test("Ctrl-C interrupts a foreground job of an interactive bash", async () => {
  const pty = spawn({
    command: "bash",
    args: ["--norc", "--noprofile", "-i"],
    env: { ...BASE_ENV, PS1: "PROMPT> " },
  });
  try {
    const transcript = new Transcript(pty);
    let at = await transcript.waitFor(/PROMPT> $/);
    await pty.write(encoder.encode("sleep 100\r"));
    // Wait for sleep to run in its own process group before interrupting it,
    // so the ^C reaches the job and not the line editor.
    await waitUntil(async () =>
      (await sessionCommands(pty.pid)).includes("sleep")
    );
    const interrupted = performance.now();
    await pty.write(encoder.encode("\x03"));
    at = await transcript.waitFor(/PROMPT> $/, at, 2000);
    const elapsed = performance.now() - interrupted;
    assert.ok(elapsed < 2000, `prompt came back after ${elapsed} ms`);
    await pty.write(encoder.encode("echo status=$?\r"));
    await transcript.waitFor(/status=130\r\n/, at);
    await pty.write(encoder.encode("exit\r"));
    await transcript.done;
    assert.equal((await pty.exited).signal, null);
  } finally {
    await pty.close();
  }
});

/** Resolves like `promise`, or fails the test after `ms`. */
async function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  message: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Names of the processes in session `sid`. */
async function sessionCommands(sid: number): Promise<string[]> {
  const { stdout } = await new Deno.Command("ps", {
    args: ["-o", "comm=", "-s", String(sid)],
    stderr: "null",
  }).output();
  return new TextDecoder().decode(stdout).split("\n").map((s) => s.trim());
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 5000) {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) assert.fail("condition never held");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test("5 MB of output is read completely, byte for byte", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/out`;
  const data = randomBytes(5_000_000);
  await Deno.writeFile(file, data);
  // raw: no \n -> \r\n translation; -echo: nothing else on the terminal.
  const pty = spawn({
    command: "/bin/sh",
    args: ["-c", 'stty raw -echo; cat "$1"', "sh", file],
  });
  try {
    const transcript = new Transcript(pty);
    await transcript.done;
    const received = transcript.concat();
    assert.equal(received.length, data.length);
    assert.equal(await sha256(received), await sha256(data));
    assert.deepEqual(await pty.exited, { code: 0, signal: null });
  } finally {
    await pty.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("output left in the pty when the child exits is still read", async () => {
  const pty = spawn({
    command: "/bin/sh",
    args: ["-c", "stty raw -echo; head -c 6000 /dev/zero | tr '\\0' x"],
  });
  try {
    // Nobody reads until the child is gone: the bytes wait in the kernel
    // (a pty holds about 12 KiB: 8 KiB of buffers plus the 4 KiB line queue).
    assert.deepEqual(await pty.exited, { code: 0, signal: null });
    const transcript = new Transcript(pty);
    await transcript.done;
    assert.equal(transcript.text, "x".repeat(6000));
  } finally {
    await pty.close();
  }
});

Deno.test("a 10 MB write completes without blocking the event loop", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/in`;
  const data = randomBytes(10_000_000);
  const pty = spawn({
    command: "/bin/sh",
    args: [
      "-c",
      'stty raw -echo; echo ready; head -c 10000000 > "$1"',
      "sh",
      file,
    ],
  });
  let ticker: ReturnType<typeof setInterval> | undefined;
  try {
    const transcript = new Transcript(pty);
    await transcript.waitFor(/ready/);
    let last = performance.now();
    let longestGap = 0;
    let ticks = 0;
    ticker = setInterval(() => {
      const now = performance.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
      ticks++;
    }, 5);
    const started = performance.now();
    await pty.write(data);
    const elapsed = performance.now() - started;
    clearInterval(ticker);
    assert.deepEqual(await pty.exited, { code: 0, signal: null });
    await transcript.done;
    assert.equal(await sha256(await Deno.readFile(file)), await sha256(data));
    assert.ok(ticks > 0, "the timer never ran during the write");
    assert.ok(
      longestGap < 250,
      `event loop stalled ${longestGap.toFixed(0)} ms during a ${
        elapsed.toFixed(0)
      } ms write (${ticks} ticks)`,
    );
  } finally {
    clearInterval(ticker);
    await pty.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("kill() signals the child; exited reports the signal", async () => {
  const pty = spawn({ command: "sleep", args: ["100"] });
  try {
    const transcript = new Transcript(pty);
    pty.kill();
    assert.deepEqual(await pty.exited, { code: 143, signal: "SIGTERM" });
    await transcript.done;
    pty.kill(); // no-op once exited
  } finally {
    await pty.close();
  }
});

Deno.test("read() ends even if the child dies before opening the slave", async () => {
  const pty = spawn({ command: "sleep", args: ["100"] });
  try {
    // Right after spawn, sh has not yet opened the slave: were the pty to
    // wait for the slave's last close, it would wait forever.
    pty.kill("SIGKILL");
    const transcript = new Transcript(pty);
    await withTimeout(transcript.done, 2000, "read() never returned null");
    assert.equal((await pty.exited).signal, "SIGKILL");
  } finally {
    await pty.close();
  }
});

Deno.test("close() ends a pending read, hangs up the child, and is idempotent", async () => {
  const pty = spawn({ command: "sleep", args: ["100"] });
  // Closed any earlier, sh would fail to open the hung-up slave (exit 2).
  await waitUntil(async () =>
    (await sessionCommands(pty.pid)).includes("sleep")
  );
  const pending = pty.read();
  // Let the read get as far as its poll on the worker thread.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const first = pty.close();
  assert.equal(pty.close(), first);
  await withTimeout(first, 2000, "close() did not end the pending read");
  assert.equal(await pending, null);
  assert.equal(await pty.read(), null);
  await assert.rejects(pty.write(encoder.encode("x")), Deno.errors.BadResource);
  pty.resize(10, 10); // ignored once closed
  // Closing the master hangs up the terminal: the session leader gets SIGHUP.
  assert.deepEqual(await pty.exited, { code: 129, signal: "SIGHUP" });
  await pty.close();
});

Deno.test("close() stops a write that is waiting for room", async () => {
  // `sleep` never reads its input, so the pty's input queue fills up.
  const pty = spawn({ command: "sleep", args: ["100"] });
  await waitUntil(async () =>
    (await sessionCommands(pty.pid)).includes("sleep")
  );
  const write = pty.write(new Uint8Array(1_000_000).fill(0x61));
  await new Promise((resolve) => setTimeout(resolve, 100));
  await pty.close();
  await assert.rejects(write, Deno.errors.BadResource);
  assert.equal((await pty.exited).signal, "SIGHUP");
});

Deno.test("spawn() rejects a bad size", () => {
  assert.throws(
    () => Pty.spawn({ command: "true", cols: -1, rows: 24 }),
    RangeError,
  );
});

Deno.test("watchEcho: keystrokes' echoes are caught early and arrive once, in order, beside streamed output", async () => {
  // cat echoes each keystroke (raw: byte by byte); a background loop
  // streams lines meanwhile, so reads served by the watch and reads that
  // waited in poll interleave.
  const pty = spawn({
    command: "/bin/sh",
    args: [
      "-c",
      "stty raw -echo; (i=0; while [ $i -lt 300 ]; do echo L$i; i=$((i+1)); done) & exec cat",
    ],
    watchEcho: true,
  });
  try {
    const transcript = new Transcript(pty);
    await transcript.waitFor(/L299\n/, 0, 10_000);
    const keys = "abcdefghijklmnopqrstuvwxyz".repeat(8);
    for (const key of keys) {
      await pty.write(encoder.encode(key));
      if (Math.random() < 0.5) await new Promise((r) => setTimeout(r, 2));
    }
    await transcript.waitFor(new RegExp(`L299\\n${keys}$`), 0, 10_000);
    // Every line once and in order, then every key once and in order.
    const lines = Array.from({ length: 300 }, (_, i) => `L${i}\n`).join("");
    assert.equal(transcript.text, lines + keys);
    assert.ok(
      pty.echoesCaught > 0,
      `no echo of ${keys.length} was caught by the watch`,
    );
  } finally {
    // A watch that caught the last echo leaves its read's poll in flight:
    // close() must still end it.
    await withTimeout(pty.close(), 2000, "close() did not end the poll");
  }
});

Deno.test("watchEcho: a keystroke without an echo leaves later output to the poll", async () => {
  const pty = spawn({
    command: "/bin/sh",
    args: [
      "-c",
      "stty raw -echo; dd bs=1 count=1 of=/dev/null 2>/dev/null; sleep 0.3; echo late",
    ],
    watchEcho: true,
  });
  try {
    const transcript = new Transcript(pty);
    // Let dd start reading before the keystroke comes.
    await new Promise((r) => setTimeout(r, 200));
    await pty.write(encoder.encode("k"));
    await transcript.waitFor(/late\n/, 0, 5000);
    await transcript.done;
    assert.equal(transcript.text, "late\n");
    assert.equal(pty.echoesCaught, 0);
    assert.deepEqual(await pty.exited, { code: 0, signal: null });
  } finally {
    await pty.close();
  }
});

Deno.test("a pty spawned without watchEcho never reads ahead of its reader", async () => {
  const pty = spawn({
    command: "/bin/sh",
    args: ["-c", "stty raw -echo; exec cat"],
  });
  try {
    const transcript = new Transcript(pty);
    await new Promise((r) => setTimeout(r, 200));
    for (const key of "hello") await pty.write(encoder.encode(key));
    await transcript.waitFor(/hello$/);
    assert.equal(pty.echoesCaught, 0);
  } finally {
    await pty.close();
  }
});
