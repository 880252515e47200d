/**
 * The daemon's listeners with real sockets: IPv4 and IPv6 on one port
 * (each family reaching its own socket), a list of `--bind` addresses, a
 * whole daemon reached over `::1`, and the start on a host without IPv6.
 */

import assert from "node:assert/strict";
import type { Logger } from "../../src/log.ts";
import { configureLog } from "../../src/log.ts";
import {
  bindListeners,
  type BoundListeners,
  DEFAULT_BIND_ADDRESSES,
} from "../../src/daemon/listeners.ts";
import { startDaemon } from "../../src/daemon/mod.ts";
import {
  accept,
  closeSocket,
  listenTcp,
  SocketError,
} from "../../src/platform/socket.ts";
import { waitUntil } from "../helpers/session_pair.ts";

configureLog({ level: "silent" });

/** A logger that keeps its warnings. */
function recordingLog(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  const keep = (line: string) => warnings.push(line);
  return {
    warnings,
    debug: () => {},
    info: () => {},
    warn: keep,
    error: keep,
  } as unknown as Logger & { warnings: string[] };
}

function closeAll(bound: BoundListeners) {
  for (const { fd } of bound.listeners) closeSocket(fd);
}

/** Connects to `host:port` and returns the address the listener `fd` saw. */
async function peerSeenBy(
  fd: number,
  host: string,
  port: number,
): Promise<string> {
  const conn = await Deno.connect({ hostname: host, port });
  try {
    let seen: string | null = null;
    await waitUntil(() => {
      const accepted = accept(fd);
      if (accepted) {
        seen = accepted.peer?.address ?? "?";
        closeSocket(accepted.fd);
      }
      return seen !== null;
    }, 5000);
    return seen!;
  } finally {
    conn.close();
  }
}

Deno.test("listeners: by default 0.0.0.0 and :: on one port, each family on its own socket", async () => {
  assert.deepEqual(DEFAULT_BIND_ADDRESSES, ["0.0.0.0", "::"]);
  const log = recordingLog();
  const bound = await bindListeners({ port: 0, log });
  try {
    assert.deepEqual(bound.listeners.map((l) => l.address), ["0.0.0.0", "::"]);
    assert.ok(bound.port > 0);
    assert.deepEqual(log.warnings, []);
    const [v4, v6] = bound.listeners;
    // The IPv6 socket is IPv6 only: IPv4 clients reach the IPv4 socket,
    // seen as IPv4 (not mapped), so the pending caps group them as such.
    assert.equal(await peerSeenBy(v4.fd, "127.0.0.1", bound.port), "127.0.0.1");
    assert.equal(accept(v6.fd), null);
    assert.equal(await peerSeenBy(v6.fd, "::1", bound.port), "::1");
    assert.equal(accept(v4.fd), null);
  } finally {
    closeAll(bound);
  }
});

Deno.test("listeners: --bind addresses, names resolved, duplicates once; a taken port is an error", async () => {
  const log = recordingLog();
  const bound = await bindListeners({
    addresses: ["127.0.0.1", "::1", "localhost", "127.0.0.1"],
    port: 0,
    log,
  });
  try {
    const addresses = bound.listeners.map((l) => l.address);
    assert.equal(new Set(addresses).size, addresses.length);
    assert.ok(addresses.includes("127.0.0.1") && addresses.includes("::1"));
    assert.equal(
      await peerSeenBy(bound.listeners[1].fd, "::1", bound.port),
      "::1",
    );
    // Explicit addresses never fall back: a failure is the daemon's error.
    await assert.rejects(
      bindListeners({ addresses: ["::1"], port: bound.port, log }),
      /bind\(::1:\d+\)/,
    );
    await assert.rejects(
      bindListeners({ addresses: ["no-such-host.invalid"], port: 0, log }),
      /^Error: cannot bind no-such-host\.invalid: /,
    );
  } finally {
    closeAll(bound);
  }
});

Deno.test("listeners: a host without IPv6 starts on IPv4 with one log line", async () => {
  // No IPv6-less host here: socket(AF_INET6) fails as it would there.
  const EAFNOSUPPORT = 97;
  const log = recordingLog();
  const bound = await bindListeners({
    port: 0,
    log,
    listen: (host, port, options) => {
      if (host.includes(":")) throw new SocketError("socket", EAFNOSUPPORT);
      return listenTcp(host, port, options);
    },
  });
  try {
    assert.deepEqual(bound.listeners.map((l) => l.address), ["0.0.0.0"]);
    assert.equal(log.warnings.length, 1);
    assert.match(
      log.warnings[0],
      /^no IPv6 on this host \(.*\): listening on IPv4 only$/,
    );
    assert.equal(
      await peerSeenBy(bound.listeners[0].fd, "127.0.0.1", bound.port),
      "127.0.0.1",
    );
  } finally {
    closeAll(bound);
  }
});

Deno.test("daemon: --bind 127.0.0.1 and ::1 answer a hello on both families", async () => {
  const work = await Deno.makeTempDir();
  const daemon = await startDaemon({
    port: 0,
    hostname: ["127.0.0.1", "::1"],
    routerPath: `${work}/router.sock`,
    stateDir: null,
  });
  try {
    assert.deepEqual(daemon.addresses, ["127.0.0.1", "::1"]);
    for (const host of ["127.0.0.1", "::1"]) {
      // An unknown session's hello is refused: the daemon read it there.
      const conn = await Deno.connect({ hostname: host, port: daemon.port });
      const hello = new Uint8Array(64);
      await conn.write(hello).catch(() => {});
      const answer = new Uint8Array(256);
      const n = await conn.read(answer).catch(() => null);
      conn.close();
      assert.ok(n !== null && n > 0, `an answer over ${host}`);
    }
  } finally {
    await daemon.close();
    await Deno.remove(work, { recursive: true });
  }
});
