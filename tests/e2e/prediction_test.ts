/**
 * Predictive local echo end to end: the real client on a real terminal,
 * a real sshd and `et server`, the fault proxy adding 100 ms each way
 * (200 ms round trip). Keystroke to glyph is timed in the harness on the
 * client's pty; the screens are compared, attributes included, with what
 * a direct ssh session shows for the same keys (tmux `capture-pane -e`).
 */

import assert from "node:assert/strict";
import { ScreenModel } from "../../src/client/prediction/mod.ts";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import type { PtyProcess } from "../helpers/pty_process.ts";
import { TmuxTerminal } from "../helpers/tmux.ts";
import {
  PipedClient,
  sha256,
  shellAnswers,
  sleep,
  streamExact,
  tmuxShellAnswers,
  waitUntil,
  withProxiedSession,
  withProxiedTerminal,
} from "./_client.ts";
import { E2E_TEST, type EtWorld, shellQuote, withWorld } from "./_world.ts";

/** One-way delay the proxy adds, each way. */
const DELAY_MS = 100;
/** Time between two keystrokes: a fast typist. */
const KEY_GAP_MS = 70;
/** Longest a prediction may take to show (generous: the machine is loaded). */
const SHOWN_WITHIN_MS = 5;

/**
 * The client's terminal as a person sees it: a headless xterm fed every
 * byte the client wrote to its pty, as they arrive.
 */
class PtyScreen {
  #fed = 0;
  private constructor(readonly model: ScreenModel, readonly pty: PtyProcess) {}

  static async start(pty: PtyProcess): Promise<PtyScreen> {
    const screen = new PtyScreen(await ScreenModel.create(80, 24), pty);
    // Answer what a terminal answers (the client asks where its cursor is).
    screen.model.onReply((data) => pty.type(data).catch(() => {}));
    screen.#catchUp();
    return screen;
  }

  #catchUp(): void {
    if (this.pty.length > this.#fed) {
      this.model.feed(this.pty.bytes(this.#fed));
      this.model.settle();
      this.#fed = this.pty.length;
    }
  }

  /** Waits until `test` holds on the screen; returns when it did (ms clock). */
  async until(test: () => boolean, timeoutMs: number): Promise<number> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      this.#catchUp();
      if (test()) return performance.now();
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`screen: timed out:\n${this.text()}`);
      await this.pty.waitFor(/[\s\S]/, { from: this.#fed, timeoutMs: left })
        .catch(() => {});
    }
  }

  /** The screen's text, one line per row. */
  text(): string {
    const lines = [];
    for (let row = 0; row < this.model.rows; row++) {
      let line = "";
      for (let col = 0; col < this.model.cols; col++) {
        line += this.model.cellText(row, col) || " ";
      }
      lines.push(line.trimEnd());
    }
    return lines.join("\n");
  }

  /** Whether any cell on screen is underlined. */
  anyUnderline(): boolean {
    for (let row = 0; row < this.model.rows; row++) {
      for (let col = 0; col < this.model.cols; col++) {
        if (this.model.cell(row, col)!.attributes.isUnderline()) return true;
      }
    }
    return false;
  }
}

/** p-th percentile of `values` (nearest rank). */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[
    Math.min(sorted.length - 1, Math.ceil(p / 100 * sorted.length) - 1)
  ];
}

Deno.test({
  ...E2E_TEST,
  name:
    "at 200 ms round trip, each typed character of a 40-character command shows within 5 ms; the line ends as the shell echoed it",
  fn: () =>
    withProxiedTerminal({
      prepare: (proxy) => proxy.setDelay(DELAY_MS),
    }, async ({ client }) => {
      const screen = await PtyScreen.start(client);
      // An echoed line teaches the adaptive predictor the round trip.
      const from = client.length;
      await client.type("echo WARM-$((6*7))\r");
      await client.waitFor("WARM-42", { from });
      await screen.until(
        () => /WARM-42\n[^\n]*[#$] *$/.test(screen.text().trimEnd()),
        5000,
      );
      const line = "echo abcdefgijklnopqrstuvwxyz-predicted"; // 39 + Enter
      assert.equal(line.length + 1, 40);
      const { row, col } = screen.model.cursor();
      const latencies: number[] = [];
      // The first key after Enter waits for its echo (a prompt may not echo:
      // a password); from its echo on, the line's epoch is confirmed.
      const first = performance.now();
      await client.type(line[0]);
      const firstShown = await screen.until(
        () => screen.model.cellText(row, col) === line[0],
        5000,
      ) - first;
      assert.ok(
        firstShown >= DELAY_MS * 2 * 0.8,
        `the first key showed after ${firstShown} ms: before its echo`,
      );
      for (let i = 1; i < line.length; i++) {
        const glyph = line[i] === " " ? "" : line[i];
        const typed = performance.now();
        await client.type(line[i]);
        const shown = await screen.until(
          () => screen.model.cellText(row, col + i) === glyph,
          5000,
        );
        latencies.push(shown - typed);
        await sleep(Math.max(0, KEY_GAP_MS - (performance.now() - typed)));
      }
      const p50 = percentile(latencies, 50);
      const p99 = percentile(latencies, 100);
      console.log(
        `keystroke to glyph at ${2 * DELAY_MS} ms RTT: first key ${
          firstShown.toFixed(0)
        } ms (its echo), then p50 ${p50.toFixed(2)} ms, max ${
          p99.toFixed(2)
        } ms over ${latencies.length} keys`,
      );
      assert.ok(p50 <= SHOWN_WITHIN_MS, `median ${p50} ms`);
      assert.ok(
        p99 < DELAY_MS,
        `slowest ${p99} ms: not a prediction (the echo takes ${
          2 * DELAY_MS
        } ms)`,
      );
      // While the echo is on its way the typed text is underlined; once it
      // is all back, the line is the shell's own and nothing is underlined.
      await client.type("\r");
      await screen.until(
        () => screen.text().includes("\nabcdefgijklnopqrstuvwxyz-predicted\n"),
        5000,
      );
      await sleep(4 * DELAY_MS);
      await screen.until(() => !screen.anyUnderline(), 2000);
      const rows = screen.text().split("\n");
      assert.equal(rows[row].slice(col), line, "the command line as echoed");
    }),
});

/** Runs `argv` in a 100x30 tmux terminal. */
function inTmux(argv: string[]): Promise<TmuxTerminal> {
  return TmuxTerminal.start(["sh", "-c", shellQuote(argv)], {
    cols: 100,
    rows: 30,
  });
}

/** A key for both terminals: literal text, or tmux key names. */
type Key = { text: string } | { keys: string[] };

/** Types `keys` one at a time, `KEY_GAP_MS` apart, in every terminal. */
async function typeInAll(terms: TmuxTerminal[], keys: Key[]): Promise<void> {
  for (const key of keys) {
    const started = performance.now();
    for (const term of terms) {
      if ("text" in key) await term.type(key.text);
      else await term.sendKeys(...key.keys);
    }
    await sleep(Math.max(0, KEY_GAP_MS - (performance.now() - started)));
  }
}

/** Each character of `text` as its own key. */
const chars = (text: string): Key[] => [...text].map((ch) => ({ text: ch }));
const enter: Key = { keys: ["Enter"] };

/**
 * Waits until both terminals show the same screen, attributes included;
 * throws, showing both, if they do not within `timeoutMs`.
 */
async function sameScreens(
  et: TmuxTerminal,
  ssh: TmuxTerminal,
  timeoutMs = 5000,
): Promise<string> {
  let last = { et: "", ssh: "" };
  try {
    await waitUntil(
      async () => {
        last = { et: await et.captureStyled(), ssh: await ssh.captureStyled() };
        return last.et === last.ssh;
      },
      timeoutMs,
      "the same screen under et and ssh",
    );
  } catch {
    assert.equal(last.et, last.ssh, "et's screen (with attributes) vs ssh's");
  }
  return last.et;
}

/**
 * Runs `body` with et (through a proxy adding 100 ms each way) and a plain
 * ssh session side by side in tmux, both at a cleared shell prompt.
 */
async function sideBySide(
  body: (
    et: TmuxTerminal,
    ssh: TmuxTerminal,
    world: EtWorld,
    proxy: FaultProxy,
  ) => Promise<void>,
): Promise<void> {
  await withWorld({}, async (world) => {
    const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
    proxy.setDelay(DELAY_MS);
    const et = await inTmux(world.client([], { port: proxy.port }));
    const ssh = await inTmux([
      ...world.sshd.sshCommand.split(" "),
      "-tt",
      world.sshd.hostAlias,
    ]);
    try {
      await tmuxShellAnswers(et);
      await tmuxShellAnswers(ssh);
      // A few echoed lines teach et the round trip; then a clean screen.
      await typeInAll([et, ssh], [...chars("true"), enter]);
      await typeInAll([et, ssh], [...chars("clear"), enter]);
      await sameScreens(et, ssh);
      await body(et, ssh, world, proxy);
    } finally {
      await et.kill();
      await ssh.kill();
      await proxy.close();
    }
  });
}

Deno.test({
  ...E2E_TEST,
  name:
    "a typed command line, a hidden read -s and an upper-casing program end on the same screen as ssh, with no underline or stray glyph",
  fn: () =>
    sideBySide(async (et, ssh) => {
      // A command line, typed fast: et shows the last keys before their
      // echo is back (200 ms), underlined; then its output.
      await typeInAll([et, ssh], chars("echo the quick brown fox; echo jumps"));
      const [early, styled] = [await et.capture(), await et.captureStyled()];
      assert.match(
        early,
        /fox; echo jumps/,
        `typed keys show before the echo:\n${styled}`,
      );
      assert.ok(styled.includes("\x1b[4m"), "unconfirmed keys are underlined");
      await typeInAll([et, ssh], [enter]);
      await et.waitFor(/^jumps$/m);
      await sameScreens(et, ssh);

      // A password: nothing typed ever shows, even for a moment.
      await typeInAll([et, ssh], [
        ...chars('read -s pw; echo "got ${#pw}"'),
        enter,
      ]);
      await sleep(3 * DELAY_MS);
      const { row } = await et.cursor();
      for (const key of "hunter2") {
        await typeInAll([et, ssh], [{ text: key }]);
        const rows = (await et.capture()).split("\n");
        assert.equal(
          rows[row].trim(),
          "",
          `a password key showed: ${rows[row]}`,
        );
      }
      await sleep(1000); // past any expiry
      assert.equal((await et.capture()).split("\n")[row].trim(), "");
      await typeInAll([et, ssh], [enter]);
      await et.waitFor(/^got 7$/m);
      await sameScreens(et, ssh);

      // A program that echoes the first three keys as typed, then upper
      // case: the first confirm the epoch, the next are shown as typed,
      // refuted by the echo and repainted with the server's glyphs.
      const upper =
        'python3 -c \'import os,tty; tty.setraw(0); os.write(1,b"RE"+b"ADY\\r\\n"); n=0\n' +
        'while True:\n c=os.read(0,1)\n if c==b"q": break\n' +
        " n+=1; os.write(1, c if n<=3 else c.upper())'";
      await typeInAll([et, ssh], [{ text: upper }, enter]);
      await et.waitFor(/^READY/m);
      await ssh.waitFor(/^READY/m);
      await typeInAll([et, ssh], chars("abcdefgh"));
      await et.waitFor("abcDEFGH");
      await sameScreens(et, ssh);
      assert.ok(!(await et.capture()).includes("abcd"), "no lower-case left");
      await typeInAll([et, ssh], [{ text: "q" }]);
    }),
});

Deno.test({
  ...E2E_TEST,
  name: "vim insert mode at 200 ms round trip ends on the same screen as ssh",
  fn: () =>
    sideBySide(async (et, ssh, world) => {
      await typeInAll([et, ssh], [
        ...chars(`vim -u NONE -N -n ${world.dir}/v.txt`),
        enter,
      ]);
      await et.waitFor(/^~\s*$/m);
      await sameScreens(et, ssh);
      await typeInAll([et, ssh], [{ text: "i" }, ...chars("typing in vim")]);
      // Shown before the echo: the round trip is 200 ms, a key 70 ms.
      assert.match(await et.capture(), /^typing in vim/m, "local in vim");
      await typeInAll([et, ssh], [
        ...chars(" feels local"),
        { keys: ["BSpace"] },
        { keys: ["BSpace"] },
        ...chars("al, and ends right"),
        { keys: ["Escape"] },
      ]);
      await et.waitFor("typing in vim feels local, and ends right");
      await sameScreens(et, ssh);
      await typeInAll([et, ssh], [...chars(":q!"), enter]);
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "after floods the model skipped, typed keys show at once at the right cells (the same screen as ssh's before the echo), and the line ends as ssh's",
  fn: () =>
    sideBySide(async (et, ssh, world, proxy) => {
      // ~3.9 MB of plain text each, the prompt right behind it. On a fast
      // link a flood tends to come without a lull (past 2 MiB the model
      // keeps only a summary and its last 64 KiB), on the slow one in bursts
      // a round trip apart (each lull parses only the last screen); which
      // one depends on timing, and either must leave the model exact.
      const shortcuts = async () =>
        (await Deno.readTextFile(`${world.dir}/client.log`)).match(
          /model: .* bytes of output, parsed only the last \d+: exact/g,
        )?.length ?? 0;
      const floodAt = async (delayMs: number, last: number) => {
        proxy.setDelay(delayMs);
        const before = await shortcuts();
        await typeInAll([et, ssh], [
          { text: `seq -f 'flood line %g' ${last - 179_999} ${last}` },
          enter,
        ]);
        const end = new RegExp(`^flood line ${last}$`, "m");
        await ssh.waitFor(end, 60_000);
        await et.waitFor(end, 60_000);
        await sameScreens(et, ssh);
        await waitUntil(
          async () => await shortcuts() > before,
          5000,
          "the model parsing only the flood's last screenful",
        );
      };
      await floodAt(0, 180_000);
      await floodAt(DELAY_MS, 360_000);
      // Echoes at the slow link again before typing (adaptive: shown while
      // the echo is slow).
      // Each line's prompt back before the next key: a key typed ahead is
      // echoed by ssh's tty before the prompt ("troot@..."), a race that
      // says nothing about prediction.
      const prompted = async (lines: RegExp) => {
        await ssh.waitFor(lines, 10_000);
        await et.waitFor(lines, 10_000);
      };
      await typeInAll([et, ssh], [...chars("true"), enter]);
      await prompted(/# true\n[^\n]*#\s*$/);
      await typeInAll([et, ssh], [...chars("true"), enter]);
      await prompted(/# true\n[^\n]*# true\n[^\n]*#\s*$/);
      // The first key after Enter waits for its echo (a new epoch); the
      // others show before theirs (200 ms away: a key is 70 ms), over the
      // rows the flood left, exactly where the shell puts them.
      const line = "echo typed after the flood";
      await typeInAll([et, ssh], chars(line));
      const [etEarly, etStyled] = [
        await et.capture(),
        await et.captureStyled(),
      ];
      assert.ok(
        etStyled.includes("\x1b[4m"),
        `the last keys were predicted (underlined until their echo):\n${etStyled}`,
      );
      // ssh's echo is local, but on a loaded machine it may lag a little.
      await ssh.waitFor(line);
      assert.equal(etEarly, await ssh.capture(), "et before the echo vs ssh");
      await typeInAll([et, ssh], [enter]);
      await et.waitFor(/^typed after the flood$/m);
      await sameScreens(et, ssh);
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "--predict never: the terminal gets exactly the remote's bytes, no byte before the echo",
  fn: () =>
    withProxiedTerminal({
      extra: ["--predict", "never"],
      prepare: (proxy) => proxy.setDelay(DELAY_MS),
    }, async ({ world, client, mark }) => {
      // Nothing of a keystroke shows before its echo comes back.
      for (const key of "echo never") {
        const before = client.length;
        const typed = performance.now();
        await client.type(key);
        await client.waitFor(key, { from: before, timeoutMs: 5000 });
        const took = performance.now() - typed;
        assert.ok(took >= DELAY_MS * 2 * 0.8, `${key} showed after ${took} ms`);
      }
      await client.type("\r");
      const stream = await streamExact(client, {
        dir: world.dir,
        from: mark.end,
        bytes: 256 * 1024,
        chunkBytes: 64 * 1024,
        seed: 7,
        pauseS: 0.05,
      });
      assert.equal(stream.bytes, 256 * 1024);
      assert.ok(
        !client.text.includes("\x1b[6n"),
        "no question to the terminal",
      );
    }),
});

/** The keys both runs of the byte-identity test type, and their pacing. */
const SCRIPTED = [
  // A full clear: a model that got no cursor report (this harness gives
  // none) is exact again after it, so a predicting client would predict.
  "PS1='$ '; clear\r",
  "printf '<<%s>>' BE''GIN\r",
  ..."echo typed while the echo is slow",
  "\r",
  ..."ab\x7fc",
  "\x15",
  "printf '<<%s>>' DO''NE\r",
];

/**
 * Types {@linkcode SCRIPTED} into a session, a key every 70 ms, and
 * returns the bytes between the BEGIN and DONE markers as `output` shows
 * them (latin1).
 */
async function scriptedSection(
  type: (key: string) => Promise<void>,
  output: () => string,
): Promise<string> {
  const prompts = (text: string) => text.split("$ ").length - 1;
  for (const key of SCRIPTED) {
    // The prompt after this line's output, not the one before it (the
    // echo is 200 ms away: typing on at once let keys land before the
    // output, at another place in each run). The line's own echo may
    // hold "$ " too.
    const wanted = prompts(output()) + prompts(key) + 1;
    await type(key);
    await sleep(KEY_GAP_MS);
    if (key.endsWith("\r")) {
      await waitUntil(
        () => prompts(output()) >= wanted && output().endsWith("$ "),
        10_000,
        "the prompt",
      );
    }
  }
  await waitUntil(() => output().includes("<<DONE>>"), 10_000, "DONE");
  const text = output();
  return text.slice(
    text.indexOf("<<BEGIN>>") + 9,
    text.indexOf("<<DONE>>"),
  );
}

Deno.test({
  ...E2E_TEST,
  name:
    "--predict never on a terminal writes byte for byte what a client that cannot predict (stdout captured) writes",
  fn: () =>
    withProxiedTerminal({
      extra: ["--predict", "never"],
      prepare: (proxy) => proxy.setDelay(DELAY_MS),
    }, async ({ world, proxy, client }) => {
      const onPty = await scriptedSection(
        (key) => client.type(key),
        () => client.text,
      );
      const piped = new PipedClient(
        world.client(["--pty"], { port: proxy.port }),
        true,
      );
      try {
        await shellAnswers(piped);
        const captured = await scriptedSection(
          (key) => piped.type(key),
          () => new TextDecoder("latin1").decode(piped.bytes()),
        );
        assert.ok(captured.includes("typed while the echo is slow"));
        assert.equal(
          sha256(onPty),
          sha256(captured),
          `the same bytes:\n${JSON.stringify(onPty)}\n${
            JSON.stringify(captured)
          }`,
        );
      } finally {
        await piped.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "--predict always never reaches a captured stdout: a forced pty with piped stdio gets the remote's bytes only",
  fn: () =>
    withProxiedSession({
      extra: ["--pty", "--predict", "always"],
      keepBytes: true,
      prepare: (proxy) => proxy.setDelay(DELAY_MS),
    }, async ({ client }) => {
      const before = client.stdoutBytes;
      for (const key of "echo piped") {
        await client.type(key);
        await sleep(KEY_GAP_MS);
      }
      await client.type("\r");
      await client.waitFor("\rpiped\r\n");
      const text = new TextDecoder("latin1").decode(
        client.bytes().subarray(before),
      );
      assert.ok(!client.stdout.includes("\x1b[6n"), "no question asked");
      assert.ok(
        // deno-lint-ignore no-control-regex
        !/\x1b\[\d+;\d+H/.test(text),
        `no cursor moves: ${JSON.stringify(text)}`,
      );
    }),
});
