/**
 * `et` in a real terminal, driven as a person would with tmux: the login
 * shell, a command, a full-screen program, a resize, Ctrl-C, the exit
 * status, and the local terminal restored afterwards.
 */
import assert from "node:assert/strict";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import { TmuxTerminal } from "../helpers/tmux.ts";
import { sleep, tmuxShellAnswers } from "./_client.ts";
import { E2E_TEST, shellQuote, withWorld } from "./_world.ts";

/** Runs `script` with bash (no rc files) in a new 100×30 tmux terminal. */
function bashInTmux(script: string): Promise<TmuxTerminal> {
  return TmuxTerminal.start(["bash", "--norc", "--noprofile", "-c", script], {
    cols: 100,
    rows: 30,
  });
}

Deno.test({
  ...E2E_TEST,
  name: "et in tmux: shell, vi, resize, Ctrl-C, exit status, terminal restored",
  fn: () =>
    withWorld({}, async (world) => {
      const d = world.dir;
      // A wrapper records the local tty settings before and after et.
      const script = `stty -g > ${d}/before; ${shellQuote(world.client())}; ` +
        `echo "ET_EXIT=$?"; stty -g > ${d}/after; sleep 600`;
      const term = await bashInTmux(script);
      try {
        // The login shell answers.
        await tmuxShellAnswers(term);

        // A full-screen program renders, takes input and leaves cleanly.
        await term.type(`vi ${d}/vi.txt`);
        await term.sendKeys("Enter");
        await term.waitFor(/^~\s*$/m);
        await term.type("ihello from vi");
        await term.sendKeys("Escape");
        await term.waitFor("hello from vi");
        await term.type(":wq");
        await term.sendKeys("Enter");
        // Wait for vi to give the screen back: typeahead sent while it exits
        // is swallowed by vi, as it would be for a person typing that fast.
        await term.waitFor(/vi\.txt\s*\n.*[#$] *$/m);
        await term.type(`cat ${d}/vi.txt`);
        await term.sendKeys("Enter");
        await term.waitFor(/^hello from vi\s*$/m);

        // A resize reaches the remote pty.
        await term.resize(120, 40);
        await sleep(300);
        await term.type("stty size");
        await term.sendKeys("Enter");
        await term.waitFor(/^40 120\s*$/m);

        // Ctrl-C interrupts a running program.
        await term.type("sleep 100");
        await term.sendKeys("Enter");
        await sleep(500);
        await term.sendKeys("C-c");
        await term.type("echo RC=$?");
        await term.sendKeys("Enter");
        await term.waitFor(/^RC=130/m, 5000);

        // The remote exit status becomes et's, and the terminal is restored.
        await term.type("exit 3");
        await term.sendKeys("Enter");
        await term.waitFor(/^ET_EXIT=3/m, 15_000);
        await sleep(300);
        const before = await Deno.readTextFile(`${d}/before`);
        const after = await Deno.readTextFile(`${d}/after`);
        assert.ok(before.length > 10);
        assert.equal(after, before, "local terminal settings restored");
      } finally {
        await term.kill();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "Ctrl-C during a flood of output: prompt back and output stopped within 1 s",
  fn: () =>
    withWorld({}, async (world) => {
      const term = await bashInTmux(`${shellQuote(world.client())}; sleep 600`);
      try {
        await tmuxShellAnswers(term);
        await term.type("cat /dev/urandom | base64");
        await term.sendKeys("Enter");
        await sleep(1500);
        const sent = Date.now();
        await term.sendKeys("C-c");
        await term.type("echo STOPPED-$((2+2))");
        await term.sendKeys("Enter");
        await term.waitFor(/^STOPPED-4/m, 5000);
        const elapsed = Date.now() - sent;
        // Output has stopped: the screen no longer changes.
        const first = await term.capture();
        await sleep(500);
        assert.equal(await term.capture(), first, "output stopped");
        console.log(`Ctrl-C to prompt: ${elapsed} ms`);
        assert.ok(elapsed < 1000, `took ${elapsed} ms`);
      } finally {
        await term.kill();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name: "a full-screen program is repainted after an outage notice",
  fn: () =>
    withWorld({}, async (world) => {
      const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
      let term: TmuxTerminal | undefined;
      try {
        const file = `${world.dir}/lines.txt`;
        await Deno.writeTextFile(
          file,
          Array.from({ length: 10 }, (_, i) => `line ${i + 1} of the file`)
            .join("\n") + "\n",
        );
        term = await bashInTmux(
          `${shellQuote(world.client([], { port: proxy.port }))}; sleep 600`,
        );
        await tmuxShellAnswers(term);
        await term.type(`vi ${file}`);
        await term.sendKeys("Enter");
        await term.waitFor(/^line 1 of the file/m);
        // An outage long enough to be announced on the screen.
        proxy.cut();
        proxy.setRefuse(true);
        await term.waitFor("[et: connection lost, reconnecting…]", 5000);
        await sleep(1500);
        proxy.setRefuse(false);
        await term.waitFor(/^line 1 of the file/m, 5000);
        // vi repainted: the notices are gone and the file is whole on screen.
        const deadline = Date.now() + 5000;
        let screen = await term.capture();
        while (screen.includes("[et:") && Date.now() < deadline) {
          await sleep(100);
          screen = await term.capture();
        }
        assert.ok(
          !screen.includes("[et:"),
          `notices left on screen:\n${screen}`,
        );
        const lines = screen.split("\n");
        for (let i = 1; i <= 10; i++) {
          assert.equal(lines[i - 1].trimEnd(), `line ${i} of the file`, screen);
        }
        await term.type(":q");
        await term.sendKeys("Enter");
      } finally {
        await term?.kill();
        await proxy.close();
      }
    }),
});
