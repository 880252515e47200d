/**
 * No-root mode: with no `et server` on the host, the session process
 * listens itself on a free port of `--port-range`, on the address the
 * client reached over ssh, and reports it in the ready line; the client
 * dials it. The same handshake, sealing and resume: a session works, it
 * survives a path that keeps failing, `--list` and `--attach` find it,
 * and it leaves nothing behind when its shell exits. `--daemon-only` and
 * `--no-daemon` force either mode.
 *
 * How the fault proxy gets in front of the session's own port: the test
 * pins that port (`--port-range P-P`, P a port it found free), starts the
 * proxy toward P, and has the client dial the proxy through the test-only
 * `ET_TEST_DIAL_PORT` (src/client/client.ts). Everything else — the ready
 * line naming P, the session listening on P — is what a user gets.
 */

import assert from "node:assert/strict";
import { chaos, FaultProxy } from "../helpers/fault_proxy.ts";
import {
  alive,
  assertConsecutive,
  assertNoGap,
  counterValues,
  type ListedSession,
  parseSessionList,
  PipedClient,
  remoteShellPid,
  runToEnd,
  shellAnswers,
  sleep,
  startCounter,
  waitUntil,
} from "./_client.ts";
import { E2E_TEST, type EtWorld, withWorld } from "./_world.ts";

/** What the client says at -v when the session serves itself. */
const NO_ROOT_NOTICE =
  /et: no et server on et-test; serving this session from port (\d+) \(no-root mode\)/;

/** The port a client's no-root notice names. */
function noticedPort(stderr: string): number {
  const match = stderr.match(NO_ROOT_NOTICE);
  assert.ok(match, `no no-root notice; stderr: ${stderr}`);
  return Number(match[1]);
}

/** A TCP port free on 127.0.0.1 at the time of asking. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** True if something accepts TCP connections on `hostname:port`. */
async function listening(hostname: string, port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname, port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** Every terminal log of the world, concatenated. */
async function terminalLogs(world: EtWorld): Promise<string> {
  let text = "";
  for await (const entry of Deno.readDir(world.runtimeDir)) {
    if (/^terminal-[0-9a-f]{8}\.log$/.test(entry.name)) {
      text += await Deno.readTextFile(`${world.runtimeDir}/${entry.name}`);
    }
  }
  return text;
}

/** `et --list` of the world's host, parsed. */
async function list(world: EtWorld): Promise<ListedSession[]> {
  const result = await runToEnd(world.client(["--list"]));
  assert.equal(result.code, 0, `--list failed: ${result.stderr}`);
  return parseSessionList(result.stdout);
}

/** Waits until no process of the world's terminal role is left. */
async function noTerminalLeft(world: EtWorld, timeoutMs: number) {
  await waitUntil(
    async () => (await world.terminalProcesses()).length === 0,
    timeoutMs,
    async () =>
      `the terminal processes to end; left: ${
        JSON.stringify(await world.terminalProcesses())
      }`,
    100,
  );
}

// These tests check that nothing is left once the session ends: the
// user's host exits with its last session instead of lingering.
const NO_DAEMON = { privateRuntime: true, daemon: false, hostLinger: "0" };

Deno.test({
  ...E2E_TEST,
  name:
    "no daemon: the session serves itself from the first free port of 2022-2122 on ssh's address, and its shell's exit leaves no process and no listener behind",
  fn: () =>
    withWorld(NO_DAEMON, async (world) => {
      const client = new PipedClient(world.client());
      try {
        const started = performance.now();
        await shellAnswers(client);
        console.log(
          `shell answered ${(performance.now() - started).toFixed(0)} ms ` +
            `after the start`,
        );
        const port = noticedPort(client.stderr);
        assert.ok(port >= 2022 && port <= 2122, `port ${port}`);
        // On the address ssh reached (127.0.0.1), not on every address.
        assert.ok(await listening("127.0.0.1", port));
        assert.ok(!(await listening("127.0.0.2", port)), "bound to 127.0.0.2");
        assert.match(
          await terminalLogs(world),
          new RegExp(
            `no et server here: cannot reach the et server's router .*; ` +
              `serving this session from 127\\.0\\.0\\.1 port ${port} ` +
              `\\(no-root mode\\)`,
          ),
        );
        assert.match(
          await Deno.readTextFile(`${world.dir}/client.log`),
          /serving this session from port \d+ \(no-root mode\)/,
        );
        const shell = await remoteShellPid(client, `${world.dir}/shell.pid`);
        const [session] = await world.sessionProcesses();
        assert.ok(session, "a session process");

        await client.type("exit 3\n");
        assert.equal(await client.exit(20_000), 3, `stderr: ${client.stderr}`);
        const exited = performance.now();
        await noTerminalLeft(world, 10_000);
        assert.ok(!(await alive(shell)), `shell ${shell} still runs`);
        assert.ok(!(await alive(session.pid)), "the session process runs on");
        assert.ok(!(await listening("127.0.0.1", port)), "port still open");
        console.log(
          `session process and shell gone ${
            (performance.now() - exited).toFixed(0)
          } ms after the client exited`,
        );
      } finally {
        await client.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "no daemon, a fault proxy in front of the session's own port cutting every few hundred ms: the counter runs on with no value lost or repeated",
  fn: () =>
    withWorld(NO_DAEMON, async (world) => {
      const port = freePort();
      const proxy = await FaultProxy.start({ targetPort: port });
      const client = new PipedClient([
        "env",
        `ET_TEST_DIAL_PORT=${proxy.port}`,
        ...world.client(["--port-range", `${port}-${port}`]),
      ]);
      let stopChaos = () => Promise.resolve();
      try {
        await shellAnswers(client);
        assert.equal(noticedPort(client.stderr), port, "the pinned port");
        assert.ok(proxy.stats.accepted >= 1, "the client came through");
        await startCounter(client);
        let cuts = 0;
        stopChaos = chaos(proxy, {
          minMs: 200,
          maxMs: 500,
          kinds: ["cut"],
          onFault: () => cuts++,
        });
        await waitUntil(() => cuts >= 10, 20_000, "10 cuts");
        await stopChaos();
        const atEnd = counterValues(client.stdout).length;
        await waitUntil(
          () => counterValues(client.stdout).length >= atEnd + 20,
          20_000,
          () => `the counter after the cuts; stderr: ${client.stderr}`,
        );
        await client.type("\x03");
        await sleep(300);
        const values = assertConsecutive(counterValues(client.stdout));
        console.log(
          `${values} counter values in order through ${proxy.stats.cuts} ` +
            `cuts, ${proxy.stats.accepted} connections`,
        );
        await client.type("echo AFTER-$((2+3))\n");
        await client.waitFor("AFTER-5", 10_000);
        await client.type("exit 0\n");
        assert.equal(await client.exit(20_000), 0, `stderr: ${client.stderr}`);
        await noTerminalLeft(world, 10_000);
      } finally {
        await stopChaos();
        await client.close();
        await proxy.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "no daemon: --list finds the session, --attach after kill -9 of the client dials its port and resumes it with no gap",
  fn: () =>
    withWorld(NO_DAEMON, async (world) => {
      const clients: PipedClient[] = [];
      try {
        const a = new PipedClient(world.client());
        clients.push(a);
        await shellAnswers(a);
        const port = noticedPort(a.stderr);
        await startCounter(a, { what: "the counter on the first client" });
        a.signal("SIGKILL");
        await a.exit();
        const seenByA = counterValues(a.stdout);

        let sessions: ListedSession[] = [];
        await waitUntil(
          async () =>
            (sessions = await list(world)).length === 1 &&
            sessions[0].state === "detached",
          5000,
          () => `the session to show detached: ${JSON.stringify(sessions)}`,
          0,
        );
        const b = new PipedClient(
          world.client(["--attach", sessions[0].id8]),
        );
        clients.push(b);
        const maxA = Math.max(...seenByA);
        await waitUntil(
          () => Math.max(0, ...counterValues(b.stdout)) >= maxA + 20,
          20_000,
          () => `the counter on the attached client; stderr: ${b.stderr}`,
        );
        assertNoGap([...seenByA, ...counterValues(b.stdout)], "A then B");
        assert.match(
          b.stderr,
          new RegExp(
            `et: this session serves itself from port ${port} \\(no-root mode\\)`,
          ),
        );
        await b.type("\x03");
        await sleep(300);
        await b.type("exit 4\n");
        assert.equal(await b.exit(20_000), 4, `stderr: ${b.stderr}`);
        await noTerminalLeft(world, 10_000);
      } finally {
        for (const client of clients) await client.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "--daemon-only without a daemon, or no free port in --port-range: one line, and no process left behind",
  fn: () =>
    withWorld(NO_DAEMON, async (world) => {
      const oneLine = async (extra: string[]) => {
        const result = await runToEnd([
          ...world.client(extra),
          "echo SHOULD-NOT-RUN",
        ]);
        assert.equal(result.code, 1, `stderr: ${result.stderr}`);
        assert.equal(result.stdout, "");
        const lines = result.stderr.split("\n").filter((line) => line !== "");
        assert.equal(lines.length, 1, `one line: ${result.stderr}`);
        await noTerminalLeft(world, 5000);
        return lines[0];
      };
      assert.match(
        await oneLine(["--daemon-only"]),
        /^et: et-test: no et server here \(--daemon-only\): cannot reach the et server's router at \S+ \(is `et server` running\?\)/,
      );
      const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      try {
        const port = taken.addr.port;
        assert.equal(
          await oneLine(["--port-range", `${port}-${port}`]),
          `et: et-test: no free port in ${port}-${port} on 127.0.0.1 (--port-range)`,
        );
      } finally {
        taken.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "--no-daemon with a daemon running: the session serves itself (said in the client log even without -v), the daemon never hears of it",
  fn: () =>
    withWorld({ privateRuntime: true, hostLinger: "0" }, async (world) => {
      // Without -v: no notice on stderr, but the log has it.
      const argv = world.client(["--no-daemon"]).filter((arg) => arg !== "-v");
      const client = new PipedClient(argv);
      try {
        await shellAnswers(client);
        assert.doesNotMatch(client.stderr, /no-root/);
        const logged = (await Deno.readTextFile(`${world.dir}/client.log`))
          .match(
            /serving this session from port (\d+) \(no-root mode, --no-daemon\)/,
          );
        assert.ok(logged, "the client log names the mode");
        const port = Number(logged[1]);
        assert.notEqual(port, world.daemonPort);
        assert.ok(await listening("127.0.0.1", port));
        const [session] = await list(world);
        assert.match(
          await terminalLogs(world),
          new RegExp(
            `--no-daemon; serving this session from 127\\.0\\.0\\.1 port ${port}`,
          ),
        );
        const daemonLog = await Deno.readTextFile(`${world.dir}/daemon.log`);
        assert.doesNotMatch(
          daemonLog,
          new RegExp(`registered session ${session.id8}`),
        );
        await client.type("exit 0\n");
        assert.equal(await client.exit(20_000), 0, `stderr: ${client.stderr}`);
        await noTerminalLeft(world, 10_000);
      } finally {
        await client.close();
      }
    }),
});
