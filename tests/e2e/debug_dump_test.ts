/**
 * The SIGUSR2 debug dump (docs/ARCHITECTURE.md) through a real session:
 * the client and the user's host each log one line of the session's state,
 * and neither dies of the signal.
 *
 * @module
 */

import assert from "node:assert/strict";
import { shellAnswers, waitUntil, withSession } from "./_client.ts";
import { E2E_TEST } from "./_world.ts";
import { hostPaths } from "../../src/terminal/host_socket.ts";

Deno.test({
  ...E2E_TEST,
  name:
    "SIGUSR2: client and host log the session's transport, channels and output state, and carry on",
  ignore: Deno.build.os === "windows",
  async fn() {
    await withSession({}, async ({ world, client }) => {
      const [hosted] = await world.sessionProcesses();
      assert.ok(hosted, "a hosted session");
      const clientLog = `${world.dir}/client.log`;
      const { log: hostLog } = await hostPaths(
        world.runtimeDir,
        world.routerPath,
      );
      Deno.kill(client.child.pid, "SIGUSR2");
      Deno.kill(hosted.pid, "SIGUSR2");
      const read = (path: string) => Deno.readTextFile(path).catch(() => "");
      await waitUntil(
        async () =>
          /debug: session \w+\/client: attached .*ch1 credit=\d+ unread=\d+\/\d+.*; output (reading|writing) for \d+ ms after \d+ bytes; terminal: /
            .test(await read(clientLog)),
        10_000,
        "the client's dump line",
      );
      await waitUntil(
        async () =>
          /debug: session \w+\/server: attached .*ch1 credit=\d+.*; out1 backlog=\d+\/\d+/
            .test(await read(hostLog)),
        10_000,
        "the host's dump line",
      );
      // Both still serve the session.
      await shellAnswers(client);
    });
  },
});
