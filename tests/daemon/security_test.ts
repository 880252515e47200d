/**
 * The root daemon on a shared machine, attacked by a second local user
 * (created with useradd; these tests need root, as CI has) and by remote
 * peers: it never connects to a path anyone names, ids stay with their
 * users (across a restart too), and floods of router connections, silent
 * TCP connections or impossible frames cost bounded memory while a real
 * session keeps working.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { configureLog } from "../../src/log.ts";
import {
  type Daemon,
  HELLO_FRAME_BYTES,
  MAX_PENDING,
  MAX_PENDING_PER_SOURCE,
  MAX_ROUTER_CONNECTIONS_PER_UID,
  startDaemon,
} from "../../src/daemon/mod.ts";
import { DaemonRegistration } from "../../src/terminal/daemon_registration.ts";
import {
  acceptEach,
  EternalConnection,
  generateSessionSecret,
  keepConnected,
  serverHandshake,
  toHex,
} from "../../src/transport/mod.ts";
import { type LocalUser, localUser } from "../helpers/attack.ts";
import { patternBytes, waitUntil } from "../helpers/session_pair.ts";

configureLog({ level: "silent" });

const ATTACKER = new URL("./_attacker.ts", import.meta.url).pathname;
const DAEMON = new URL("./_daemon_process.ts", import.meta.url).pathname;

const asRoot = {
  ignore: Deno.uid() !== 0, // a second user needs useradd
  sanitizeResources: false,
  sanitizeOps: false,
};

const newId = () => toHex(crypto.getRandomValues(new Uint8Array(16)));

/** Runs the attacker program as `user` (or as root); its JSON report. */
// deno-lint-ignore no-explicit-any
async function attack(user: LocalUser | null, args: string[]): Promise<any> {
  const child = user
    ? user.deno([ATTACKER, ...args])
    : new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", ATTACKER, ...args],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  const output = await child.output();
  const stdout = new TextDecoder().decode(output.stdout).trim();
  if (output.code !== 0) {
    throw new Error(
      `attacker ${args[0]} failed: ${new TextDecoder().decode(output.stderr)}`,
    );
  }
  return JSON.parse(stdout.split("\n").at(-1)!);
}

/** A directory every user can traverse, with the router socket inside. */
async function world() {
  const dir = await Deno.makeTempDir({ prefix: "et-security-" });
  await Deno.chmod(dir, 0o755);
  return { dir, routerPath: `${dir}/router.sock` };
}

async function withDaemon(
  body: (daemon: Daemon, dir: string) => Promise<void>,
) {
  const { dir, routerPath } = await world();
  const daemon = await startDaemon({
    port: 0,
    hostname: "127.0.0.1",
    routerPath,
  });
  try {
    await body(daemon, dir);
  } finally {
    await daemon.close();
    await Deno.remove(dir, { recursive: true });
  }
}

/** A HELLO frame for session `id`, as a client sends it. */
function helloFrame(id: string): Uint8Array {
  const frame = new Uint8Array(HELLO_FRAME_BYTES);
  new DataView(frame.buffer).setUint32(0, HELLO_FRAME_BYTES - 4);
  frame[4] = 1;
  frame[5] = 1;
  for (let i = 0; i < 16; i++) {
    frame[6 + i] = parseInt(id.slice(2 * i, 2 * i + 2), 16);
  }
  crypto.getRandomValues(frame.subarray(22));
  return frame;
}

/**
 * A real session of ours (root) through the daemon: registered, its client
 * connecting with keepConnected from `localAddress`.
 */
async function realSession(port: number, routerPath: string) {
  const secret = generateSessionSecret();
  const server = await EternalConnection.create(secret, "server");
  const client = await EternalConnection.create(secret, "client");
  const registration = await DaemonRegistration.register(
    routerPath,
    toHex(secret.id),
  );
  const serving = (async () => {
    for (let handed; (handed = await registration.accept()) !== null;) {
      serverHandshake(handed.pipe, () => server, { peer: handed.peer });
    }
  })();
  const loop = keepConnected(client, {
    dial: () => Deno.connect({ hostname: "127.0.0.1", port }),
  });
  return {
    id: toHex(secret.id),
    client,
    /** Sends `size` bytes client → terminal and checks they all arrive. */
    async carries(size: number, ms = 20_000) {
      const data = patternBytes(size, 7);
      let got = 0;
      await Promise.race([
        Promise.all([
          client.channel(1).write(data),
          (async () => {
            while (got < size) got += (await server.channel(1).read())!.length;
          })(),
        ]),
        new Promise((_, reject) =>
          setTimeout(
            () => reject(new Error(`only ${got} of ${size} bytes arrived`)),
            ms,
          )
        ),
      ]);
    },
    async close() {
      client.fail(new Error("done"));
      server.fail(new Error("done"));
      await loop;
      registration.close();
      await serving;
    },
  };
}

/** Sends `bytes` on a fresh TCP connection and reads until it closes. */
async function sendAndDrain(port: number, bytes: Uint8Array) {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(bytes);
      const sink = new Uint8Array(1024);
      const timer = setTimeout(() => conn.close(), 3000);
      try {
        while ((await conn.read(sink)) !== null) { /* drain */ }
      } catch { /* closed */ }
      clearTimeout(timer);
    } finally {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  } catch { /* refused: fine */ }
}

Deno.test({
  ...asRoot,
  name:
    "security: swapping a socket for a symlink to root's socket never makes the daemon connect there",
  async fn() {
    const user = await localUser();
    await withDaemon(async (daemon, dir) => {
      // A root service's socket, reachable by root only.
      const targetPath = `${dir}/root-service.sock`;
      const target = Deno.listen({ transport: "unix", path: targetPath });
      await Deno.chmod(targetPath, 0o600);
      let reached = 0;
      const serving = acceptEach(target, (conn) => {
        reached++;
        conn.close();
      });
      const attackerId = newId();
      const attacking = attack(user, [
        "swap",
        daemon.router.path,
        attackerId,
        targetPath,
        "6000",
      ]);
      // Meanwhile, HELLOs for the attacker's own id, as fast as they go.
      await waitUntil(
        () => daemon.router.lookup(attackerId) !== undefined,
        20_000,
        "the attacker's registration",
      );
      let hellos = 0;
      const until = Date.now() + 5500;
      while (Date.now() < until) {
        await Promise.all(
          Array.from({ length: 8 }, () => {
            hellos++;
            return sendAndDrain(
              daemon.port,
              new Uint8Array([...helloFrame(attackerId), 1, 2, 3]),
            );
          }),
        );
      }
      const report = await attacking;
      target.close();
      await serving;
      assert.match(report.oldStyle, /outdated et terminal/);
      assert.equal(report.ok, true);
      assert.ok(report.swaps > 100, `only ${report.swaps} swaps`);
      // Its connections went to its own registration, not anywhere else.
      assert.ok(report.handed > 0, "the attacker got its own connections");
      assert.equal(reached, 0, "nothing ever connected to the root socket");
      console.log(
        `${report.swaps} swaps, ${hellos} hellos, ${report.handed} handed to the attacker, 0 to the target`,
      );
    });
  },
});

Deno.test({
  ...asRoot,
  name: "security: another user cannot register a live session's id",
  async fn() {
    const user = await localUser();
    await withDaemon(async (daemon) => {
      const session = await realSession(daemon.port, daemon.router.path);
      try {
        const report = await attack(user, [
          "register",
          daemon.router.path,
          session.id,
          "0",
        ]);
        assert.equal(report.ok, false);
        assert.match(report.error, /registered by another user/);
        assert.equal(daemon.router.lookup(session.id)?.owner.uid, 0);
        await session.carries(1_000_000);
      } finally {
        await session.close();
      }
    });
  },
});

/** The daemon as its own process (SIGKILL-able, memory measurable). */
async function spawnDaemon(routerPath: string, port = 0) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", DAEMON, routerPath, String(port)],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let log = "";
  const draining = child.stderr.pipeThrough(new TextDecoderStream())
    .pipeTo(new WritableStream({ write: (text) => void (log += text) }))
    .catch(() => {});
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/port (\d+)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`daemon died: ${log}`);
    text += value;
  }
  reader.releaseLock();
  return {
    pid: child.pid,
    port: Number(text.match(/port (\d+)/)![1]),
    log: () => log,
    async kill(signal: Deno.Signal = "SIGKILL") {
      try {
        child.kill(signal);
      } catch { /* gone */ }
      await child.status;
      await child.stdout.cancel().catch(() => {});
      await draining;
    },
  };
}

Deno.test({
  ...asRoot,
  name:
    "security: after a daemon restart another user cannot take an id over; its own user can",
  async fn() {
    const user = await localUser();
    const { dir, routerPath } = await world();
    let daemon = await spawnDaemon(routerPath);
    const ours = newId();
    const dying = newId();
    try {
      const registration = await DaemonRegistration.register(routerPath, ours);
      // A terminal of ours that will be dead by the restart.
      const doomed = attack(null, ["register", routerPath, dying, "60000"])
        .catch(() => null); // it is killed below
      const record = `${routerPath}.sessions/${dying}`;
      await waitUntil(
        () => {
          try {
            return Deno.statSync(record).isFile;
          } catch {
            return false;
          }
        },
        20_000,
        "the doomed terminal's registration",
      );
      await daemon.kill("SIGKILL");
      // The doomed terminal dies too (its child process: find it by its args).
      for await (const entry of Deno.readDir("/proc")) {
        if (!/^\d+$/.test(entry.name)) continue;
        const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`)
          .catch(() => "");
        if (cmdline.includes(dying)) Deno.kill(Number(entry.name), "SIGKILL");
      }
      await doomed;
      registration.close();
      daemon = await spawnDaemon(routerPath);
      // The id sent in clear in every HELLO is still ours.
      const stolen = await attack(user, ["register", routerPath, ours, "0"]);
      assert.equal(stolen.ok, false);
      assert.match(stolen.error, /another user's session/);
      const back = await DaemonRegistration.register(routerPath, ours);
      back.close();
      // The id of a terminal that is gone is free for anyone.
      const taken = await attack(user, ["register", routerPath, dying, "0"]);
      assert.equal(taken.ok, true);
    } finally {
      await daemon.kill("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  ...asRoot,
  name:
    "security: a flood of router connections with endless lines is bounded; the real session keeps working",
  async fn() {
    const user = await localUser();
    await withDaemon(async (daemon) => {
      const session = await realSession(daemon.port, daemon.router.path);
      try {
        await session.carries(100_000);
        const flooding = attack(user, [
          "flood",
          daemon.router.path,
          "300",
          "4000",
        ]);
        let most = 0;
        const sampler = setInterval(() => {
          most = Math.max(most, daemon.router.connections);
        }, 5);
        await sleep(1500);
        // Meanwhile: the session flows and a new registration gets in.
        await session.carries(5_000_000);
        const another = await DaemonRegistration.register(
          daemon.router.path,
          newId(),
        );
        another.close();
        const report = await flooding;
        clearInterval(sampler);
        console.log(
          `flood: ${report.opened} connections, at most ${most} open at once at the router`,
        );
        console.log(JSON.stringify(report.answers));
        // Ours (one registration, one being made) and the attacker's cap.
        assert.ok(
          most <= MAX_ROUTER_CONNECTIONS_PER_UID + 2,
          `${most} router connections at once`,
        );
        assert.ok(report.answers["too many connections"] > 0);
        assert.ok(report.answers["request longer than N bytes"] > 0);
        await session.carries(1_000_000);
        await waitUntil(
          () => daemon.router.connections === 1,
          10_000,
          "the flood's connections all closed",
        );
      } finally {
        await session.close();
      }
    });
  },
});

function sleep(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The resident memory of process `pid`, in bytes. */
async function rss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(status.match(/VmRSS:\s+(\d+) kB/)![1]) * 1024;
}

/**
 * Opens a node:net connection from `localAddress` (any 127.x.y.z works on
 * Linux loopback: many sources without many hosts).
 */
function connectFrom(
  port: number,
  localAddress: string,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: "127.0.0.1", localAddress });
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

Deno.test({
  ...asRoot,
  name:
    "security: 500 HELLO headers announcing 128 KiB are refused at once without allocating",
  async fn() {
    const { dir, routerPath } = await world();
    const daemon = await spawnDaemon(routerPath);
    try {
      // Warm up, then measure.
      await Promise.all(
        Array.from(
          { length: 50 },
          () => sendAndDrain(daemon.port, helloFrame(newId())),
        ),
      );
      await sleep(500);
      const before = await rss(daemon.pid);
      const header = new Uint8Array(4 + 60 * 1024);
      new DataView(header.buffer).setUint32(0, 128 * 1024);
      header[4] = 1;
      const timings = await Promise.all(
        Array.from({ length: 500 }, async (_, i) => {
          // 25 sources, 20 connections each: under the per-source cap.
          const socket = await connectFrom(
            daemon.port,
            `127.0.4.${i % 25 + 1}`,
          );
          const started = performance.now();
          return await new Promise<{ ms: number; refused: boolean }>(
            (resolve) => {
              let answer = Buffer.alloc(0);
              socket.on("data", (d) => answer = Buffer.concat([answer, d]));
              socket.on("error", () => {});
              socket.on("close", () =>
                resolve({
                  ms: performance.now() - started,
                  // A REFUSE frame, code 5 (malformed), if it got here.
                  refused: answer[4] === 0x05 && (answer[5] & 0x7f) === 5,
                }));
              socket.write(header);
            },
          );
        }),
      );
      const after = await rss(daemon.pid);
      const slowest = Math.max(...timings.map((t) => t.ms));
      const refused = timings.filter((t) => t.refused).length;
      console.log(
        `RSS ${(before / 2 ** 20).toFixed(1)} → ${
          (after / 2 ** 20).toFixed(1)
        } MiB; ${refused}/500 refused, slowest ${slowest.toFixed(0)} ms`,
      );
      // Each is refused after its first four bytes; the REFUSE frame itself
      // may be lost to the reset that closing on unread bytes sends.
      assert.ok(refused > 0);
      assert.ok(slowest < 2000, `closed after ${slowest} ms`);
      // Allocating the frames would take 500 × 128 KiB = 62.5 MiB.
      assert.ok(
        after - before < 16 * 2 ** 20,
        `RSS grew by ${((after - before) / 2 ** 20).toFixed(1)} MiB`,
      );
    } finally {
      await daemon.kill("SIGTERM");
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  ...asRoot,
  name:
    "security: 2000 connections that never speak are capped; a real session still connects and flows",
  async fn() {
    await withDaemon(async (daemon) => {
      const silent: net.Socket[] = [];
      const open = new Set<net.Socket>();
      const fromOne = new Set<net.Socket>();
      const track = (socket: net.Socket, set?: Set<net.Socket>) => {
        silent.push(socket);
        open.add(socket);
        set?.add(socket);
        socket.on("error", () => {});
        socket.on("close", () => {
          open.delete(socket);
          set?.delete(socket);
        });
      };
      let most = 0;
      const sampler = setInterval(() => {
        most = Math.max(most, daemon.pending);
      }, 2);
      try {
        // 2000 from 100 sources, then 100 more from a single one.
        for (let batch = 0; batch < 20; batch++) {
          await Promise.all(
            Array.from({ length: 100 }, async (_, i) =>
              track(
                await connectFrom(
                  daemon.port,
                  `127.0.5.${i + 1}`,
                ),
              )),
          );
        }
        await Promise.all(
          Array.from(
            { length: 100 },
            async () =>
              track(await connectFrom(daemon.port, "127.0.6.1"), fromOne),
          ),
        );
        await waitUntil(
          () =>
            open.size <= MAX_PENDING && fromOne.size <= MAX_PENDING_PER_SOURCE,
          5000,
          "the caps on pending connections",
        );
        // A real session, from yet another source, gets in at once.
        const started = performance.now();
        const session = await realSession(daemon.port, daemon.router.path);
        try {
          await session.carries(2_000_000, 4000);
          console.log(
            `session through ${
              (performance.now() - started).toFixed(0)
            } ms after 2100 silent connections; at most ${most} pending`,
          );
        } finally {
          await session.close();
        }
        assert.ok(most <= MAX_PENDING, `${most} pending at once`);
        // The daemon is still fine: a new registration works.
        (await DaemonRegistration.register(daemon.router.path, newId()))
          .close();
      } finally {
        clearInterval(sampler);
        for (const socket of silent) socket.destroy();
      }
    });
  },
});
