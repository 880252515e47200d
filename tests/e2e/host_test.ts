/**
 * The per-user host (et-host) through real sessions: one
 * process holds all of a user's sessions (launchers racing to start it
 * end with one), it exits with its last session, and a fault in one
 * session — an exception in its code, a pty nobody reads — neither ends
 * nor stalls another, whose client keeps echoing byte-exact.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  alive,
  PipedClient,
  remoteShellPid,
  sha256,
  shellAnswers,
  sleep,
  waitUntil,
} from "./_client.ts";
import { E2E_TEST, type EtWorld, withWorld } from "./_world.ts";
import {
  controlRequest,
  controlSocketPath,
} from "../../src/terminal/control_socket.ts";
import {
  HOST_PROCESS_NAME,
  hostPaths,
} from "../../src/terminal/host_socket.ts";
import { descendantsOf } from "../../src/platform/process_tree.ts";

/**
 * The world's client argv with `vars` set for its terminals (the launcher
 * and the host it starts), then `command` after the destination.
 */
function clientWith(
  world: EtWorld,
  vars: string,
  extra: string[] = [],
  command: string[] = [],
): string[] {
  const argv = world.client(extra);
  const at = argv.indexOf("--terminal-path") + 1;
  argv[at] = argv[at].replace(/^env /, `env ${vars} `);
  return [...argv, ...command];
}

/** A `cat` session on pipes: what goes up comes back down, byte for byte. */
class EchoSession {
  readonly client: PipedClient;
  #sent: Uint8Array[] = [];
  #sentBytes = 0;

  constructor(argv: string[]) {
    this.client = new PipedClient(argv, true);
  }

  /**
   * Sends `bytes` and waits until all of it came back; checks every byte
   * that came back so far against every byte sent. Resolves with the ms it
   * took.
   */
  async roundTrip(bytes: Uint8Array, timeoutMs = 30_000): Promise<number> {
    const started = performance.now();
    this.#sent.push(bytes);
    this.#sentBytes += bytes.length;
    await this.client.type(bytes);
    await waitUntil(
      () => this.client.stdoutBytes >= this.#sentBytes,
      timeoutMs,
      () =>
        `${this.#sentBytes} bytes back; got ${this.client.stdoutBytes}; stderr: ${this.client.stderr}`,
      1,
    );
    const expected = new Uint8Array(this.#sentBytes);
    let at = 0;
    for (const chunk of this.#sent) {
      expected.set(chunk, at);
      at += chunk.length;
    }
    assert.equal(sha256(this.client.bytes()), sha256(expected), "echo bytes");
    return performance.now() - started;
  }
}

/** `n` random bytes. */
function randomBytes(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(bytes.subarray(i, Math.min(n, i + 65536)));
  }
  return bytes;
}

/** The host process's pid: the one terminal process left once launchers exit. */
async function onlyHost(world: EtWorld): Promise<number> {
  await waitUntil(
    async () => (await world.terminalProcesses()).length === 1,
    20_000,
    async () =>
      `one terminal process (the host); found ${
        JSON.stringify(await world.terminalProcesses())
      }`,
    100,
  );
  const [host] = await world.terminalProcesses();
  assert.equal(host.name, HOST_PROCESS_NAME, host.cmdline);
  return host.pid;
}

/** The host's log (`terminal-<key>.log` in the runtime directory). */
async function hostLog(world: EtWorld): Promise<string> {
  const { log } = await hostPaths(world.runtimeDir, world.routerPath);
  return await Deno.readTextFile(log);
}

Deno.test({
  ...E2E_TEST,
  name:
    "three clients started at once: one host process holds all three sessions; it outlives each but the last, and exits with it (ET_HOST_LINGER=0)",
  fn: () =>
    withWorld({ privateRuntime: true, hostLinger: "0" }, async (world) => {
      const clients = [0, 1, 2].map(() => new PipedClient(world.client()));
      try {
        await Promise.all(clients.map((client) => shellAnswers(client)));
        const hostPid = await onlyHost(world);
        const sessions = await world.sessionProcesses();
        assert.equal(sessions.length, 3, JSON.stringify(sessions));
        assert.ok(sessions.every((s) => s.pid === hostPid));
        assert.equal(new Set(sessions.map((s) => s.id)).size, 3);
        const shells = [];
        for (const [i, client] of clients.entries()) {
          shells.push(await remoteShellPid(client, `${world.dir}/shell${i}`));
        }
        assert.deepEqual(
          new Set(sessions.map((s) => s.programPid)),
          new Set(shells),
        );
        for (const [i, client] of clients.entries()) {
          await client.type(`exit ${i + 3}\n`);
          assert.equal(await client.exit(), i + 3, client.stderr);
          if (i < 2) {
            assert.ok(await alive(hostPid), "the host ended too early");
            await waitUntil(
              async () => (await world.sessionProcesses()).length === 2 - i,
              10_000,
              `${2 - i} sessions left`,
            );
          }
        }
        await waitUntil(
          async () => (await world.terminalProcesses()).length === 0,
          10_000,
          async () =>
            `the host to exit; left: ${
              JSON.stringify(await world.terminalProcesses())
            }`,
          100,
        );
        const { socket } = await hostPaths(world.runtimeDir, world.routerPath);
        await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound);
        // A new client after the host left gets a new host.
        const again = new PipedClient(world.client());
        clients.push(again);
        await shellAnswers(again);
        assert.notEqual(await onlyHost(world), hostPid);
        await again.type("exit 0\n");
        assert.equal(await again.exit(), 0, again.stderr);
      } finally {
        for (const client of clients) await client.close();
      }
    }),
});

/**
 * What is left of the bootstrap's ssh: this world's ssh clients and
 * sshd's per-connection processes (its listener's live descendants).
 */
async function bootstrapSshLeft(world: EtWorld): Promise<string[]> {
  const listener = Number(
    (await Deno.readTextFile(`${world.sshd.dir}/sshd.pid`)).trim(),
  );
  const under = new Set(await descendantsOf(listener));
  const left: string[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`)
      .then((text) => text.split("\0").join(" ").trim(), () => "");
    if (cmdline === "") continue; // gone, or a zombie: gone already
    const ours = /^ssh /.test(cmdline) && cmdline.includes(world.sshd.dir);
    if (ours || under.has(Number(entry.name))) {
      left.push(`${entry.name} ${cmdline}`);
    }
  }
  return left;
}

Deno.test({
  ...E2E_TEST,
  name:
    "a first session with no host running: the launcher ssh ran stays on as the host (et-host, its stdio /dev/null), the bootstrap's ssh and sshd processes end, the session is byte-exact and the next one joins that host",
  fn: () =>
    withWorld({ privateRuntime: true, hostLinger: "0" }, async (world) => {
      const echo = new EchoSession([...world.client(["--no-pty"]), "cat"]);
      const clients = [echo.client];
      try {
        await echo.roundTrip(randomBytes(64 * 1024));
        const hostPid = await onlyHost(world);
        const [host] = await world.terminalProcesses();
        // The launcher's command line: no second process was started.
        assert.match(host.cmdline, / terminal$/);
        for (const fd of [0, 1, 2]) {
          assert.equal(
            await Deno.readLink(`/proc/${hostPid}/fd/${fd}`),
            "/dev/null",
          );
        }
        await waitUntil(
          async () => (await bootstrapSshLeft(world)).length === 0,
          10_000,
          async () =>
            `the bootstrap's ssh to end; left: ${
              JSON.stringify(await bootstrapSshLeft(world))
            }`,
          100,
        );
        await echo.roundTrip(randomBytes(64 * 1024));
        const next = new PipedClient(world.client());
        clients.push(next);
        await shellAnswers(next);
        assert.equal(await onlyHost(world), hostPid);
        assert.equal((await world.sessionProcesses()).length, 2);
        await next.type("exit 7\n");
        assert.equal(await next.exit(), 7, next.stderr);
        await echo.client.endInput();
        assert.equal(await echo.client.exit(), 0, echo.client.stderr);
        await waitUntil(
          async () => !(await alive(hostPid)),
          10_000,
          "the host to exit with its last session",
        );
      } finally {
        for (const client of clients) await client.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "a cold start through an ssh wrapper that runs ssh as its child (a SIGTERM to the wrapper never reaches ssh), that ssh going through a ProxyJump: the client still ends that ssh without a word from it, and its session works",
  fn: () =>
    withWorld({ privateRuntime: true, hostLinger: "0" }, async (world) => {
      const argv = world.client(["--no-pty"]);
      const at = argv.indexOf("--ssh") + 1;
      const wrapper = `${world.dir}/wrapped-ssh`;
      // No exec: ssh is the wrapper's child, as in many wrapper scripts.
      // The jump's `ssh -W` is that ssh's child: signalled beside it, it
      // could die first and ssh would print "client_loop: send
      // disconnect: Broken pipe" on the user's terminal.
      await Deno.writeTextFile(
        wrapper,
        `#!/bin/sh\n${argv[at]} -J ${world.sshd.hostAlias} "$@"\nexit $?\n`,
        { mode: 0o755 },
      );
      argv[at] = wrapper;
      const echo = new EchoSession([...argv, "cat"]);
      try {
        await echo.roundTrip(randomBytes(16 * 1024));
        assert.match(
          (await world.terminalProcesses())[0].cmdline,
          / terminal$/,
        );
        await waitUntil(
          async () => (await bootstrapSshLeft(world)).length === 0,
          10_000,
          async () =>
            `the wrapped ssh to end; left: ${
              JSON.stringify(await bootstrapSshLeft(world))
            }`,
          100,
        );
        await echo.roundTrip(randomBytes(16 * 1024));
        await echo.client.endInput();
        assert.equal(await echo.client.exit(), 0, echo.client.stderr);
        assert.equal(echo.client.stderr, "");
      } finally {
        await echo.client.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "a first session that fails (a reverse tunnel's port is taken) with no host running: one line, exit 1, and neither a host nor the bootstrap's ssh stays",
  fn: async () => {
    const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (busy.addr as Deno.NetAddr).port;
    try {
      await withWorld({ privateRuntime: true }, async (world) => {
        const client = new PipedClient(world.client(["-r", `${port}:80`]));
        try {
          assert.equal(await client.exit(30_000), 1, client.stderr);
          assert.match(
            client.stderr,
            /cannot listen on .* for a reverse tunnel/,
          );
          assert.equal(
            client.stderr.trim().split("\n").length,
            1,
            client.stderr,
          );
          await waitUntil(
            async () =>
              (await world.terminalProcesses()).length === 0 &&
              (await bootstrapSshLeft(world)).length === 0,
            10_000,
            async () =>
              `nothing left; found ${
                JSON.stringify([
                  ...await world.terminalProcesses(),
                  ...await bootstrapSshLeft(world),
                ])
              }`,
            100,
          );
        } finally {
          await client.close();
        }
      });
    } finally {
      busy.close();
    }
  },
});

Deno.test({
  ...E2E_TEST,
  name:
    "a host whose process was killed leaves a stale socket: the next client replaces it with a new host",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const first = new PipedClient(world.client());
      const clients = [first];
      try {
        await shellAnswers(first);
        const dead = await onlyHost(world);
        Deno.kill(dead, "SIGKILL");
        await waitUntil(async () => !(await alive(dead)), 5000, "host gone");
        const { socket } = await hostPaths(world.runtimeDir, world.routerPath);
        assert.ok((await Deno.lstat(socket)).isSocket, "the stale socket");
        const next = new PipedClient(world.client());
        clients.push(next);
        await shellAnswers(next);
        const host = await onlyHost(world);
        assert.notEqual(host, dead);
        await next.type("exit 5\n");
        assert.equal(await next.exit(), 5, next.stderr);
      } finally {
        for (const client of clients) await client.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "an exception in one session's code (injected) ends only that session, with one line at its client; another session of the host keeps echoing byte-exact",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const faults = "ET_TEST_FAULTS=1";
      const echo = new EchoSession(clientWith(world, faults, ["--no-pty"], [
        "cat",
      ]));
      const victim = new PipedClient(clientWith(world, faults));
      try {
        await echo.roundTrip(randomBytes(64 * 1024));
        await shellAnswers(victim);
        const hostPid = await onlyHost(world);
        const shell = await remoteShellPid(victim, `${world.dir}/victim`);
        const session = (await world.sessionProcesses())
          .find((s) => s.programPid === shell);
        assert.ok(session, "the victim's session");
        const control = controlSocketPath(world.runtimeDir, session.id);

        // A throw nobody catches (from a timer of the session's pump): the
        // host's guard logs it; every session carries on.
        assert.deepEqual(
          await controlRequest(control, { op: "fault", kind: "stray" }),
          { ok: true },
        );
        await victim.type("echo STRAY-$((20+1))\n");
        await victim.waitFor("STRAY-21");
        await waitUntil(
          async () =>
            (await hostLog(world)).includes(
              "uncaught exception (sessions carry on): injected fault (stray)",
            ),
          5000,
          "the guard's log line",
        );
        await echo.roundTrip(randomBytes(256 * 1024));

        // A throw out of the session's output pump: that session ends.
        assert.deepEqual(
          await controlRequest(control, { op: "fault", kind: "pump" }),
          { ok: true },
        );
        await victim.type("echo PUMP\n");
        const code = await victim.exit(20_000);
        assert.notEqual(code, 0);
        assert.match(
          victim.stderr,
          /session ended: internal error: injected fault \(pump\)/,
        );
        await waitUntil(
          async () => !(await alive(shell)),
          10_000,
          "shell gone",
        );
        assert.ok(await alive(hostPid), "the host died with the session");
        const ms = await echo.roundTrip(randomBytes(256 * 1024));
        console.log(
          `256 KiB echoed through the other session in ${
            ms.toFixed(0)
          } ms after the fault`,
        );
        assert.equal((await world.sessionProcesses()).length, 1);

        await echo.client.endInput();
        assert.equal(await echo.client.exit(), 0, echo.client.stderr);
      } finally {
        await victim.close();
        await echo.client.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "a session whose program stops reading its pty (input stuck) stalls nobody else: another session of the host keeps echoing byte-exact",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const echo = new EchoSession([
        ...world.client(["--no-pty"]),
        "cat",
      ]);
      const stuck = new PipedClient([
        ...world.client(["--pty"]),
        "stty raw -echo; echo NOT-READING; exec sleep 600",
      ]);
      try {
        await echo.roundTrip(randomBytes(64 * 1024));
        await stuck.waitFor("NOT-READING");
        assert.equal((await world.sessionProcesses()).length, 2);
        const median = async () => {
          const times = [];
          for (let i = 0; i < 21; i++) {
            times.push(await echo.roundTrip(randomBytes(64)));
          }
          return times.sort((a, b) => a - b)[10];
        };
        const before = await median();
        // 4 MiB into a pty nobody reads: the session's input pump waits on
        // the pty, the transport's window fills, the client's stdin backs
        // up.
        let typed = false;
        stuck.type(randomBytes(4 * 1024 * 1024)).then(
          () => typed = true,
          () => {},
        );
        await sleep(3000);
        assert.ok(!typed, "the stuck session took all input: not stuck");
        const beside = await median();
        const ms = await echo.roundTrip(randomBytes(1024 * 1024));
        assert.ok(!typed, "still stuck");
        console.log(
          `64-byte echo median ${before.toFixed(1)} ms before, ${
            beside.toFixed(1)
          } ms beside a stuck pty; 1 MiB echoed in ${ms.toFixed(0)} ms`,
        );
        await echo.client.endInput();
        assert.equal(await echo.client.exit(), 0, echo.client.stderr);
      } finally {
        // Its stdin write is stuck: closing that pipe first would wait on it.
        stuck.kill();
        await stuck.close();
        await echo.client.close();
      }
    }),
});
