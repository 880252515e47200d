/**
 * Long outages of the path or of the client itself: a program that prints
 * 20 MB and finishes while the path is silent, and a client stopped for
 * 20 s. Every byte arrives, nothing arrives twice, the session never ends.
 */

import assert from "node:assert/strict";
import { patternBytes } from "../helpers/session_pair.ts";
import {
  assertConsecutive,
  base64Lines,
  counterValues,
  markedSection,
  sha256,
  shellAnswers,
  sleep,
  startCounter,
  waitUntil,
  withProxiedSession,
  withSession,
} from "./_client.ts";
import { E2E_TEST } from "./_world.ts";

Deno.test({
  ...E2E_TEST,
  name:
    "20 MB printed into a 15 s blackhole: the program finishes during the outage, every byte arrives after it",
  fn: () =>
    withProxiedSession({
      privateRuntime: true,
      keepBytes: true,
      // The data is written before the shell is asked to answer.
      waitForShell: false,
    }, async ({ world, proxy, client }) => {
      const data = base64Lines(patternBytes(15_000_000, 3));
      assert.ok(data.length >= 20_000_000);
      const dataFile = `${world.dir}/big.txt`;
      const doneFile = `${world.dir}/done`;
      await Deno.writeFile(dataFile, data);
      await shellAnswers(client);

      const before = client.stdoutBytes;
      // The line's echo is a few hundred bytes: past 64 KiB down, the
      // output flows. Blackhole the path right then, from the tap (before
      // that chunk is forwarded).
      let down = 0;
      let started: () => void = () => {};
      const outputStarted = new Promise<void>((resolve) => started = resolve);
      proxy.setTap((up, bytes) => {
        if (up || (down += bytes) < 64 * 1024) return;
        proxy.setTap(null);
        proxy.setBlackhole(true);
        started();
      });
      await client.type(
        `stty -opost -echo; printf '<<<%s>>>' BEGIN; cat ${dataFile}; ` +
          `printf '<<<%s>>>' DONE; date +%s.%N > ${doneFile}; stty opost echo\n`,
      );
      await outputStarted;
      const outageStart = performance.now();
      const deliveredBefore = client.stdoutBytes - before;
      let finishedAfter = -1;
      while (performance.now() - outageStart < 15_000) {
        if (finishedAfter < 0) {
          try {
            await Deno.stat(doneFile);
            finishedAfter = performance.now() - outageStart;
          } catch { /* not yet */ }
        }
        await sleep(100);
      }
      assert.ok(
        finishedAfter >= 0,
        "the program finished during the 15 s outage (its done file exists)",
      );
      proxy.setBlackhole(false);
      const healed = performance.now();
      await client.waitFor("<<<DONE>>>", 60_000);
      console.log(
        `${deliveredBefore} bytes in before the blackhole; the program ` +
          `finished ${finishedAfter.toFixed(0)} ms into it; the rest arrived ` +
          `${(performance.now() - healed).toFixed(0)} ms after it healed`,
      );
      const { start, end, section } = markedSection(client, before);
      assert.equal(end - start, data.length, "byte count between the markers");
      assert.equal(sha256(section), sha256(data));
      assert.ok(deliveredBefore < data.length / 2, "most of it was still due");

      await client.type("exit 0\n");
      assert.equal(await client.exit(30_000), 0, `stderr: ${client.stderr}`);
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "a client stopped (SIGSTOP) for 20 s resumes within 2 s of SIGCONT, with no gap in the output; the session never ended",
  fn: () =>
    withSession({
      privateRuntime: true,
      // This test sees its shell answer with the shell's pid.
      waitForShell: false,
    }, async ({ world, client }) => {
      try {
        await client.type("echo SHELL-$$-PID\n");
        await client.waitFor(/SHELL-\d+-PID\r\n/, 30_000);
        const shell = client.stdout.match(/SHELL-(\d+)-PID\r\n/)![1];
        const countFile = `${world.dir}/count`;
        await startCounter(client, { file: countFile });
        client.signal("SIGSTOP");
        await sleep(20_000);
        const remote = Number(await Deno.readTextFile(countFile));
        client.signal("SIGCONT");
        const resumed = performance.now();
        await waitUntil(
          () => counterValues(client.stdout).includes(remote),
          10_000,
          () =>
            `<n:${remote}> after SIGCONT; seen up to ${
              Math.max(...counterValues(client.stdout))
            }; stderr: ${client.stderr}`,
        );
        const took = performance.now() - resumed;
        console.log(
          `the counter (${remote}) reached the client ${
            took.toFixed(0)
          } ms after SIGCONT`,
        );
        assert.ok(took < 2000, `resumed only ${took} ms after SIGCONT`);

        await client.type("\x03");
        await sleep(300);
        await client.type("echo SHELL-$$-AGAIN\n");
        await client.waitFor(`SHELL-${shell}-AGAIN`, 10_000);
        assertConsecutive(counterValues(client.stdout));
        assert.doesNotMatch(client.stderr, /session (lost|ended)/);
        await client.type("exit 0\n");
        assert.equal(await client.exit(20_000), 0, `stderr: ${client.stderr}`);
      } finally {
        try {
          client.signal("SIGCONT");
        } catch { /* gone */ }
      }
    }),
});
