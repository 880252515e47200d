/**
 * What et leaves in the runtime directories (`/tmp/et-<uid>`, or
 * `$ET_RUNTIME_DIR/et`) once it is done, with real processes: a client
 * removes its session-sharing socket however it ends on purpose (its
 * shell's exit, SIGTERM, SIGHUP), and a host that exits with its last
 * session removes its socket and its sessions' tunnel directories. Only
 * the host's lock file and log stay, one of each per user and daemon.
 * (What a killed process leaves is replaced by the next one:
 * session_share_test.ts and host_test.ts.)
 */

import assert from "node:assert/strict";
import { PipedClient, shellAnswers, waitUntil } from "./_client.ts";
import { E2E_TEST, type EtWorld, withWorld } from "./_world.ts";
import { hostKey } from "../../src/terminal/host_socket.ts";

/** The names in `dir`, sorted. */
function namesIn(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((entry) => entry.name).sort();
}

/** The session-sharing sockets of this process's clients. */
function shareSockets(world: EtWorld): string[] {
  return namesIn(world.clientRuntimeDir).filter((name) =>
    /^share-[0-9a-f]+\.sock$/.test(name)
  );
}

/** Starts a client and waits until it shares its connection. */
async function sharingClient(world: EtWorld, extra: string[] = []) {
  const client = new PipedClient(world.client(extra));
  await shellAnswers(client);
  await waitUntil(
    () => shareSockets(world).length === 1,
    20_000,
    () => `the client's share socket; stderr: ${client.stderr}`,
  );
  return client;
}

Deno.test({
  ...E2E_TEST,
  name:
    "runtime files: a client's share socket goes however it ends (exit, SIGTERM, SIGHUP); a host exiting with its last session leaves only its lock and log",
  fn: () =>
    withWorld({ hostLinger: "0" }, async (world) => {
      // A session with an ENVVAR socket: its tunnel directory is made.
      const first = await sharingClient(world, [
        "-r",
        `ET_TEST_SOCK:${world.dir}/nowhere.sock`,
      ]);
      try {
        await first.type('test -S "$ET_TEST_SOCK" && echo SOCK-$((6*7))\n');
        await first.waitFor("SOCK-42");
        assert.ok(
          namesIn(world.runtimeDir).some((name) => name.startsWith("tunnels-")),
          "the session's tunnel directory",
        );
        await first.type("exit 0\n");
        assert.equal(await first.exit(30_000), 0, first.stderr);
      } finally {
        await first.close();
      }
      assert.deepEqual(shareSockets(world), [], "after the shell's exit");
      // The host exits with its last session (ET_HOST_LINGER=0).
      await waitUntil(
        async () => (await world.terminalProcesses()).length === 0,
        15_000,
        async () =>
          `the host to exit: ${
            JSON.stringify(await world.terminalProcesses())
          }`,
      );
      const key = await hostKey(world.routerPath);
      assert.deepEqual(namesIn(world.runtimeDir), [
        `host-${key}.lock`,
        `terminal-${key}.log`,
      ]);

      // Signals that end the client (the session stays, detached).
      for (const signal of ["SIGTERM", "SIGHUP"] as const) {
        const client = await sharingClient(world);
        try {
          client.signal(signal);
          await client.exit(30_000);
        } finally {
          await client.close();
        }
        assert.deepEqual(shareSockets(world), [], `after ${signal}`);
      }
    }),
});
