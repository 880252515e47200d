/**
 * Starting the per-user host is race-free: launchers (`et terminal`, run
 * here by hand, as ssh would) that all find no host at once end with one
 * host holding all their sessions; it leaves with its last session.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodeBootstrap } from "../../src/session/mod.ts";
import { generateSessionSecret, toHex } from "../../src/transport/mod.ts";
import { controlRequest } from "../../src/terminal/control_socket.ts";
import {
  HOST_PROCESS_NAME,
  hostPaths,
} from "../../src/terminal/host_socket.ts";
import { alive, waitUntil } from "../e2e/_client.ts";

const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/** Host processes (by their name) whose runtime dir is `runtimeBase`. */
async function hostsOf(runtimeBase: string): Promise<number[]> {
  const found: number[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const name = await Deno.readTextFile(`/proc/${entry.name}/comm`);
      if (name.trim() !== HOST_PROCESS_NAME) continue;
      const env = await Deno.readTextFile(`/proc/${entry.name}/environ`);
      if (env.split("\0").includes(`ET_RUNTIME_DIR=${runtimeBase}`)) {
        found.push(Number(entry.name));
      }
    } catch { /* gone */ }
  }
  return found;
}

Deno.test({
  name:
    "eight launchers at once with no host: all get their session, one host holds them all, and it exits with the last",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const runtimeBase = await Deno.makeTempDir({ prefix: "et-host-race-" });
    await Deno.chmod(runtimeBase, 0o700);
    const env = {
      ET_RUNTIME_DIR: runtimeBase,
      ET_ROUTER_SOCKET: `${runtimeBase}/none.sock`,
      // About leaving with the last session: no lingering.
      ET_HOST_LINGER: "0",
    };
    try {
      const ids = Array.from({ length: 8 }, () => generateSessionSecret());
      const launched = await Promise.all(ids.map(async (secret) => {
        const child = new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", `${ROOT}/main.ts`, "terminal"],
          env,
          stdin: "piped",
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        const writer = child.stdin.getWriter();
        await writer.write(new TextEncoder().encode(encodeBootstrap({
          op: "new",
          secret,
          program: {
            command: "sleep 600",
            pty: false,
            term: "xterm",
            cols: 80,
            rows: 24,
            env: {},
          },
          limits: {
            connectTimeoutMs: 60_000,
            sessionTimeoutMs: 0,
            maxBacklogBytes: 1 << 20,
          },
          killOthers: false,
          daemon: "never",
          portRange: { first: 20000, last: 40000 },
        })));
        await writer.close();
        const out = await child.output();
        return {
          code: out.code,
          stdout: new TextDecoder().decode(out.stdout),
          stderr: new TextDecoder().decode(out.stderr),
        };
      }));
      for (const [i, result] of launched.entries()) {
        assert.equal(result.code, 0, result.stderr);
        assert.match(
          result.stdout,
          new RegExp(`ET_TERMINAL_READY \\{"id":"${toHex(ids[i].id)}"`),
        );
      }
      const ports = new Set(
        launched.map((r) => r.stdout.match(/"port":(\d+)/)?.[1]),
      );
      assert.equal(ports.size, 1, `one port serves all: ${[...ports]}`);
      const hosts = await hostsOf(runtimeBase);
      assert.equal(hosts.length, 1, `hosts: ${hosts}`);
      const { socket } = await hostPaths(
        `${runtimeBase}/et`,
        env.ET_ROUTER_SOCKET,
      );
      assert.ok((await Deno.lstat(socket)).isSocket);

      for (const secret of ids) {
        assert.deepEqual(
          await controlRequest(`${runtimeBase}/et/${toHex(secret.id)}.ctl`, {
            op: "end",
          }),
          { ok: true },
        );
      }
      await waitUntil(
        async () => !(await alive(hosts[0])),
        10_000,
        "the host to exit after its last session",
      );
      await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound);
    } finally {
      for (const pid of await hostsOf(runtimeBase)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await Deno.remove(runtimeBase, { recursive: true }).catch(() => {});
    }
  },
});
