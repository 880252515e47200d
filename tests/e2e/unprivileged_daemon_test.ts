/**
 * The daemon needs no privilege (the systemd unit runs it as a throwaway
 * user with no capabilities): as `nobody`, it still hands root's and other
 * users' connections to their terminals, through faults and a restart.
 */
import assert from "node:assert/strict";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import { PipedClient, shellAnswers } from "./_client.ts";
import { E2E_TEST, withWorld } from "./_world.ts";

Deno.test({
  ...E2E_TEST,
  name:
    "a daemon running as nobody serves a session through cuts and its own restart",
  ignore: Deno.uid() !== 0, // setpriv to another user needs root (CI is root)
  fn: () =>
    withWorld({ daemonUser: "nobody" }, async (world) => {
      const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
      const client = new PipedClient(world.client([], { port: proxy.port }));
      try {
        await shellAnswers(client);
        const daemon = await new Deno.Command("sh", {
          args: [
            "-c",
            `ps -o user= -C deno -o args= | grep ' server ' | grep -c '^nobody'`,
          ],
        }).output();
        assert.equal(
          new TextDecoder().decode(daemon.stdout).trim(),
          "1",
          "the daemon runs as nobody",
        );
        proxy.cut();
        await client.type("echo AFTER-CUT-$((1+1))\n");
        await client.waitFor("AFTER-CUT-2", 15_000);
        await world.restartDaemon("SIGTERM");
        proxy.cut();
        await client.type("echo AFTER-RESTART-$((2+2))\n");
        await client.waitFor("AFTER-RESTART-4", 20_000);
        await client.type("exit 3\n");
        assert.equal(await client.exit(20_000), 3, `stderr: ${client.stderr}`);
      } finally {
        await client.close();
        await proxy.close();
      }
    }),
});
