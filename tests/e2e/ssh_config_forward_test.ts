/**
 * The ssh config shapes tunnels without a parser of ours: an alias from an
 * `Include` whose `Match` block holds a LocalForward and ForwardAgent (with
 * IdentityAgent) reaches et through `ssh -G`, and both work end to end.
 */
import assert from "node:assert/strict";
import { withTestAgent } from "../helpers/ssh_agent.ts";
import { PipedClient, shellAnswers } from "./_client.ts";
import { clientWithConfig, serverSettings } from "./_ssh_config.ts";
import { E2E_TEST, withWorld } from "./_world.ts";

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

Deno.test({
  ...E2E_TEST,
  name:
    "ssh config: LocalForward and ForwardAgent/IdentityAgent from an Include'd alias's Match block become a tunnel and agent forwarding",
  fn: () =>
    withWorld({}, async (world) => {
      const controller = new AbortController();
      const service = Deno.serve({
        hostname: "127.0.0.1",
        port: 0,
        signal: controller.signal,
        onListen: () => {},
      }, () => new Response("configured-forward"));
      const localPort = freePort();
      try {
        await withTestAgent("et-config-agent-key", async (agentSock) => {
          const settings = await serverSettings(world);
          const argv = await clientWithConfig(
            world,
            {
              lines: [
                `Include ${world.dir}/aliases.conf`,
                `Match host 127.0.0.1 user ${world.sshd.user}`,
                `  LocalForward ${localPort} 127.0.0.1:${service.addr.port}`,
                "  ForwardAgent yes",
                `  IdentityAgent ${agentSock}`,
              ],
              includes: {
                "aliases.conf": [
                  "Host cfgalias",
                  "  HostName 127.0.0.1",
                  ...settings.map((line) => `  ${line}`),
                ],
              },
            },
            [],
            `cfgalias:${world.daemonPort}`,
          );
          const client = new PipedClient(argv);
          try {
            await shellAnswers(client);
            const response = await fetch(`http://127.0.0.1:${localPort}/`, {
              headers: { connection: "close" },
            });
            assert.equal(await response.text(), "configured-forward");
            await client.type("ssh-add -l; echo LISTED-$((1+1))\n");
            await client.waitFor("LISTED-2", 20_000);
            assert.match(client.stdout, /et-config-agent-key \(ED25519\)/);
          } finally {
            await client.close();
          }
        });
      } finally {
        controller.abort();
        await service.finished;
      }
    }),
});
