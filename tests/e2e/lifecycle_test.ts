/**
 * A session outlives its client and can always be found again: `--attach`
 * after `kill -9` (latest, or by id prefix) with nothing lost, taking over
 * a hung client, `--list` states, `~.` and the other escapes, `-x`, and
 * expiry after `--session-timeout`.
 */

import assert from "node:assert/strict";
import { PtyProcess } from "../helpers/pty_process.ts";
import {
  alive,
  assertNoGap,
  counterValues,
  type ListedSession,
  parseSessionList,
  PipedClient,
  ptyShellAnswers,
  remoteShellPid,
  runToEnd,
  shellAnswers,
  sleep,
  startCounter,
  waitUntil,
} from "./_client.ts";
import { E2E_TEST, type EtWorld, withWorld } from "./_world.ts";

/** `et --list` of the world's host, parsed. */
async function list(world: EtWorld): Promise<ListedSession[]> {
  const result = await runToEnd(world.client(["--list"]));
  assert.equal(result.code, 0, `--list failed: ${result.stderr}`);
  return parseSessionList(result.stdout);
}

/** Waits until `--list` satisfies `check`; returns that list. */
async function listUntil(
  world: EtWorld,
  check: (sessions: ListedSession[]) => boolean,
  timeoutMs: number,
  what: string,
): Promise<ListedSession[]> {
  let last: ListedSession[] = [];
  await waitUntil(
    async () => check(last = await list(world)),
    timeoutMs,
    () => `${what}; last --list: ${JSON.stringify(last)}`,
    0,
  );
  return last;
}

/** Starts an interactive client and waits until its shell answers. */
async function interactive(
  world: EtWorld,
  extra: string[] = [],
): Promise<PipedClient> {
  const client = new PipedClient(world.client(extra));
  await shellAnswers(client);
  return client;
}

/** Kills a client with SIGKILL and waits for it to be gone. */
async function killHard(client: PipedClient) {
  client.signal("SIGKILL");
  await client.exit();
}

Deno.test({
  ...E2E_TEST,
  name:
    "kill -9 of the client, then --attach and --attach <id prefix>: the counter resumes with no gap, typing works, the exit status passes through",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const clients: PipedClient[] = [];
      try {
        const a = await interactive(world);
        clients.push(a);
        await startCounter(a, { what: "the counter on the first client" });
        await killHard(a);
        const seenByA = counterValues(a.stdout);

        const [session] = await listUntil(
          world,
          (s) => s.length === 1 && s[0].state === "detached",
          5000,
          "the session to show detached",
        );
        // The latest detached session, no id given.
        const b = new PipedClient(world.client(["--attach"]));
        clients.push(b);
        const maxA = Math.max(...seenByA);
        await waitUntil(
          () => Math.max(0, ...counterValues(b.stdout)) >= maxA + 20,
          20_000,
          () => `the counter on the attached client; stderr: ${b.stderr}`,
        );
        const seenByB = counterValues(b.stdout);
        assert.ok(
          seenByB[0] <= maxA + 1,
          `B starts at ${seenByB[0]}, A saw up to ${maxA}`,
        );
        assertNoGap([...seenByA, ...seenByB], "A then B");
        await killHard(b);

        // By an id prefix from --list.
        await listUntil(
          world,
          (s) => s.length === 1 && s[0].state === "detached",
          5000,
          "the session to show detached again",
        );
        const c = new PipedClient(
          world.client(["--attach", session.id8.slice(0, 5)]),
        );
        clients.push(c);
        const maxB = Math.max(...counterValues(b.stdout));
        await waitUntil(
          () => Math.max(0, ...counterValues(c.stdout)) >= maxB + 20,
          20_000,
          () => `the counter on the third client; stderr: ${c.stderr}`,
        );
        assertNoGap(
          [...seenByA, ...counterValues(b.stdout), ...counterValues(c.stdout)],
          "A, B then C",
        );
        await c.type("\x03");
        await sleep(300);
        await c.type("echo AFTER-$((2+2))\n");
        await c.waitFor("AFTER-4", 10_000);
        await c.type("exit 5\n");
        assert.equal(await c.exit(20_000), 5, `stderr: ${c.stderr}`);
        assert.deepEqual(await list(world), [], "the session ended");
      } finally {
        for (const client of clients) await client.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "--attach ID takes a session over from a hung (SIGSTOPped) client; resumed, the old client ends with one line and does not take it back",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const clients: PipedClient[] = [];
      try {
        const a = await interactive(world);
        clients.push(a);
        await startCounter(a, { what: "the counter on the first client" });
        a.signal("SIGSTOP");
        const [session] = await list(world);
        assert.equal(session.state, "attached", "a hung client looks attached");

        const b = new PipedClient(world.client(["--attach", session.id8]));
        clients.push(b);
        await waitUntil(
          () => counterValues(b.stdout).length >= 20,
          20_000,
          () => `the counter on the new client; stderr: ${b.stderr}`,
        );
        a.signal("SIGCONT");
        const code = await Promise.race([
          a.child.status.then((status) => status.code),
          sleep(15_000).then(() => null),
        ]);
        assert.notEqual(
          code,
          null,
          `the old client still runs 15 s after SIGCONT; stderr: ${a.stderr}`,
        );
        await a.exit();
        const lines = a.stderr.split("\n").filter((line) => line !== "");
        const final = lines.filter((line) => /taken over/.test(line));
        assert.equal(final.length, 1, `old client's stderr: ${a.stderr}`);
        assert.match(lines.at(-1)!, /^et: .*taken over by another et client/);
        assert.notEqual(code, 0);

        // The new client still has the session.
        const before = counterValues(b.stdout).length;
        await waitUntil(
          () => counterValues(b.stdout).length >= before + 10,
          5000,
          () => `the counter to go on on the new client; stderr: ${b.stderr}`,
        );
        await b.type("\x03");
        await sleep(300);
        await b.type("echo AFTER-$((3+3))\n");
        await b.waitFor("AFTER-6", 10_000);
        const [now] = await list(world);
        assert.equal(now.state, "attached");
        await b.type("exit 0\n");
        assert.equal(await b.exit(20_000), 0, `stderr: ${b.stderr}`);
      } finally {
        for (const client of clients) {
          try {
            client.signal("SIGCONT");
          } catch { /* gone */ }
          await client.close();
        }
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "--list: attached while a client is connected, detached within 2 s of kill -9, with AGE and LAST SEEN",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const a = await interactive(world);
      try {
        const [attached, ...others] = await list(world);
        assert.deepEqual(others, []);
        assert.equal(attached.state, "attached");
        assert.equal(attached.lastSeen, "now");
        assert.match(attached.age, /^\d+s$/);
        assert.equal(attached.command, "(login shell)");
        await sleep(1500);
        await killHard(a);
        const killed = performance.now();
        const [detached] = await listUntil(
          world,
          (s) => s[0]?.state === "detached",
          5000,
          "detached",
        );
        const took = performance.now() - killed;
        console.log(`listed detached ${took.toFixed(0)} ms after kill -9`);
        assert.ok(took < 2500, `detached only ${took} ms after kill -9`);
        assert.equal(detached.id8, attached.id8);
        assert.match(detached.lastSeen, /^\d+s ago$/);
      } finally {
        await a.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "~? prints help, ~~ sends one ~, ~. detaches: exit 0, resume hint, termios restored, session detached, --attach resumes it",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const client = PtyProcess.spawn(world.client());
      const before = client.termios();
      let resumed: PtyProcess | undefined;
      try {
        const mark = await ptyShellAnswers(client);
        // ~? after a newline: the help, nothing sent.
        await client.type("~?");
        const help = await client.waitFor(/escapes \(after a newline\)[^\]]*/, {
          from: mark.end,
        });
        // ~~ at a line start: one ~ reaches the program.
        await client.type(`read -r line; printf '<%s>\\n' "$line"\r`);
        await sleep(300);
        await client.type("~~x\r");
        await client.waitFor(/<~x>|<~~x>/, { from: help.end });
        assert.match(client.text.slice(help.end), /<~x>/);
        assert.doesNotMatch(client.text.slice(help.end), /<~~x>/);
        await client.type("echo $$ > " + world.dir + "/shell.pid\r");
        await waitUntil(
          async () =>
            (await Deno.readTextFile(`${world.dir}/shell.pid`).catch(() => ""))
              .endsWith("\n"),
          10_000,
          "the shell's pid",
        );
        const shellPid = Number(
          await Deno.readTextFile(`${world.dir}/shell.pid`),
        );

        await client.type("~.");
        const status = await client.wait(10_000);
        assert.equal(status.code, 0, `output: ${client.text.slice(-400)}`);
        assert.deepEqual(client.termios(), before, "terminal restored exactly");
        const hint = client.text.match(
          /detached; the session keeps running: (et --attach ([0-9a-f]{8}) \S+)/,
        );
        assert.ok(hint, `a resume hint; output: ${client.text.slice(-400)}`);
        const [session] = await list(world);
        assert.equal(session.state, "detached");
        assert.equal(session.id8, hint[2]);
        assert.ok(await alive(shellPid), "the shell lives on");

        resumed = PtyProcess.spawn(world.client(["--attach", hint[2]]));
        await resumed.type("echo BACK-$$-$((1+1))\r");
        await resumed.waitFor(`BACK-${shellPid}-2`, { timeoutMs: 30_000 });
        await resumed.type("exit 0\r");
        assert.equal((await resumed.wait(20_000)).code, 0);

        // The hint must resume from where the user is: the daemon is not
        // on the default port here, so it must name this one.
        assert.ok(
          hint[1].includes(String(world.daemonPort)),
          `the resume hint names the daemon's port ${world.daemonPort}: ${
            hint[1]
          }`,
        );
      } finally {
        await client.close();
        await resumed?.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "-x ends this user's other sessions: only the new one is listed, their shells are gone",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const clients: PipedClient[] = [];
      try {
        const pids: number[] = [];
        for (const name of ["a", "b"]) {
          const client = await interactive(world);
          clients.push(client);
          pids.push(await remoteShellPid(client, `${world.dir}/${name}.pid`));
          await killHard(client);
        }
        const old = await listUntil(
          world,
          (s) => s.length === 2 && s.every((x) => x.state === "detached"),
          5000,
          "two detached sessions",
        );
        for (const pid of pids) assert.ok(await alive(pid));

        const c = await interactive(world, ["-x"]);
        clients.push(c);
        const now = await list(world);
        assert.equal(now.length, 1, `--list: ${JSON.stringify(now)}`);
        assert.equal(now[0].state, "attached");
        assert.ok(!old.some((s) => s.id8 === now[0].id8));
        await waitUntil(
          async () => !(await alive(pids[0])) && !(await alive(pids[1])),
          5000,
          "the old sessions' shells to end",
        );
        assert.equal((await world.sessionProcesses()).length, 1);
        await c.type("exit 0\n");
        assert.equal(await c.exit(20_000), 0, `stderr: ${c.stderr}`);
      } finally {
        for (const client of clients) await client.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "--session-timeout 3s: after kill -9 the session's processes are gone within the timeout and a few seconds, and --list forgets it",
  fn: () =>
    // The host holds only this session: it leaves with it, no lingering.
    withWorld({ privateRuntime: true, hostLinger: "0" }, async (world) => {
      const client = await interactive(world, ["--session-timeout", "3s"]);
      try {
        const shellPid = await remoteShellPid(client, `${world.dir}/shell.pid`);
        assert.equal((await world.sessionProcesses()).length, 1);
        await killHard(client);
        const killed = performance.now();
        await waitUntil(
          async () =>
            (await world.terminalProcesses()).length === 0 &&
            !(await alive(shellPid)),
          3000 + 5000,
          async () =>
            `the session to expire; left: ${
              JSON.stringify(await world.terminalProcesses())
            }, shell alive: ${await alive(shellPid)}`,
          100,
        );
        console.log(
          `expired ${(performance.now() - killed).toFixed(0)} ms after kill -9`,
        );
        assert.deepEqual(await list(world), []);
      } finally {
        await client.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "a client whose window closes (SIGHUP) leaves a detached session: listed detached at once, --attach resumes the same shell",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const client = PtyProcess.spawn(world.client());
      const before = client.termios();
      let resumed: PtyProcess | undefined;
      try {
        await client.type(
          `echo $$ > ${world.dir}/shell.pid; echo MARK-$((6*7))\r`,
        );
        await client.waitFor("MARK-42", { timeoutMs: 30_000 });
        const shellPid = (await Deno.readTextFile(`${world.dir}/shell.pid`))
          .trim();
        client.signal("SIGHUP");
        const hung = performance.now();
        const status = await client.wait();
        assert.equal(status.code, 128 + 1, "exits like a hung-up process");
        assert.deepEqual(client.termios(), before, "termios restored");
        const [detached] = await listUntil(
          world,
          (s) => s[0]?.state === "detached",
          3000,
          "detached after SIGHUP",
        );
        // The client said it was leaving: no 6 s dead-pipe wait.
        assert.ok(performance.now() - hung < 2500);
        assert.ok(await alive(Number(shellPid)), "the shell lives on");
        resumed = PtyProcess.spawn(world.client(["--attach", detached.id8]));
        await resumed.type("echo pid=$$\r");
        await resumed.waitFor(`pid=${shellPid}`, { timeoutMs: 30_000 });
        await resumed.type("exit 4\r");
        assert.equal((await resumed.wait()).code, 4);
      } finally {
        await client.close();
        await resumed?.close();
      }
    }),
});
