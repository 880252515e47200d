/**
 * ScreenResume with real programs on real ptys: a snapshot lands cleanly on
 * a terminal left in any state (it shows what the whole stream would
 * have), the program is never blocked while the client is away, memory
 * stays bounded, the log holds every byte (0600), and below the threshold
 * the bytes stay as they are.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { OutputBacklog } from "../../src/terminal/backlog.ts";
import { startProgram } from "../../src/terminal/program.ts";
import {
  SCREEN_RESUME_THRESHOLD_BYTES,
  ScreenResume,
} from "../../src/terminal/screen_resume.ts";

const COLS = 80;
const ROWS = 24;

const spec = (command: string) => ({
  command,
  pty: true,
  term: "xterm-256color",
  cols: COLS,
  rows: ROWS,
  env: {},
});

// deno-lint-ignore no-explicit-any
type Xterm = any;

/** A headless xterm standing in for the person's terminal. */
async function localTerminal(): Promise<Xterm> {
  // deno-lint-ignore no-import-prefix
  const module = await import("npm:@xterm/headless@6.0.0");
  const { Terminal } = module.default ?? module;
  return new Terminal({
    cols: COLS,
    rows: ROWS,
    scrollback: 1000,
    allowProposedApi: true,
    logLevel: "off",
  });
}

/** What a terminal shows: rows, cursor, buffer, modes. */
function view(terminal: Xterm) {
  const buffer = terminal.buffer.active;
  const rows = [];
  for (let y = 0; y < ROWS; y++) {
    rows.push(buffer.getLine(buffer.baseY + y)?.translateToString(true));
  }
  return {
    rows,
    cursor: [buffer.cursorX, buffer.cursorY],
    buffer: buffer.type,
    modes: { ...terminal.modes },
    hidden: terminal._core.coreService.isCursorHidden,
    region: [
      terminal._core.buffer.scrollTop,
      terminal._core.buffer.scrollBottom,
    ],
    mouse: terminal._core.coreMouseService.activeEncoding,
  };
}

function feed(terminal: Xterm, bytes: Uint8Array) {
  terminal._core.writeSync(bytes);
}

async function waitUntil(test: () => boolean, what: string) {
  const deadline = performance.now() + 20_000;
  while (!test()) {
    if (performance.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Every chunk the backlog holds, removed. */
async function drain(backlog: OutputBacklog): Promise<Uint8Array[]> {
  const chunks = [];
  while (backlog.bytes > 0) {
    const chunk = (await backlog.peek())!;
    chunks.push(chunk);
    backlog.commit(chunk);
  }
  return chunks;
}

async function privateDir(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "et-screen-" });
  await Deno.chmod(dir, 0o700);
  return dir;
}

/**
 * Runs `command` on a pty with the client away, then brings it back: the
 * person's terminal (left in a mess by `mess`) gets the snapshot, a
 * terminal fed every byte is the truth.
 */
async function resumeOnto(command: string, mess: string) {
  const dir = await privateDir();
  const program = await startProgram(spec(command));
  const screen = await ScreenResume.start({
    dir,
    idHex: "ab".repeat(16),
    cols: COLS,
    rows: ROWS,
  });
  const truth = await localTerminal();
  const local = await localTerminal();
  try {
    let away = true;
    const tapped = screen.tap(program.output, () => away);
    // Everything the program printed, as the truth sees it.
    const source = {
      read: async () => {
        const chunk = await tapped.read();
        if (chunk) feed(truth, chunk);
        return chunk;
      },
    };
    const backlog = new OutputBacklog(
      source,
      () => away ? Infinity : 256 * 1024,
    );
    screen.bind(backlog);
    await program.exited;
    await waitUntil(() => backlog.sourceDone, "output complete");
    feed(local, new TextEncoder().encode(mess));
    away = false;
    assert.ok(screen.clientBack(), "past the threshold: a snapshot");
    const [snapshot, notice] = await drain(backlog);
    const text = new TextDecoder().decode(notice);
    // Framed: the default pen (and ASCII, no insertion) before it.
    assert.ok(text.startsWith("\x1b[0m"), JSON.stringify(text));
    assert.match(
      text.slice(text.indexOf("\r\n")),
      /^\r\n\[et: [\d.]+ MiB of output skipped/,
    );
    assert.ok(text.includes(screen.logPath));
    feed(local, snapshot);
    const logged = await Deno.readFile(screen.logPath);
    return { truth, local, snapshot, notice, logged, screen };
  } finally {
    screen.close();
    await program.close();
    await Deno.remove(dir, { recursive: true });
  }
}

// Over the threshold, then a screen worth keeping: colours, wide text.
const FLOOD = `head -c 3000000 /dev/zero | tr '\\0' 'x' | fold -w 100; `;

Deno.test("screen resume: the snapshot lands on a messy terminal as the whole stream would have", async () => {
  const { truth, local, snapshot } = await resumeOnto(
    FLOOD +
      `for i in $(seq 1 40); do printf '\\033[3%dmline %d\\033[0m ✓ 日本\\n' $((i % 8)) $i; done; ` +
      `printf '\\033[?2004h\\033[?1h\\033[?1002h\\033[?1006h\\033[5;10Hhere'`,
    // The person's terminal: alternate screen, a scroll region, a pen,
    // mouse reporting, origin mode, cursor hidden.
    "\x1b[?1049h\x1b[5;10r\x1b[41;1m\x1b[?1000h\x1b[?6h\x1b[?25lJUNK",
  );
  assert.ok(snapshot.length < 200_000, `${snapshot.length} bytes`);
  assert.deepEqual(view(local), view(truth));
  assert.ok(view(local).rows.some((row: string) => row.includes("line 40")));
});

Deno.test("screen resume: a full-screen program in the alternate screen comes back there", async () => {
  const { truth, local } = await resumeOnto(
    FLOOD +
      `printf 'shell below\\n\\033[?1049h\\033[H\\033[2J\\033[7mTITLE\\033[0m' ` +
      `&& printf '\\033[12;30Hmiddle\\033[?25l\\033[3;1H'`,
    "plain junk\r\n",
  );
  assert.equal(view(truth).buffer, "alternate");
  assert.deepEqual(view(local), view(truth));
});

Deno.test("screen resume: a terminal reset after the flood (no scrollback left) comes back blank but for its one line", async () => {
  const { truth, local } = await resumeOnto(
    FLOOD + `printf '\\033ctop\\n'`,
    "MAIN JUNK\r\n".repeat(30),
  );
  assert.equal(view(truth).rows[0], "top");
  assert.deepEqual(view(local), view(truth));
});

Deno.test("screen resume: a scroll region (and origin mode) comes back, the cursor where it was, and later output scrolls alike", async () => {
  for (const origin of ["", "\\033[?6h"]) {
    const { truth, local } = await resumeOnto(
      FLOOD + `printf '\\033[4;20r${origin}\\033[7;12Hinside'`,
      "junk\r\n",
    );
    assert.deepEqual(view(truth).region, [3, 19]);
    assert.deepEqual(view(local), view(truth));
    // What the program prints next lands the same on both.
    const next = new TextEncoder().encode("\r\nmore\n".repeat(30) + "end");
    feed(truth, next);
    feed(local, next);
    assert.deepEqual(view(local), view(truth));
  }
});

Deno.test("screen resume: the program is never blocked while away, memory stays bounded, the 0600 log holds every byte", async () => {
  const dir = await privateDir();
  const total = 12 * 1024 * 1024;
  const program = await startProgram(
    spec(`stty -opost; head -c ${total} /dev/urandom | base64 -w 76`),
  );
  const screen = await ScreenResume.start({
    dir,
    idHex: "cd".repeat(16),
    cols: COLS,
    rows: ROWS,
  });
  try {
    let away = true;
    const backlog = new OutputBacklog(
      screen.tap(program.output, () => away),
      () => away ? Infinity : 256 * 1024,
    );
    screen.bind(backlog);
    let most = 0;
    const watch = setInterval(() => most = Math.max(most, backlog.bytes), 5);
    // Nobody sends: the program still runs to its end.
    await waitUntil(() => backlog.sourceDone, "output complete");
    clearInterval(watch);
    assert.equal((await program.exited).code, 0);
    assert.ok(
      most <= SCREEN_RESUME_THRESHOLD_BYTES + 256 * 1024,
      `at most ${most} bytes held`,
    );
    const info = await Deno.stat(screen.logPath);
    assert.equal(info.mode! & 0o777, 0o600);
    assert.equal(info.size, screen.logBytes);
    assert.ok(info.size > total * 4 / 3, `${info.size} bytes logged`);
    // The log is the stream: base64 of 12 MiB decodes back to 12 MiB.
    const logged = new TextDecoder().decode(
      await Deno.readFile(screen.logPath),
    );
    const decoded = Uint8Array.from(
      atob(logged.replace(/\s/g, "")),
      (c) => c.charCodeAt(0),
    );
    assert.equal(decoded.length, total);
    away = false;
    assert.ok(screen.clientBack());
    const [snapshot] = await drain(backlog);
    assert.ok(snapshot.length < 100_000);
  } finally {
    screen.close();
    await program.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * Runs `seq 1 <count>` on a pty into a ScreenResume whose client stays
 * away, until its output is complete; the caller closes both.
 */
async function seqWhileAway(
  dir: string,
  count: number,
  idHex: string,
  logPartBytes?: number,
) {
  const program = await startProgram(spec(`stty -opost; seq 1 ${count}`));
  const screen = await ScreenResume.start({
    dir,
    idHex,
    cols: COLS,
    rows: ROWS,
    logPartBytes,
  });
  const backlog = new OutputBacklog(
    screen.tap(program.output, () => true),
    () => Infinity,
  );
  screen.bind(backlog);
  await waitUntil(() => backlog.sourceDone, "output complete");
  const expected = await new Deno.Command("seq", { args: ["1", `${count}`] })
    .output();
  return { program, screen, backlog, expected: expected.stdout };
}

Deno.test("screen resume: at most the threshold missed, the bytes stay as they are; an unannounced log is removed", async () => {
  const dir = await privateDir();
  const { program, screen, backlog, expected } = await seqWhileAway(
    dir,
    100000,
    "ef".repeat(16),
  );
  try {
    assert.ok(backlog.bytes <= SCREEN_RESUME_THRESHOLD_BYTES);
    assert.equal(screen.clientBack(), false);
    const chunks = await drain(backlog);
    const sent = createHash("sha256");
    for (const chunk of chunks) sent.update(chunk);
    const want = createHash("sha256").update(expected).digest("hex");
    assert.equal(sent.digest("hex"), want);
    const logged = await Deno.readFile(screen.logPath);
    assert.equal(createHash("sha256").update(logged).digest("hex"), want);
  } finally {
    screen.close();
    await program.close();
  }
  // Nobody was told about it: it leaves with the session.
  await assert.rejects(() => Deno.stat(screen.logPath), Deno.errors.NotFound);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("screen resume: past its part size the log starts over, keeping one older part: the two parts end with exactly the latest output, 0600, and the notice names both", async () => {
  const dir = await privateDir();
  const part = 256 * 1024;
  // seq's lines, 1.2 MiB: the log starts over several times.
  const { program, screen, backlog, expected } = await seqWhileAway(
    dir,
    200000,
    "ab".repeat(16),
    part,
  );
  try {
    assert.equal(screen.logBytes, expected.length);
    const older = await Deno.readFile(screen.olderLogPath);
    const newer = await Deno.readFile(screen.logPath);
    assert.equal(older.length, part, "the older part is whole");
    assert.ok(newer.length <= part, `current part ${newer.length} bytes`);
    const kept = new Uint8Array([...older, ...newer]);
    const tail = expected.subarray(expected.length - kept.length);
    const hash = (b: Uint8Array) =>
      createHash("sha256").update(b).digest("hex");
    assert.equal(hash(kept), hash(tail), "the parts hold the latest output");
    for (const path of [screen.logPath, screen.olderLogPath]) {
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600, path);
    }
    assert.ok(screen.clientBack());
    const notice = new TextDecoder().decode((await drain(backlog)).at(-1));
    assert.ok(
      notice.includes(
        `the last ${
          (kept.length / 1024).toFixed(1)
        } KiB of it are in ${screen.olderLogPath} and ${screen.logPath}`,
      ),
      notice,
    );
    const entries = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(entries, [
      `${"ab".repeat(16)}.out`,
      `${"ab".repeat(16)}.out.1`,
    ]);
  } finally {
    screen.close();
    await program.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("screen resume: charsets, a pending wrap, the saved cursor, tab stops, newline mode and the region come back: what the program prints next lands alike", async () => {
  const { truth, local } = await resumeOnto(
    FLOOD +
      // Saved at 5;10 (default pen, ASCII), then DEC graphics in G0, G1
      // ASCII, newline mode, a region, one tab stop at 5, and text up to
      // the last column of the region's bottom line (a pending wrap).
      `printf '\\033[5;10H\\0337\\033[1;33m\\033(0\\033)B\\033[20h` +
      `\\033[3;20r\\033[3g\\033[1;5H\\033H\\033[20;75Habcdef'`,
    // The person's terminal: other charsets shifted in, origin mode, a
    // saved cursor elsewhere.
    "\x1b)0\x0e\x1b[10;10H\x1b7\x1b[?6hJUNK",
  );
  assert.deepEqual(view(local), view(truth));
  // The program goes on: graphics wrap onto a scrolled line, LF is CR LF,
  // a tab to the one stop, the saved cursor back with its pen and ASCII.
  const next = new TextEncoder().encode("lqk\n\tX\x1b8Y\x0ex");
  feed(truth, next);
  feed(local, next);
  assert.deepEqual(view(local), view(truth));
  const rows = view(truth).rows;
  assert.equal(rows[18], "┌─┐");
  assert.equal(rows[19], "    X");
  assert.equal(rows[4]?.slice(9, 11), "Yx");
});

Deno.test("screen resume: output the emulator throws on (ED 1 past the bottom right margin) still reaches the client whole", async () => {
  const dir = await privateDir();
  const program = await startProgram(
    // The pause keeps seq's lines out of the chunk the emulator throws on.
    spec(
      `stty -opost; printf '\\033[24;80HX\\033[1J'; sleep 0.3; seq 1 20000`,
    ),
  );
  const screen = await ScreenResume.start({
    dir,
    idHex: "fe".repeat(16),
    cols: COLS,
    rows: ROWS,
  });
  try {
    const backlog = new OutputBacklog(
      screen.tap(program.output, () => false),
      () => 256 * 1024,
    );
    screen.bind(backlog);
    const sent = createHash("sha256");
    let bytes = 0;
    while (!backlog.sourceDone || backlog.bytes > 0) {
      for (const chunk of await drain(backlog)) {
        sent.update(chunk);
        bytes += chunk.length;
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const seq = await new Deno.Command("seq", { args: ["1", "20000"] })
      .output();
    const expected = new Uint8Array([
      ...new TextEncoder().encode("\x1b[24;80HX\x1b[1J"),
      ...seq.stdout,
    ]);
    assert.equal(bytes, expected.length);
    assert.equal(
      sent.digest("hex"),
      createHash("sha256").update(expected).digest("hex"),
    );
    // The emulator goes on too: the snapshot shows the last lines.
    const text = new TextDecoder().decode(screen.snapshot());
    assert.ok(text.includes("20000"), "the snapshot has the last line");
  } finally {
    screen.close();
    await program.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("screen resume: the notice reads as ASCII under DEC graphics, a pen and insert mode, which hold again after it", async () => {
  const { truth, local, notice } = await resumeOnto(
    FLOOD + `printf '\\033[1;31m\\033(0\\033[4h\\033[10;1H'`,
    "junk\r\n",
  );
  // The session's emulator takes the notice too: so does the truth.
  feed(truth, notice);
  feed(local, notice);
  const next = new TextEncoder().encode("lqk");
  feed(truth, next);
  feed(local, next);
  assert.deepEqual(view(local), view(truth));
  const rows = view(local).rows;
  const at = rows.findIndex((row: string) => row.startsWith("[et: "));
  assert.ok(at >= 0, rows.join("\n"));
  assert.match(rows[at], /of output skipped while you were away/);
  // (The notice wraps at 80 columns: the next line is after it.) The
  // graphics are inserted before the line's text, not over it.
  const after = rows.findIndex((row: string, y: number) =>
    y > at && row.startsWith("┌─┐")
  );
  assert.ok(after > at, "graphics again after the notice");
  assert.equal(rows[after], "┌─┐" + "x".repeat(77), "inserted");
  const cell = local.buffer.active.getLine(local.buffer.active.baseY + after)
    .getCell(0);
  assert.ok(cell.isBold() && cell.getFgColor() === 1, "and the pen");
});
