/**
 * The daemon and its router with real sockets: who may register what, and
 * a daemon under garbage that keeps relaying a live session.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { configureLog, type LogSink } from "../../src/log.ts";
import { type Daemon, startDaemon } from "../../src/daemon/mod.ts";
import { registerSession } from "../../src/session/mod.ts";
import {
  acceptEach,
  EternalConnection,
  generateSessionSecret,
  keepConnected,
  serverHandshake,
  toHex,
} from "../../src/transport/mod.ts";
import {
  patternBytes,
  StreamHash,
  waitUntil,
} from "../helpers/session_pair.ts";
import { attackListener, resetStorm } from "../helpers/attack.ts";

configureLog({ level: "silent" });

/** A private directory laid out like et terminal's, with one socket. */
async function terminalSocketDir() {
  const root = await Deno.makeTempDir({ prefix: "et-router-test-" });
  const dir = `${root}/et`;
  await Deno.mkdir(dir, { mode: 0o700 });
  await Deno.chmod(dir, 0o700);
  const path = `${dir}/${
    toHex(crypto.getRandomValues(new Uint8Array(8)))
  }.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  return { root, dir, path, listener };
}

const id = () => toHex(crypto.getRandomValues(new Uint8Array(16)));

type TerminalSocket = Awaited<ReturnType<typeof terminalSocketDir>>;

/** Runs `body` with a daemon on a free port and a terminal-like socket. */
async function withDaemon(
  body: (daemon: Daemon, socket: TerminalSocket) => Promise<void>,
) {
  const work = await Deno.makeTempDir();
  const daemon = await startDaemon({
    port: 0,
    hostname: "127.0.0.1",
    routerPath: `${work}/router.sock`,
  });
  const socket = await terminalSocketDir();
  try {
    await body(daemon, socket);
  } finally {
    socket.listener.close();
    await daemon.close();
    await Deno.remove(socket.root, { recursive: true });
    await Deno.remove(work, { recursive: true });
  }
}

Deno.test("router: a terminal socket registers once; the entry dies with its connection", () =>
  withDaemon(async (daemon, socket) => {
    const session = id();
    const registration = await registerSession(
      daemon.router.path,
      session,
      socket.path,
    );
    assert.equal(daemon.router.lookup(session)?.socketPath, socket.path);
    await assert.rejects(
      registerSession(daemon.router.path, session, socket.path),
      /already registered/,
    );
    registration.close();
    await waitUntil(
      () => daemon.router.lookup(session) === undefined,
      2000,
      "unregister",
    );
  }));

Deno.test("router: refuses sockets that are not et terminal sockets", () =>
  withDaemon(async (daemon, socket) => {
    const other = Deno.listen({
      transport: "unix",
      path: `${socket.dir}/agent.sock`,
    });
    const refused = (path: string, why: RegExp) =>
      assert.rejects(registerSession(daemon.router.path, id(), path), why);
    try {
      // Another service's socket, even inside an et directory.
      await refused(`${socket.dir}/agent.sock`, /not an et terminal socket/);
      // A symlink with the right name, pointing at another socket.
      const link = `${socket.dir}/${"ab".repeat(8)}.sock`;
      await Deno.symlink(`${socket.dir}/agent.sock`, link);
      await refused(link, /not a socket/);
      // Relative and dotted paths.
      await refused(`et/${"cd".repeat(8)}.sock`, /malformed|absolute/);
      await refused(`${socket.dir}/../et/${"cd".repeat(8)}.sock`, /normalized/);
      // A directory others can enter.
      await Deno.chmod(socket.dir, 0o755);
      await refused(socket.path, /mode 0700/);
      await Deno.chmod(socket.dir, 0o700);
      // A socket owned by someone else than its directory (needs root).
      if (Deno.uid() === 0) {
        await Deno.chown(socket.path, 65534, 65534);
        await refused(socket.path, /different owners/);
        await Deno.chown(socket.path, 0, 0);
      }
      // Garbage registrations.
      for (
        const line of [
          "not json\n",
          "{}\n",
          '{"op":"register","id":"zz","socket":"/x"}\n',
        ]
      ) {
        const conn = await Deno.connect({
          transport: "unix",
          path: daemon.router.path,
        });
        await conn.write(new TextEncoder().encode(line));
        const answer = new Uint8Array(200);
        const n = await conn.read(answer);
        assert.match(
          new TextDecoder().decode(answer.subarray(0, n ?? 0)),
          /"ok":false/,
        );
        conn.close();
      }
      // And the router still takes a proper registration.
      const registration = await registerSession(
        daemon.router.path,
        id(),
        socket.path,
      );
      registration.close();
    } finally {
      other.close();
    }
  }));

Deno.test("daemon: garbage and unknown ids are refused while a live session keeps flowing", () =>
  withDaemon(async (daemon, socket) => {
    const lines: string[] = [];
    const sink: LogSink = (line) => lines.push(line);
    configureLog({ level: "warn", sink });
    const secret = generateSessionSecret();
    const server = await EternalConnection.create(secret, "server");
    const client = await EternalConnection.create(secret, "client");
    // Ends when withDaemon closes the socket's listener.
    acceptEach(socket.listener, (conn) => serverHandshake(conn, () => server));
    const registration = await registerSession(
      daemon.router.path,
      toHex(secret.id),
      socket.path,
    );
    // Connections reset while queued must not stop the daemon's listener.
    await resetStorm(daemon.port, 100);
    const loop = keepConnected(client, {
      dial: () => Deno.connect({ hostname: "127.0.0.1", port: daemon.port }),
    });
    try {
      const size = 20_000_000;
      const data = patternBytes(size, 31);
      const hash = new StreamHash();
      await Promise.all([
        client.channel(1).write(data),
        attackListener(daemon.port),
        (async () => {
          while (hash.size < size) {
            hash.update((await server.channel(1).read())!);
          }
        })(),
      ]);
      assert.equal(
        hash.digest(),
        createHash("sha256").update(data).digest("hex"),
      );
      assert.ok(lines.some((line) => line.includes("refused unknown session")));
      assert.ok(lines.some((line) => line.includes("refused:")));
      // The relay carried the handshake end to end: the daemon holds no key,
      // yet the session is authenticated and resumes through it.
      client.detach("test drop");
      await waitUntil(
        () => client.connected,
        5000,
        "resume through the daemon",
      );
    } finally {
      client.fail(new Error("done"));
      server.fail(new Error("done"));
      await loop;
      registration.close();
      configureLog({ level: "silent" });
    }
  }));
