/**
 * The daemon and its router with real sockets: who may register what, and
 * a daemon under garbage that keeps handing a live session its
 * connections.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { configureLog, type LogSink } from "../../src/log.ts";
import { type Daemon, startDaemon } from "../../src/daemon/mod.ts";
import { ROUTER_LINE_LIMIT } from "../../src/session/mod.ts";
import { DaemonRegistration } from "../../src/terminal/daemon_registration.ts";
import {
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

const id = () => toHex(crypto.getRandomValues(new Uint8Array(16)));

/** Runs `body` with a daemon on a free port. */
async function withDaemon(body: (daemon: Daemon) => Promise<void>) {
  const work = await Deno.makeTempDir();
  const daemon = await startDaemon({
    port: 0,
    hostname: "127.0.0.1",
    routerPath: `${work}/router.sock`,
  });
  try {
    await body(daemon);
  } finally {
    await daemon.close();
    await Deno.remove(work, { recursive: true });
  }
}

/** Sends raw `bytes` to the router; resolves with everything it answers. */
async function rawRouter(path: string, bytes: Uint8Array): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    await conn.write(bytes).catch(() => {});
    let text = "";
    const buffer = new Uint8Array(512);
    const timer = setTimeout(() => conn.close(), 8000);
    try {
      for (let n; (n = await conn.read(buffer)) !== null;) {
        text += new TextDecoder().decode(buffer.subarray(0, n));
      }
    } catch { /* closed by us */ }
    clearTimeout(timer);
    return text;
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

const line = (text: string) => new TextEncoder().encode(text + "\n");

Deno.test("router: an id registers once, bound to its uid; the entry dies with its connection", () =>
  withDaemon(async (daemon) => {
    const session = id();
    const registration = await DaemonRegistration.register(
      daemon.router.path,
      session,
    );
    const live = daemon.router.lookup(session);
    assert.equal(live?.owner.uid, Deno.uid());
    assert.equal(live?.owner.pid, Deno.pid);
    const record = `${daemon.router.path}.sessions/${session}`;
    assert.equal(JSON.parse(await Deno.readTextFile(record)).uid, Deno.uid());
    await assert.rejects(
      DaemonRegistration.register(daemon.router.path, session),
      /already registered/,
    );
    registration.close();
    await waitUntil(
      () => daemon.router.lookup(session) === undefined,
      2000,
      "unregister",
    );
    await assert.rejects(Deno.stat(record), Deno.errors.NotFound);
    // Free again.
    (await DaemonRegistration.register(daemon.router.path, session)).close();
  }));

Deno.test("router: refuses malformed, outdated, overlong and chatty requests", () =>
  withDaemon(async (daemon) => {
    const path = daemon.router.path;
    for (
      const request of [
        "not json",
        "{}",
        '{"op":"register","id":"zz"}',
        `{"op":"register","id":"${"A".repeat(32)}"}`,
      ]
    ) {
      assert.match(await rawRouter(path, line(request)), /"ok":false/);
    }
    // A terminal of the relaying days names a socket to connect to.
    assert.match(
      await rawRouter(
        path,
        line(
          `{"op":"register","id":"${id()}","socket":"/tmp/et-0/${
            "ab".repeat(8)
          }.sock"}`,
        ),
      ),
      /outdated et terminal/,
    );
    // A line that never ends is cut at the limit.
    const started = performance.now();
    assert.match(
      await rawRouter(path, new Uint8Array(ROUTER_LINE_LIMIT + 100).fill(0x61)),
      /longer than 4096/,
    );
    assert.ok(performance.now() - started < 2000, "refused at once");
    // Bytes after the request.
    assert.match(
      await rawRouter(
        path,
        line(`{"op":"register","id":"${id()}"}\nmore`),
      ),
      /unexpected bytes/,
    );
    // Bytes after a registration end it.
    const session = id();
    const conn = await Deno.connect({ transport: "unix", path });
    await conn.write(line(`{"op":"register","id":"${session}"}`));
    const answer = new Uint8Array(64);
    const n = await conn.read(answer);
    assert.match(new TextDecoder().decode(answer.subarray(0, n!)), /"ok":true/);
    assert.ok(daemon.router.lookup(session));
    await conn.write(line("chatter"));
    await waitUntil(
      () => daemon.router.lookup(session) === undefined,
      2000,
      "registration ended by chatter",
    );
    assert.equal(await conn.read(answer), null);
    conn.close();
    // And the router still takes a proper registration.
    (await DaemonRegistration.register(path, id())).close();
    await waitUntil(
      () => daemon.router.connections === 0,
      2000,
      "every router connection closed",
    );
  }));

Deno.test("router: a request that never comes is dropped after the deadline", () =>
  withDaemon(async (daemon) => {
    const started = performance.now();
    const answer = await rawRouter(daemon.router.path, line("").subarray(1));
    const elapsed = performance.now() - started;
    assert.equal(answer, "");
    assert.ok(elapsed > 4500 && elapsed < 7000, `closed after ${elapsed} ms`);
  }));

Deno.test("daemon: garbage and unknown ids are refused while a live session keeps flowing", () =>
  withDaemon(async (daemon) => {
    const lines: string[] = [];
    const sink: LogSink = (line) => lines.push(line);
    configureLog({ level: "warn", sink });
    const secret = generateSessionSecret();
    const server = await EternalConnection.create(secret, "server");
    const client = await EternalConnection.create(secret, "client");
    const registration = await DaemonRegistration.register(
      daemon.router.path,
      toHex(secret.id),
    );
    const serving = (async () => {
      for (let handed; (handed = await registration.accept()) !== null;) {
        serverHandshake(handed.pipe, () => server, { peer: handed.peer });
      }
    })();
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
      // The handshake ran end to end: the daemon holds no key, yet the
      // session is authenticated and resumes through it.
      client.detach("test drop");
      await waitUntil(
        () => client.connected,
        5000,
        "resume through the daemon",
      );
      assert.equal(daemon.pending, 0);
    } finally {
      client.fail(new Error("done"));
      server.fail(new Error("done"));
      await loop;
      registration.close();
      await serving;
      configureLog({ level: "silent" });
    }
  }));

Deno.test("daemon: a terminal that stops taking its connections gets a few queued, then its clients are refused", () =>
  withDaemon(async (daemon) => {
    const session = id();
    const registration = await Deno.connect({
      transport: "unix",
      path: daemon.router.path,
    });
    await registration.write(line(`{"op":"register","id":"${session}"}`));
    const answer = new Uint8Array(64);
    assert.match(
      new TextDecoder().decode(
        answer.subarray(0, (await registration.read(answer))!),
      ),
      /"ok":true/,
    );
    // From now on it never reads.
    const hello = new Uint8Array(54);
    new DataView(hello.buffer).setUint32(0, 50);
    hello.set([1, 1], 4);
    for (let i = 0; i < 16; i++) {
      hello[6 + i] = parseInt(session.slice(2 * i, 2 * i + 2), 16);
    }
    let queued = 0;
    let refused = 0;
    const clients: Deno.Conn[] = [];
    for (let i = 0; i < 200; i++) {
      const conn = await Deno.connect({
        hostname: "127.0.0.1",
        port: daemon.port,
      });
      clients.push(conn);
      await conn.write(hello);
      const got = new Uint8Array(64);
      const timer = setTimeout(() => conn.close(), 100);
      const n = await conn.read(got).catch(() => null);
      clearTimeout(timer);
      if (n !== null && got[4] === 0x05) refused++;
      else queued++;
    }
    console.log(
      `${queued} queued for the stalled terminal, ${refused} refused`,
    );
    assert.ok(queued > 0 && queued <= 64, `${queued} queued`);
    assert.equal(queued + refused, 200);
    registration.close();
    for (const conn of clients) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }));
