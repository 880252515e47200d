/**
 * `--resume screen` (issue 11): a program prints 200 MB while the path is
 * silent for 30 s; it is never blocked once the session knows the client
 * is away (before that, for the 6 s dead-pipe timeout, it reads 256 KiB
 * ahead as always) and finishes during the outage, the whole stream is in
 * a private log file (same sha256), and once the path is back the screen
 * (its last line included) arrives within a second, instead of 200 MB.
 * In tmux, with the path refused instead: the screen, the notice, and
 * typing with prediction on that ends as echoed. Below the
 * threshold the missed bytes arrive exactly; without the option nothing
 * changes (every byte, no log file).
 *
 * The program is a command on a pty (`--pty`), its output made exact with
 * `stty -opost -echo`, so the log must equal what the test computes.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { patternBytes } from "../helpers/session_pair.ts";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import { TmuxTerminal } from "../helpers/tmux.ts";
import {
  base64Lines,
  markedSection,
  PipedClient,
  sha256,
  sleep,
  tmuxShellAnswers,
  waitUntil,
  withProxiedSession,
} from "./_client.ts";
import { E2E_TEST, shellQuote, withWorld } from "./_world.ts";
import { HOST_PROCESS_NAME } from "../../src/terminal/host_socket.ts";

/** One line of the big output (`yes` repeats it): 64 bytes with its \n. */
const LINE = "the quick brown fox jumps over the lazy dog 0123456789 ~~~~~~~~";
/** The output the issue names. */
const BIG_BYTES = 200_000_000;
/** The outage the issue names. */
const OUTAGE_MS = 30_000;

/**
 * sha256 of `lines` lines `LINE\r\n` (what `yes LINE` becomes on a pty)
 * between `prefix` and `suffix`, computed without holding them all.
 */
function yesHash(prefix: string, lines: number, suffix: string): string {
  const hash = createHash("sha256").update(prefix);
  const line = LINE + "\r\n";
  const block = new TextEncoder().encode(
    line.repeat(Math.floor(1024 * 1024 / line.length)),
  );
  let left = lines * line.length;
  while (left >= block.length) {
    hash.update(block);
    left -= block.length;
  }
  hash.update(block.subarray(0, left));
  return hash.update(suffix).digest("hex");
}

/** sha256 of a file, read in pieces. */
async function fileHash(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buffer = new Uint8Array(1024 * 1024);
  for (let n; (n = await file.read(buffer)) !== null;) {
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}

/** Waits for the file `path` to exist. */
async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The user's host's log (all of it, as text). */
async function hostLog(runtimeDir: string): Promise<string> {
  let text = "";
  for await (const entry of Deno.readDir(runtimeDir)) {
    if (/^terminal-.*\.log$/.test(entry.name)) {
      text += await Deno.readTextFile(`${runtimeDir}/${entry.name}`);
    }
  }
  return text;
}

/** The resident memory of process `pid`, in bytes. */
async function rssBytes(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(status.match(/VmRSS:\s+(\d+) kB/)![1]) * 1024;
}

const mb = (bytes: number) => (bytes / 1e6).toFixed(0);

/** Takes the path away: refused, and the live connection cut (RST). */
function refuseAll(proxy: FaultProxy) {
  proxy.setRefuse(true);
  proxy.cut();
}

/** The notice's log path and size, from the client's output. */
const NOTICE =
  /\[et: ([\d.]+ \w+) of output skipped while you were away; all of it is in (\S+) \(([\d.]+ \w+)\)\]/;

/**
 * A command that waits for `<dir>/go`, then prints `body`'s output; `stty`
 * first (no echo; `-opost` for bytes that reach the client unchanged).
 */
function gatedCommand(dir: string, stty: string, body: string): string {
  return `stty ${stty}; printf 'READY\\n'; ` +
    `while [ ! -e ${dir}/go ]; do sleep 0.05; done; ${body}; ` +
    `touch ${dir}/done; sleep 600`;
}

Deno.test({
  ...E2E_TEST,
  name:
    "--resume screen: 200 MB printed during a 30 s blackhole; never blocked while away, all in the 0600 log, the screen back within 1 s",
  fn: async () => {
    // The command names files here; the world's own dir exists too late.
    const dir = await Deno.makeTempDir({ prefix: "et-resume-" });
    try {
      await withProxiedSession({
        privateRuntime: true,
        waitForShell: false,
        extra: ["--resume", "screen", "--pty"],
        command: gatedCommand(
          dir,
          "-echo",
          `yes '${LINE}' | head -c ${BIG_BYTES}; printf '<<<%s>>>' END`,
        ),
      }, async ({ world, proxy, client }) => {
        await client.waitFor("READY", 30_000);
        const host = (await world.terminalProcesses()).find((p) =>
          p.name === HOST_PROCESS_NAME
        );
        assert.ok(host, "the user's host process");
        const rssBefore = await rssBytes(host.pid);
        let rssMost = rssBefore;
        // A silent path, as when a laptop leaves the network: the session
        // learns it only after the dead-pipe timeout (6 s), until then it
        // reads at most 256 KiB ahead.
        proxy.setBlackhole(true);
        const outageStart = performance.now();
        await Deno.writeTextFile(`${dir}/go`, "");
        let finishedAfter = -1;
        while (performance.now() - outageStart < OUTAGE_MS) {
          if (finishedAfter < 0 && await exists(`${dir}/done`)) {
            finishedAfter = performance.now() - outageStart;
          }
          rssMost = Math.max(rssMost, await rssBytes(host.pid));
          await sleep(100);
        }
        assert.ok(
          finishedAfter >= 0,
          "the program printed all 200 MB during the 30 s outage",
        );
        const before = client.stdoutBytes;
        proxy.setBlackhole(false);
        const restored = performance.now();
        await client.waitFor("<<<END>>>", 30_000);
        const screenBackMs = performance.now() - restored;
        await client.waitFor(NOTICE, 5_000);
        const sentAfter = client.stdoutBytes - before;
        const [, missed, logPath, logSize] = client.stdout.match(NOTICE)!;
        console.log(
          `200 MB printed in ${(finishedAfter / 1000).toFixed(1)} s of the ` +
            `outage; screen back ${screenBackMs.toFixed(0)} ms after the ` +
            `path, ${sentAfter} bytes sent then; notice: ${missed} missed, ` +
            `log ${logSize}; host RSS ${mb(rssBefore)} MB before, at most ` +
            `${mb(rssMost)} MB during the outage`,
        );
        // Held: a screen, 1 MiB of output and the transport's window, not
        // 200 MB (the emulator's parsing churns the heap: a wide margin).
        assert.ok(
          rssMost - rssBefore < 150 * 1024 * 1024,
          `the host grew by ${mb(rssMost - rssBefore)} MB`,
        );
        assert.ok(
          screenBackMs < 1000,
          `the screen is back within 1 s (${screenBackMs.toFixed(0)} ms)`,
        );
        // The transport's window (1 MiB) and a screen, never the backlog.
        assert.ok(sentAfter < 4 * 1024 * 1024, `${sentAfter} bytes sent`);

        // The log: the session's private runtime dir, owner only, all of it.
        assert.ok(logPath.startsWith(`${world.runtimeDir}/`), logPath);
        const info = await Deno.stat(logPath);
        assert.equal(info.mode! & 0o777, 0o600, "the log is owner-only");
        const dirInfo = await Deno.stat(world.runtimeDir);
        assert.equal(dirInfo.mode! & 0o077, 0, "its directory is private");
        assert.equal(dirInfo.uid, Deno.uid());
        const prefix = "READY\r\n";
        const suffix = "<<<END>>>";
        const lines = BIG_BYTES / (LINE.length + 1);
        assert.equal(
          info.size,
          prefix.length + lines * (LINE.length + 2) + suffix.length,
        );
        assert.equal(
          await fileHash(logPath),
          yesHash(prefix, lines, suffix),
          "the log holds exactly what the program printed",
        );
        // The person sees the end of the output: the last screen of lines.
        const tail = client.stdout.slice(-20_000);
        assert.ok(
          tail.includes(`${LINE}\r\n${LINE}\r\n`),
          "the screen's lines",
        );
      });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/**
 * A smaller outage: `bytes` missed output (at or below the threshold in
 * screen mode, any size in the default mode) arrives exactly; the log
 * exists only in screen mode.
 */
async function exactAfterOutage(
  extra: string[],
  dataBytes: number,
  expectLog: boolean,
) {
  const dir = await Deno.makeTempDir({ prefix: "et-resume-" });
  try {
    const data = base64Lines(patternBytes(dataBytes, 7));
    await Deno.writeFile(`${dir}/data`, data);
    await withProxiedSession({
      privateRuntime: true,
      waitForShell: false,
      keepBytes: true,
      extra: [...extra, "--pty"],
      command: gatedCommand(
        dir,
        "-opost -echo",
        `printf '<<<%s>>>' BEGIN; cat ${dir}/data; printf '<<<%s>>>' DONE`,
      ),
    }, async ({ world, proxy, client }) => {
      await client.waitFor("READY", 30_000);
      const from = client.stdoutBytes;
      // The path refused (the session knows at once that the client is
      // away; the blackhole is the big test's).
      refuseAll(proxy);
      await Deno.writeTextFile(`${dir}/go`, "");
      await waitUntil(() => exists(`${dir}/done`), 30_000, "the program done");
      await sleep(500);
      proxy.setRefuse(false);
      await client.waitFor("<<<DONE>>>", 30_000);
      const { section } = markedSection(client, from);
      assert.equal(section.length, data.length);
      assert.equal(sha256(section), sha256(data), "every byte, once, in order");
      assert.ok(!client.stdout.includes("[et: "), "no skipped-output notice");
      if (expectLog) {
        // The bytes the session had not sent yet went as they were: some.
        // (The last such line: the first connection wrote one too.)
        const line = [
          ...(await hostLog(world.runtimeDir)).matchAll(
            /client back: (\d+) bytes not sent yet/g,
          ),
        ].at(-1);
        console.log(line?.[0]);
        assert.ok(line && Number(line[1]) > 0, "missed bytes went as bytes");
      }
      const logs = [];
      for await (const entry of Deno.readDir(world.runtimeDir)) {
        if (entry.name.endsWith(".out")) logs.push(entry.name);
      }
      assert.equal(logs.length, expectLog ? 1 : 0, `logs: ${logs}`);
      if (expectLog) {
        const log = await Deno.readFile(`${world.runtimeDir}/${logs[0]}`);
        const expected = new Uint8Array([
          ...new TextEncoder().encode("READY\n<<<BEGIN>>>"),
          ...data,
          ...new TextEncoder().encode("<<<DONE>>>"),
        ]);
        assert.equal(sha256(log), sha256(expected), "the log holds it all");
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  ...E2E_TEST,
  name:
    "--resume screen below the threshold: 0.6 MB printed in an outage (under 1 MiB not yet sent) arrive as exact bytes",
  // Well under the 1 MiB threshold whatever the transport's window took
  // before the session saw the client go (1.1 MB left that to timing).
  fn: () => exactAfterOutage(["--resume", "screen"], 450_000, true),
});

Deno.test({
  ...E2E_TEST,
  name:
    "default resume (bytes): 3 MB missed in an outage arrive exactly, no log file",
  fn: () => exactAfterOutage([], 2_250_000, false),
});

Deno.test({
  ...E2E_TEST,
  name:
    "--resume screen on a real terminal (tmux, prediction on): the screen, the notice, then typing that ends exactly as echoed",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
      const argv = world.client(
        ["--resume", "screen", "--predict", "always"],
        { port: proxy.port },
      );
      const term = await TmuxTerminal.start(["sh", "-c", shellQuote(argv)], {
        cols: 100,
        rows: 30,
      });
      try {
        await tmuxShellAnswers(term);
        await term.type(
          `while [ ! -e ${world.dir}/go ]; do sleep 0.05; done; ` +
            `seq 1 700000; echo END-$((6*7)); touch ${world.dir}/done`,
        );
        await term.sendKeys("Enter");
        await sleep(300); // the line's echo is home before the path goes
        refuseAll(proxy);
        await Deno.writeTextFile(`${world.dir}/go`, "");
        await waitUntil(
          () => exists(`${world.dir}/done`),
          30_000,
          "the program finished while the client was away",
        );
        proxy.setRefuse(false);
        const restored = performance.now();
        const screen = await term.waitFor(/skipped while you were away/);
        const backMs = performance.now() - restored;
        const rows = screen.split("\n");
        const at = rows.findIndex((row) => row === "700000");
        assert.ok(at > 0, `the last line is on screen:\n${screen}`);
        assert.equal(rows[at - 1], "699999");
        assert.equal(rows[at + 1], "END-42");
        // (Wrapped at the pane's width: read it as one line.)
        assert.match(
          screen.replaceAll("\n", ""),
          /\[et: [\d.]+ MiB of output skipped while you were away; all of it is in \S+\.out \([\d.]+ MiB\)\]/,
        );
        console.log(
          `screen back in tmux ${backMs.toFixed(0)} ms after the path`,
        );
        // The 1 s bound is the big test's (a blackhole, exact timing); here
        // the client's redial backoff (up to 500 ms after a refusal) and
        // tmux's polling add to it, and tmux shares a loaded machine.
        assert.ok(backMs < 3000, `${backMs.toFixed(0)} ms`);
        // Typing after it: predicted, then confirmed; nothing stray stays.
        await term.type("echo AFTER-$((6*7))");
        await term.sendKeys("Enter");
        await term.waitFor(/^AFTER-42/m);
        await waitUntil(
          async () => !(await term.captureStyled()).includes("\x1b[4m"),
          3000,
          "no underlined guess left",
        );
        const end = await term.capture();
        assert.ok(end.includes("echo AFTER-$((6*7))"), end);
      } finally {
        await term.kill();
        await proxy.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "--resume screen after kill -9 of the client: --attach gets the screen and the notice, not the 4.7 MB printed meanwhile",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const dir = world.dir;
      const a = new PipedClient([
        ...world.client(["--resume", "screen", "--pty"]),
        gatedCommand(
          dir,
          "-echo",
          `seq 1 700000; printf '<<<%s>>>' END`,
        ),
      ]);
      let b: PipedClient | undefined;
      try {
        await a.waitFor("READY", 30_000);
        a.signal("SIGKILL");
        await a.exit();
        await Deno.writeTextFile(`${dir}/go`, "");
        await waitUntil(() => exists(`${dir}/done`), 30_000, "program done");
        b = new PipedClient(world.client(["--attach"]));
        await b.waitFor("<<<END>>>", 30_000);
        await b.waitFor(NOTICE, 5_000);
        assert.ok(b.stdout.includes("699999\r\n700000\r\n<<<END>>>"));
        // The attached client got a screen and some scrollback, far less
        // than what was printed (the old connection's unacknowledged
        // window included).
        assert.ok(b.stdoutBytes < 2_000_000, `${b.stdoutBytes} bytes`);
        const [, , logPath] = b.stdout.match(NOTICE)!;
        const expected = new TextEncoder().encode(
          "READY\r\n" +
            Array.from({ length: 700000 }, (_, i) => `${i + 1}\r\n`).join(
              "",
            ) + "<<<END>>>",
        );
        assert.equal(sha256(await Deno.readFile(logPath)), sha256(expected));
      } finally {
        await a.close();
        await b?.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "--resume screen on a real terminal (tmux): the program's DEC graphics and saved cursor hold across the snapshot",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
      const argv = world.client(["--resume", "screen"], { port: proxy.port });
      const term = await TmuxTerminal.start(["sh", "-c", shellQuote(argv)], {
        cols: 100,
        rows: 30,
      });
      const dir = world.dir;
      try {
        await tmuxShellAnswers(term);
        // While away: 2 MB, then the cursor saved at 5;1 (ASCII), DEC
        // graphics designated. Once back: graphics, then DECRC and a Y.
        await term.type(
          `while [ ! -e ${dir}/go ]; do sleep 0.05; done; seq 1 300000; ` +
            `printf '\\033[5;1H\\0337\\033(0\\033[20;1H'; touch ${dir}/done; ` +
            `while [ ! -e ${dir}/go2 ]; do sleep 0.05; done; ` +
            `printf 'lqk\\0338Y\\033(B'; echo; echo END-$((6*7))`,
        );
        await term.sendKeys("Enter");
        await sleep(300); // the line's echo is home before the path goes
        refuseAll(proxy);
        await Deno.writeTextFile(`${dir}/go`, "");
        await waitUntil(() => exists(`${dir}/done`), 30_000, "printed");
        proxy.setRefuse(false);
        await term.waitFor(/skipped while you were away/, 10_000);
        await Deno.writeTextFile(`${dir}/go2`, "");
        const screen = await term.waitFor(/^END-42/m, 10_000);
        const rows = screen.split("\n");
        // tmux keeps line-drawing cells as their ASCII letters, marked: its
        // styled capture shifts them out (SO … SI).
        const styled = await term.captureStyled();
        assert.ok(styled.includes("\x0elqk\x0f"), `graphics:\n${styled}`);
        assert.match(rows[4], /^Y\d+$/, "DECRC went back to 5;1");
      } finally {
        await term.kill();
        await proxy.close();
      }
    }),
});
