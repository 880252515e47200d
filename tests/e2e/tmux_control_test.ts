/**
 * tmux control mode (`tmux -CC`, what iTerm2 speaks) through et: a real
 * control client on the remote, driven over the session from a real
 * terminal, its stream parsed strictly (blocks paired, `%output`
 * decodable, framing intact) and its content checked byte for byte: a
 * command's answer, a large burst of pane output, and the large burst of
 * an attach (the pane's whole history, as iTerm2 asks for it) — with the
 * path cut by the fault proxy in the middle of both bursts.
 */

import assert from "node:assert/strict";
import type { FaultProxy } from "../helpers/fault_proxy.ts";
import { PtyProcess } from "../helpers/pty_process.ts";
import {
  CONTROL_END,
  CONTROL_START,
  type ControlStream,
  parseControlStream,
} from "../helpers/tmux_control.ts";
import {
  ptyShellAnswers,
  sha256,
  waitUntil,
  withProxiedTerminal,
} from "./_client.ts";
import { E2E_TEST, withWorld } from "./_world.ts";

/** Lines the pane prints in each burst. */
const LINES = 60_000;
const latin1 = new TextDecoder("latin1");

/** `seq 1 n` as the pane's terminal writes it (ONLCR: \r\n). */
function seqText(n: number, eol: string): string {
  let out = "";
  for (let i = 1; i <= n; i++) out += `${i}${eol}`;
  return out;
}

/**
 * Types a control-mode command (a line) and waits for the end of a block
 * that begins after it was typed; returns where the block ends.
 */
async function command(
  client: PtyProcess,
  line: string,
  timeoutMs = 30_000,
): Promise<number> {
  const from = client.length;
  await client.type(`${line}\n`);
  const end = await client.waitFor(
    /(?:^|\n)%begin \d+ \d+ \d+\r?\n(.*\r?\n)*?%(end|error) \d+ \d+ \d+\r?\n/,
    { from, timeoutMs },
  );
  return end.end;
}

/** The control stream that opened at `start` (just after its DCS), read. */
function streamFrom(client: PtyProcess, start: number, complete: boolean) {
  const text = client.text.slice(start);
  const stop = text.indexOf(CONTROL_END);
  return parseControlStream(stop < 0 ? text : text.slice(0, stop), complete);
}

Deno.test({
  ...E2E_TEST,
  name:
    "tmux -CC through et: control lines intact and well formed, a large %output burst and a large attach burst hash-exact across cuts",
  fn: () =>
    withProxiedTerminal(
      { privateRuntime: true },
      async ({ world, client, proxy }) => {
        const socket = `et-cc-${crypto.randomUUID().slice(0, 8)}`;
        const conf = `${world.dir}/tmux.conf`;
        await Deno.writeTextFile(
          conf,
          "set -g history-limit 200000\nset -g status off\n",
        );
        const tmux = `tmux -L ${socket} -f ${conf}`;
        try {
          // 1. A new session in control mode.
          await client.type(`${tmux} -CC new-session -s cc -x 120 -y 40\r`);
          const opened = await client.waitFor(CONTROL_START, {
            timeoutMs: 20_000,
          });
          const start = opened.end;
          // The answer to new-session itself, then a plain command's answer.
          await client.waitFor(/%session-changed \$\d+ cc\r?\n/, {
            from: start,
          });
          let at = await command(
            client,
            "list-windows -F '#{window_name} #{window_width}x#{window_height}'",
          );
          let stream = streamFrom(client, start, true);
          const listed = stream.blocks.at(-1)!;
          assert.equal(listed.error, false);
          assert.equal(listed.lines.length, 1, JSON.stringify(listed));
          assert.match(listed.lines[0], /^\S+ \d+x\d+$/);

          // 2. A large burst of %output, cut twice while it streams.
          const burstDone = "BURST-42-DONE\\015\\012";
          const burstCuts = cutMidway(
            proxy,
            [100_000, 300_000],
            () => client.text.includes(burstDone, at),
          );
          await client.type(
            `send-keys -t cc 'clear; seq 1 ${LINES}; echo BURST-$((6*7))-DONE' Enter\n`,
          );
          await client.waitFor(burstDone, { from: at, timeoutMs: 60_000 });
          assert.deepEqual(await burstCuts, [false, false], "cut mid-burst");
          at = await command(client, "display-message -p ok");
          stream = streamFrom(client, start, true);
          const pane = [...stream.output.keys()];
          assert.equal(pane.length, 1, `one pane: ${pane}`);
          const shown = latin1.decode(stream.output.get(pane[0]));
          const expected = seqText(LINES, "\r\n") + "BURST-42-DONE\r\n";
          // After `clear`'s escapes, the first number starts the burst.
          const first = shown.search(/(?<!\d)1\r\n2\r\n3\r\n/);
          assert.ok(first > 0, "the burst's first lines");
          const got = shown.slice(first, first + expected.length);
          assert.equal(got.length, expected.length, "burst length");
          assert.equal(
            sha256(got),
            sha256(expected),
            "the burst, byte for byte",
          );

          // 3. Detach: the control stream ends with %exit and ST.
          await client.type("detach-client\n");
          const closed = await client.waitFor(CONTROL_END, {
            from: at,
            timeoutMs: 20_000,
          });
          stream = streamFrom(client, start, true);
          assert.ok(stream.exited, "%exit before ST");
          assertIntact(stream);

          // 4. Attach again; ask for the whole history, as iTerm2 does on
          // attach: one large block, cut twice while it streams.
          await client.type(`${tmux} -CC attach -t cc\r`);
          const reopened = await client.waitFor(CONTROL_START, {
            from: closed.end,
            timeoutMs: 20_000,
          });
          const again = reopened.end;
          await client.waitFor(/%session-changed \$\d+ cc\r?\n/, {
            from: again,
          });
          const historyEnd =
            /\nBURST-42-DONE\r?\n(.*\r?\n)*%end \d+ \d+ \d+\r?\n/;
          const attachCuts = cutMidway(
            proxy,
            [80_000, 200_000],
            () => historyEnd.test(client.text.slice(again)),
          );
          await client.type("capture-pane -p -J -S - -E - -t cc\n");
          await client.waitFor(historyEnd, { from: again, timeoutMs: 60_000 });
          assert.deepEqual(await attachCuts, [false, false], "cut mid-attach");
          await client.type("detach-client\n");
          await client.waitFor(CONTROL_END, { from: again, timeoutMs: 20_000 });
          const second = streamFrom(client, again, true);
          assertIntact(second);
          const history = second.blocks.find((b) => b.lines.includes("1"));
          assert.ok(history, "the capture block");
          const firstLine = history.lines.indexOf("1");
          const captured = history.lines.slice(firstLine, firstLine + LINES + 1)
            .join("\n") + "\n";
          const wanted = seqText(LINES, "\n") + "BURST-42-DONE\n";
          assert.equal(captured.length, wanted.length, "attach burst length");
          assert.equal(
            sha256(captured),
            sha256(wanted),
            "the attach burst, line for line",
          );
          console.log(
            `tmux -CC: ${
              stream.lineCount + second.lineCount
            } control lines, ${client.length} bytes through et, ${proxy.stats.cuts} cuts`,
          );
          assert.ok(proxy.stats.cuts >= 4, `cut ${proxy.stats.cuts} times`);
        } catch (error) {
          await Deno.writeTextFile("/tmp/et-cc-debug.txt", client.text);
          throw error;
        } finally {
          await new Deno.Command("tmux", {
            args: ["-L", socket, "kill-server"],
            stderr: "null",
          })
            .output().catch(() => {});
        }
      },
    ),
});

/**
 * Cuts every connection through `proxy` once each of `thresholds` bytes
 * have gone down (toward the client) since the call: cuts that land in
 * the middle of a burst whatever the machine's speed. Resolves, after the
 * last cut, with what `arrived` said at each cut (false: the burst's end
 * had not reached the client yet).
 */
function cutMidway(
  proxy: FaultProxy,
  thresholds: number[],
  arrived: () => boolean,
): Promise<boolean[]> {
  const seen: boolean[] = [];
  let down = 0;
  let next = 0;
  let cutting = false;
  return new Promise((resolve) => {
    proxy.setTap((up, bytes) => {
      if (up || next >= thresholds.length || cutting) return;
      down += bytes;
      if (down < thresholds[next]) return;
      cutting = true;
      const arrivedNow = arrived();
      // Not from inside the proxy's own forwarding.
      setTimeout(() => {
        cutting = false;
        // Nothing open (the client is between connections): the cut
        // happens on the next bytes down instead, so each threshold is
        // one real cut.
        if (proxy.cut() === 0) return;
        next++;
        seen.push(arrivedNow);
        if (seen.length === thresholds.length) {
          proxy.setTap(null);
          resolve(seen);
        }
      }, 0);
    });
  });
}

/** Every block ended, no command failed. */
function assertIntact(stream: ControlStream) {
  assert.ok(stream.blocks.length >= 2, "blocks seen");
  for (const block of stream.blocks) {
    assert.equal(
      block.error,
      false,
      `block ${block.id}: ${block.lines.join(" | ")}`,
    );
  }
}

/**
 * Attaches `tmux -CC` in the shell of `client` to session `cc`, asks for
 * the pane's whole history and returns how long its block took to arrive
 * and its lines; detaches again.
 */
async function timedAttachBurst(
  client: PtyProcess,
  tmux: string,
): Promise<{ ms: number; lines: string[] }> {
  const from = client.length;
  await client.type(`${tmux} -CC attach -t cc\r`);
  const opened = await client.waitFor(CONTROL_START, {
    from,
    timeoutMs: 20_000,
  });
  await client.waitFor(/%session-changed \$\d+ cc\r?\n/, { from: opened.end });
  const asked = client.length;
  const t0 = performance.now();
  await client.type("capture-pane -p -J -S - -E - -t cc\n");
  await client.waitFor(/\nBURST-DONE\r?\n(.*\r?\n)*%end \d+ \d+ \d+\r?\n/, {
    from: asked,
    timeoutMs: 60_000,
  });
  const ms = performance.now() - t0;
  await client.type("detach-client\n");
  await client.waitFor(CONTROL_END, { from: asked, timeoutMs: 20_000 });
  const stream = streamFrom(client, opened.end, true);
  assertIntact(stream);
  const block = stream.blocks.find((b) => b.lines.includes("BURST-DONE"))!;
  return { ms, lines: block.lines };
}

Deno.test({
  ...E2E_TEST,
  name:
    "tmux -CC attach burst: et against ssh in the same run, both line for line",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const socket = `et-cc-${crypto.randomUUID().slice(0, 8)}`;
      const conf = `${world.dir}/tmux.conf`;
      await Deno.writeTextFile(
        conf,
        "set -g history-limit 400000\nset -g status off\n",
      );
      const tmux = `tmux -L ${socket} -f ${conf}`;
      const count = 200_000;
      const tmuxRun = (args: string[]) =>
        new Deno.Command("tmux", {
          args: ["-L", socket, "-f", conf, ...args],
          stdout: "piped",
          stderr: "null",
        }).output();
      try {
        // The remote is this machine: fill the pane's history directly.
        await tmuxRun([
          "new-session",
          "-d",
          "-s",
          "cc",
          "-x",
          "120",
          "-y",
          "40",
          `seq 1 ${count}; echo BURST-DONE; exec cat`,
        ]);
        await waitUntil(
          async () => {
            const out = await tmuxRun(["capture-pane", "-p", "-t", "cc"]);
            return new TextDecoder().decode(out.stdout).includes("BURST-DONE");
          },
          30_000,
          "the history filled",
        );
        const wanted = Array.from({ length: count }, (_, i) => `${i + 1}`)
          .concat("BURST-DONE");
        const check = (lines: string[], who: string) => {
          const first = lines.indexOf("1");
          const got = lines.slice(first, first + wanted.length);
          assert.equal(sha256(got.join("\n")), sha256(wanted.join("\n")), who);
        };
        const viaEt = PtyProcess.spawn(world.client([]));
        const viaSsh = PtyProcess.spawn([
          ...world.sshd.sshCommand.split(" "),
          "-tt",
          world.sshd.hostAlias,
        ]);
        try {
          await ptyShellAnswers(viaEt);
          await ptyShellAnswers(viaSsh);
          const results: Record<string, number[]> = { et: [], ssh: [] };
          for (let round = 0; round < 3; round++) {
            for (
              const [who, client] of [["et", viaEt], ["ssh", viaSsh]] as const
            ) {
              const { ms, lines } = await timedAttachBurst(client, tmux);
              check(lines, who);
              results[who].push(ms);
            }
          }
          const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1];
          console.log(
            `tmux -CC attach burst (${count} lines of history, ~${
              Math.round(count * 7 / 1024)
            } KiB): et ${Math.round(median(results.et))} ms, ssh ${
              Math.round(median(results.ssh))
            } ms (median of 3; et ${results.et.map(Math.round)}, ssh ${
              results.ssh.map(Math.round)
            })`,
          );
        } finally {
          await viaEt.close();
          await viaSsh.close();
        }
      } finally {
        await tmuxRun(["kill-server"]).catch(() => {});
      }
    }),
});
