/**
 * The user's host lingers after its last session (`ET_HOST_LINGER`),
 * through real ssh logins: the session ends, the host stays (its socket
 * answers, no CPU spent, no port held in no-root mode), the next session
 * is served by that same host process (no cold start), and once no
 * session came for the linger time the host exits and leaves its socket
 * behind for nobody; the next client then starts a new one.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  alive,
  PipedClient,
  remoteShellPid,
  runToEnd,
  sha256,
  shellAnswers,
  sleep,
  waitUntil,
} from "./_client.ts";
import { E2E_TEST, ET, type EtWorld, withWorld } from "./_world.ts";
import {
  HOST_PROCESS_NAME,
  hostPaths,
  hostRequest,
} from "../../src/terminal/host_socket.ts";

/** The world's one host process (named et-host): its pid. */
async function onlyHost(world: EtWorld): Promise<number> {
  const hosts = async () =>
    (await world.terminalProcesses()).filter((p) =>
      p.name === HOST_PROCESS_NAME
    );
  await waitUntil(
    async () => (await hosts()).length === 1,
    20_000,
    async () => `one host process; found ${JSON.stringify(await hosts())}`,
    100,
  );
  return (await hosts())[0].pid;
}

/** CPU time (user + system) of `pid` so far, in clock ticks. */
async function cpuTicks(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces): utime is the
  // 14th field of the line, stime the 15th.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(fields[11]) + Number(fields[12]);
}

/** The host's answer to `status`: its pid and its sessions. */
async function hostStatus(
  world: EtWorld,
): Promise<{ pid: number; sessions: { id: string }[] }> {
  const { socket } = await hostPaths(world.runtimeDir, world.routerPath);
  return JSON.parse(await hostRequest(socket, { op: "status" }, 5000));
}

/** True if something accepts TCP connections on 127.0.0.1:`port`. */
async function listening(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts a client, checks its shell answers byte-exact (a random token
 * the shell computes from, so the echo of the line does not hold the
 * answer), and returns it with its shell's pid.
 */
async function session(
  world: EtWorld,
  name: string,
): Promise<{ client: PipedClient; shellPid: number }> {
  const client = new PipedClient(world.client());
  await shellAnswers(client);
  const token = crypto.randomUUID().replaceAll("-", "");
  await client.type(`printf '%s-%s\\n' ${token} $((40+2))\n`);
  await client.waitFor(`${token}-42\r\n`);
  const tail = client.stdout.slice(client.stdout.indexOf(`${token}-42\r\n`));
  assert.equal(
    sha256(tail.slice(0, token.length + 5)),
    sha256(`${token}-42\r\n`),
  );
  const shellPid = await remoteShellPid(client, `${world.dir}/${name}.pid`);
  return { client, shellPid };
}

/** Types `exit 0` and checks the client ends with 0. */
async function endSession(client: PipedClient) {
  await client.type("exit 0\n");
  assert.equal(await client.exit(20_000), 0, client.stderr);
}

const LINGER_MS = 6000;

Deno.test({
  ...E2E_TEST,
  name:
    "ET_HOST_LINGER=6s: the host outlives its last session idle (no CPU), serves the next session from the same process, and exits 6 s after the last one ended",
  fn: () =>
    withWorld(
      { privateRuntime: true, hostLinger: `${LINGER_MS / 1000}s` },
      async (world) => {
        const clients: PipedClient[] = [];
        try {
          const first = await session(world, "first");
          clients.push(first.client);
          const hostPid = await onlyHost(world);
          await endSession(first.client);
          await waitUntil(
            async () => (await hostStatus(world)).sessions.length === 0,
            10_000,
            "the first session to end in the host",
          );
          assert.ok(!(await alive(first.shellPid)), "the first shell ended");
          // Lingering: alive, answering, holding no session, spending no
          // CPU (at most one 10 ms tick in 1.5 s, for the log line).
          const ticks = await cpuTicks(hostPid);
          await sleep(1500);
          assert.ok(await alive(hostPid), "the host lingers");
          const spent = await cpuTicks(hostPid) - ticks;
          assert.ok(spent <= 1, `${spent} ticks of CPU while lingering`);
          assert.equal((await hostStatus(world)).pid, hostPid);
          assert.equal((await world.sessionProcesses()).length, 0);
          const listed = await runToEnd(world.client(["--list"]));
          assert.equal(listed.code, 0, listed.stderr);
          assert.doesNotMatch(listed.stdout, /[0-9a-f]{8}/);

          // The next session: the same host process, no new one.
          const second = await session(world, "second");
          clients.push(second.client);
          const sessions = await world.sessionProcesses();
          assert.equal(sessions.length, 1, JSON.stringify(sessions));
          assert.equal(sessions[0].pid, hostPid, "served by the same host");
          assert.equal(sessions[0].programPid, second.shellPid);
          assert.equal(await onlyHost(world), hostPid);

          // The linger time, counted from the second session's end (the
          // first one's wait was cancelled by the second session).
          await endSession(second.client);
          const ended = performance.now();
          await waitUntil(
            async () => !(await alive(hostPid)),
            LINGER_MS + 10_000,
            "the host to exit after lingering",
            50,
          );
          const after = performance.now() - ended;
          console.log(
            `host exited ${after.toFixed(0)} ms after its last session ` +
              `(linger ${LINGER_MS} ms)`,
          );
          assert.ok(after >= LINGER_MS - 300, `exited after only ${after} ms`);
          const { socket, log } = await hostPaths(
            world.runtimeDir,
            world.routerPath,
          );
          await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound);
          const text = await Deno.readTextFile(log);
          assert.match(text, /no session left: lingering 6 s for the next one/);
          assert.match(
            text,
            new RegExp(`host ${hostPid} exits: no new session within 6 s`),
          );
          assert.equal((await world.terminalProcesses()).length, 0);

          // After that, a client starts a new host (the cold path again).
          const third = await session(world, "third");
          clients.push(third.client);
          const newHost = await onlyHost(world);
          assert.notEqual(newHost, hostPid);
          await endSession(third.client);
        } finally {
          for (const client of clients) await client.close();
        }
      },
    ),
});

Deno.test({
  ...E2E_TEST,
  name:
    "no daemon, ET_HOST_LINGER=30s: a lingering host holds no port; the next session opens it again in the same host process",
  fn: () =>
    withWorld(
      { privateRuntime: true, daemon: false, hostLinger: "30s" },
      async (world) => {
        const clients: PipedClient[] = [];
        try {
          const first = await session(world, "first");
          clients.push(first.client);
          const hostPid = await onlyHost(world);
          const port = Number(
            (await Deno.readTextFile(`${world.dir}/client.log`))
              .match(/serving this session from port (\d+)/)?.[1],
          );
          assert.ok(port > 0, "the session's own port in the client log");
          assert.ok(await listening(port), "the host serves its port");
          await endSession(first.client);
          await waitUntil(
            async () => !(await listening(port)),
            10_000,
            `port ${port} to close once no session is left`,
          );
          assert.ok(await alive(hostPid), "the host lingers");

          const second = await session(world, "second");
          clients.push(second.client);
          const sessions = await world.sessionProcesses();
          assert.equal(sessions.length, 1, JSON.stringify(sessions));
          assert.equal(sessions[0].pid, hostPid, "served by the same host");
          assert.ok(await listening(port), "the port is served again");
          await endSession(second.client);
        } finally {
          for (const client of clients) await client.close();
        }
      },
    ),
});

Deno.test("a bad ET_HOST_LINGER: the launcher says so in one line and exits 2, starting no host", async () => {
  const runtime = await Deno.makeTempDir({ prefix: "et-linger-bad-" });
  try {
    await Deno.chmod(runtime, 0o700);
    const { code, stdout, stderr } = await new Deno.Command(ET[0], {
      args: [...ET.slice(1), "terminal"],
      env: {
        ET_HOST_LINGER: "soon",
        ET_RUNTIME_DIR: runtime,
        ET_ROUTER_SOCKET: `${runtime}/none.sock`,
      },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 2);
    assert.equal(new TextDecoder().decode(stdout), "");
    assert.equal(
      new TextDecoder().decode(stderr),
      "et: invalid ET_HOST_LINGER 'soon' (expected e.g. 30s, 5m, 2h, 7d or 0)\n",
    );
    // Nothing started: not even the runtime directory was made.
    assert.deepEqual([...Deno.readDirSync(runtime)], []);
  } finally {
    await Deno.remove(runtime, { recursive: true });
  }
});
