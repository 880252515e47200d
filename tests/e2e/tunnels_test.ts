/**
 * Tunnels end to end (real sshd, daemon, fault proxy): forward and reverse
 * tunnels carry HTTP, 20 MB through cuts arrive hash-exact, a stalled
 * tunnel connection stalls nothing else, ENVVAR sockets, agent
 * forwarding across a reconnect, `-N`, and malformed specs.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { patternBytes } from "../helpers/session_pair.ts";
import {
  PipedClient,
  sha256,
  shellAnswers,
  sleep,
  waitUntil,
  withProxiedSession,
  withSession,
} from "./_client.ts";
import { E2E_TEST, ET, withWorld } from "./_world.ts";
import { withTestAgent } from "../helpers/ssh_agent.ts";

/** A TCP port free right now on 127.0.0.1 (bound, read, released). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** An HTTP server on loopback answering `body` + the path. */
function httpServer(body: string) {
  const controller = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: controller.signal,
    onListen: () => {},
  }, (request) => new Response(`${body} ${new URL(request.url).pathname}`));
  return {
    port: server.addr.port,
    close: async () => {
      controller.abort();
      await server.finished;
    },
  };
}

/** Fetches through a tunnel port, retrying while the tunnel comes up. */
async function fetchText(url: string, timeoutMs = 30_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (true) {
    try {
      const response = await fetch(url, { headers: { connection: "close" } });
      return await response.text();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(200);
    }
  }
}

/** A TCP server sending `bytes` to each connection, then closing it. */
function blobServer(bytes: Uint8Array) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        try {
          for (let at = 0; at < bytes.length; at += 256 * 1024) {
            const chunk = bytes.subarray(at, at + 256 * 1024);
            for (let o = 0; o < chunk.length;) {
              o += await conn.write(chunk.subarray(o));
            }
          }
        } catch { /* the reader went away */ }
        try {
          conn.close();
        } catch { /* closed */ }
        conns.delete(conn);
      })();
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const conn of conns) {
        try {
          conn.close();
        } catch { /* closed */ }
      }
      await serving.catch(() => {});
    },
  };
}

/** Connects to a local port (retrying while it comes up) and reads to EOF. */
async function readAll(port: number): Promise<Uint8Array> {
  const conn = await connectRetrying(port);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buffer = new Uint8Array(256 * 1024);
  for (let n; (n = await conn.read(buffer)) !== null;) {
    chunks.push(buffer.slice(0, n));
    total += n;
  }
  conn.close();
  const all = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    all.set(chunk, at);
    at += chunk.length;
  }
  return all;
}

async function connectRetrying(port: number): Promise<Deno.TcpConn> {
  const deadline = Date.now() + 30_000;
  while (true) {
    try {
      return await Deno.connect({ hostname: "127.0.0.1", port });
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(200);
    }
  }
}

/** A raw HTTP/1.0 GET over a Unix socket; returns the body. */
async function unixGet(path: string, target: string): Promise<string> {
  const deadline = Date.now() + 30_000;
  while (true) {
    try {
      const conn = await Deno.connect({ transport: "unix", path });
      await conn.write(
        new TextEncoder().encode(`GET ${target} HTTP/1.0\r\nHost: x\r\n\r\n`),
      );
      let text = "";
      const buffer = new Uint8Array(4096);
      for (let n; (n = await conn.read(buffer)) !== null;) {
        text += new TextDecoder().decode(buffer.subarray(0, n));
      }
      conn.close();
      return text.slice(text.indexOf("\r\n\r\n") + 4);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(200);
    }
  }
}

/** A TCP port free right now on ::1. */
function freePort6(): number {
  const listener = Deno.listen({ hostname: "::1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test({
  ...E2E_TEST,
  name:
    "forward (-t) and reverse (-r) tunnels each carry an HTTP request: ports, IPv6 in brackets, a Unix socket source",
  fn: async () => {
    const remoteSide = httpServer("remote-service");
    const localSide = httpServer("laptop-service");
    const controller = new AbortController();
    const remote6 = Deno.serve({
      hostname: "::1",
      port: 0,
      signal: controller.signal,
      onListen: () => {},
    }, () => new Response("remote-v6"));
    const forwardPort = freePort();
    const reversePort = freePort();
    const forward6 = freePort6();
    const dir = await Deno.makeTempDir({ prefix: "et-fwdsock-" });
    const socket = `${dir}/fwd.sock`;
    try {
      await withSession({
        extra: [
          "-t",
          `${forwardPort}:${remoteSide.port},[::1]:${forward6}:[::1]:${remote6.addr.port}`,
          "-t",
          `${socket}:${remoteSide.port}`,
          "-r",
          `${reversePort}:${localSide.port}`,
        ],
      }, async () => {
        assert.equal(
          await fetchText(`http://127.0.0.1:${forwardPort}/fwd`),
          "remote-service /fwd",
        );
        assert.equal(
          await fetchText(`http://127.0.0.1:${reversePort}/rev`),
          "laptop-service /rev",
        );
        assert.equal(
          await fetchText(`http://[::1]:${forward6}/six`),
          "remote-v6",
        );
        assert.equal(await unixGet(socket, "/unix"), "remote-service /unix");
        // Sources bind to loopback only: not reachable on another address.
        const other = Deno.networkInterfaces().find((i) =>
          i.family === "IPv4" && !i.address.startsWith("127.")
        );
        if (other) {
          await assert.rejects(
            Deno.connect({ hostname: other.address, port: forwardPort }),
          );
        }
      });
    } finally {
      controller.abort();
      await remote6.finished;
      await remoteSide.close();
      await localSide.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  ...E2E_TEST,
  name:
    "20 MB through a tunnel arrive hash-exact while the session is cut, after a first connection refused for 1.5 s",
  fn: async () => {
    const blob = patternBytes(20 * 1024 * 1024, 7);
    const source = blobServer(blob);
    const forwardPort = freePort();
    try {
      await withProxiedSession({
        extra: ["-t", `${forwardPort}:${source.port}`],
        // Faults from before the first handshake: every connection is
        // refused for the first 1.5 s (the tunnel listens already).
        prepare: (proxy) => {
          proxy.setRefuse(true);
          setTimeout(() => proxy.setRefuse(false), 1500);
        },
      }, async ({ proxy, client }) => {
        // Cut at fixed points of the stream, so every run cuts mid-transfer
        // however fast the machine is.
        const conn = await connectRetrying(forwardPort);
        const hash = createHash("sha256");
        const buffer = new Uint8Array(256 * 1024);
        const cutAt = [2, 6, 10, 14, 18].map((mb) => mb * 1024 * 1024);
        let cuts = 0;
        let total = 0;
        for (let n; (n = await conn.read(buffer)) !== null;) {
          hash.update(buffer.subarray(0, n));
          total += n;
          if (cutAt.length > 0 && total >= cutAt[0]) {
            cutAt.shift();
            if (proxy.cut() > 0) cuts++;
            await sleep(300);
          }
        }
        conn.close();
        assert.equal(total, blob.length);
        assert.equal(hash.digest("hex"), sha256(blob));
        assert.ok(cuts >= 3, `only ${cuts} cuts during the transfer`);
        // The terminal is still there after all that.
        await shellAnswers(client);
      });
    } finally {
      await source.close();
    }
  },
});

Deno.test({
  ...E2E_TEST,
  name:
    "ten tunnel connections, one stalled: the nine complete and the terminal echoes",
  fn: async () => {
    const blob = patternBytes(3 * 1024 * 1024, 11);
    const source = blobServer(blob);
    const forwardPort = freePort();
    try {
      await withSession({
        extra: ["-t", `${forwardPort}:${source.port}`],
      }, async ({ client }) => {
        // The stalled one: connected, never read.
        const stalled = await connectRetrying(forwardPort);
        await sleep(500);
        const nine = await Promise.all(
          Array.from({ length: 9 }, () => readAll(forwardPort)),
        );
        for (const bytes of nine) assert.equal(sha256(bytes), sha256(blob));
        await client.type("echo ECHO-$((40+2))\n");
        await client.waitFor("ECHO-42", 10_000);
        // The stalled one still holds its data for when it reads.
        const rest: Uint8Array[] = [];
        const buffer = new Uint8Array(256 * 1024);
        let total = 0;
        for (let n; (n = await stalled.read(buffer)) !== null;) {
          rest.push(buffer.slice(0, n));
          total += n;
        }
        stalled.close();
        assert.equal(total, blob.length);
      });
    } finally {
      await source.close();
    }
  },
});

Deno.test({
  ...E2E_TEST,
  name:
    "-r ENVVAR:/path: the shell finds a private socket in ENVVAR that reaches the client's socket",
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "et-envsock-" });
    const path = `${dir}/laptop.sock`;
    const controller = new AbortController();
    const server = Deno.serve({
      path,
      transport: "unix",
      signal: controller.signal,
      onListen: () => {},
    }, () => new Response("via-unix-socket"));
    try {
      await withSession({
        extra: ["-r", `MY_SOCK:${path}`],
        privateRuntime: true,
      }, async ({ world, client }) => {
        await client.type(
          `echo "S=$MY_SOCK"; curl -s --unix-socket "$MY_SOCK" http://x/; echo; stat -c 'D=%a' "$(dirname "$MY_SOCK")"\n`,
        );
        await client.waitFor(/D=\d+/, 20_000);
        assert.match(client.stdout, /via-unix-socket/);
        assert.match(client.stdout, /D=700/);
        const sock = /S=(\/\S+)/.exec(client.stdout)![1];
        assert.ok(
          sock.startsWith(`${world.runtimeDir}/tunnels-`),
          `${sock} not in the private runtime dir`,
        );
        // Gone with the session.
        await client.type("exit\n");
        assert.equal(await client.exit(), 0);
        await waitUntil(
          async () => !(await Deno.stat(sock).then(() => true, () => false)),
          10_000,
          "the socket to be removed",
        );
      });
    } finally {
      controller.abort();
      await server.finished;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});

/** Runs a command; returns its status and output. */
async function run(command: string, args: string[], env = {}) {
  const out = await new Deno.Command(command, { args, env }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

Deno.test({
  ...E2E_TEST,
  name:
    "-f forwards the agent: ssh-add -l on the remote lists the test key, also after a forced reconnect",
  fn: () =>
    withTestAgent("et-agent-test-key", async (agentSock) => {
      await withProxiedSession({
        extra: ["-f", "--ssh-socket", agentSock],
      }, async ({ proxy, client }) => {
        await client.type("ssh-add -l; echo LISTED-$((1+1))\n");
        await client.waitFor("LISTED-2", 20_000);
        assert.match(client.stdout, /et-agent-test-key \(ED25519\)/);
        assert.equal(proxy.cut() > 0, true);
        await client.type(
          "ssh-add -l | sed s/^/AFTER:/; echo LISTED-$((2+1))\n",
        );
        await client.waitFor("LISTED-3", 30_000);
        assert.match(client.stdout, /AFTER:.*et-agent-test-key \(ED25519\)/);
      });
    }),
});

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  Deno.test({
    ...E2E_TEST,
    name:
      `-N carries a forward tunnel with no shell; ${signal} ends it and the remote session`,
    fn: async () => {
      const remoteSide = httpServer("no-terminal");
      const forwardPort = freePort();
      try {
        await withWorld({}, async (world) => {
          const deadPort = freePort(); // nobody listens there
          const deadForward = freePort();
          const client = new PipedClient(
            world.client([
              "-N",
              "-t",
              `${forwardPort}:${remoteSide.port},${deadForward}:${deadPort}`,
            ]),
          );
          try {
            assert.equal(
              await fetchText(`http://127.0.0.1:${forwardPort}/n`),
              "no-terminal /n",
            );
            // A refused connection ends alone, with a line on stderr.
            const refused = await connectRetrying(deadForward);
            assert.equal(await refused.read(new Uint8Array(16)), null);
            refused.close();
            await client.waitForStderr(
              new RegExp(
                `tunnel connection refused by the remote side: cannot connect to 127\\.0\\.0\\.1:${deadPort}`,
              ),
              10_000,
            );
            assert.equal(
              await fetchText(`http://127.0.0.1:${forwardPort}/again`),
              "no-terminal /again",
            );
            const sessions = await world.sessionProcesses();
            assert.equal(sessions.length, 1);
            // No shell: the session process has no child.
            const children = await run("pgrep", [
              "-P",
              String(sessions[0].pid),
            ]);
            assert.equal(
              children.stdout.trim(),
              "",
              "a -N session has no program",
            );
            const listArgv = world.client(["--list"]);
            const list = await run(listArgv[0], listArgv.slice(1));
            assert.match(
              list.stdout,
              /\(tunnels only, -N\)/,
              list.stdout + list.stderr,
            );
            client.signal(signal);
            assert.equal(await client.exit(10_000), 0, client.stderr);
            await waitUntil(
              async () => (await world.sessionProcesses()).length === 0,
              10_000,
              "the remote session to end",
            );
          } finally {
            await client.close();
          }
        });
      } finally {
        await remoteSide.close();
      }
    },
  });
}

Deno.test({
  ...E2E_TEST,
  name: "a malformed tunnel is refused in one line naming the bad part, exit 2",
  fn: async () => {
    for (
      const [args, message] of [
        [["-t", "8000:9000-9002"], /-t '8000:9000-9002': .*range/],
        [["-r", "7000:[::1:80"], /-r '7000:\[::1:80': unbalanced '\['/],
        [["-t", "SOCK:/tmp/x"], /ENVVAR sources are for -r only/],
        [["-N", "-c", "ls"], /-N\/--no-terminal runs no command/],
      ] as const
    ) {
      const result = await run(ET[0], [...ET.slice(1), ...args, "host"]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
    }
  },
});

Deno.test({
  ...E2E_TEST,
  name:
    "a tunnel that cannot listen fails in one line: -t before any session, -r before the shell",
  fn: async () => {
    const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (busy.addr as Deno.NetAddr).port;
    try {
      await withWorld({}, async (world) => {
        const forward = new PipedClient(world.client(["-t", `${port}:80`]));
        assert.equal(await forward.exit(30_000), 1);
        assert.match(
          forward.stderr,
          new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port} for -t`),
        );
        assert.equal(forward.stderr.trim().split("\n").length, 1);
        assert.equal((await world.sessionProcesses()).length, 0);
        const reverse = new PipedClient(world.client(["-r", `${port}:80`]));
        assert.equal(await reverse.exit(30_000), 1);
        assert.match(
          reverse.stderr,
          new RegExp(
            `cannot listen on 127\\.0\\.0\\.1:${port} for a reverse tunnel`,
          ),
        );
        assert.equal(
          reverse.stderr.trim().split("\n").length,
          1,
          reverse.stderr,
        );
        await waitUntil(
          async () => (await world.sessionProcesses()).length === 0,
          10_000,
          "no session left behind",
        );
      });
    } finally {
      busy.close();
    }
  },
});

Deno.test({
  ...E2E_TEST,
  name:
    "--attach with -t: the new client's forward tunnel works; the session's reverse tunnel reaches the first client only while it is there",
  fn: async () => {
    const remoteSide = httpServer("remote-after-attach");
    const localSide = httpServer("first-client");
    const reversePort = freePort();
    const forwardPort = freePort();
    try {
      await withWorld({}, async (world) => {
        const first = new PipedClient(
          world.client(["-r", `${reversePort}:${localSide.port}`]),
        );
        const clients = [first];
        try {
          await shellAnswers(first);
          assert.equal(
            await fetchText(`http://127.0.0.1:${reversePort}/r`),
            "first-client /r",
          );
          first.kill();
          await first.exit();
          const second = new PipedClient(
            world.client([
              "--attach",
              "-t",
              `${forwardPort}:${remoteSide.port}`,
            ]),
          );
          clients.push(second);
          await shellAnswers(second);
          assert.equal(
            await fetchText(`http://127.0.0.1:${forwardPort}/f`),
            "remote-after-attach /f",
          );
          // The reverse listener stays with the session; the new client,
          // which asked for no -r, refuses its connections one by one.
          const conn = await connectRetrying(reversePort);
          await conn.write(new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n"));
          assert.equal(await conn.read(new Uint8Array(64)), null);
          conn.close();
          await second.type("echo STILL-$((3*3))\n");
          await second.waitFor("STILL-9", 10_000);
        } finally {
          for (const client of clients) await client.close();
        }
      });
    } finally {
      await remoteSide.close();
      await localSide.close();
    }
  },
});
