/**
 * The ssh config shapes tunnels without a parser of ours: an alias from an
 * `Include` whose `Match` block holds a LocalForward and ForwardAgent (with
 * IdentityAgent) reaches et through `ssh -G`, and both work end to end.
 */
import assert from "node:assert/strict";
import { PipedClient, shellAnswers, waitUntil } from "./_client.ts";
import { clientWithConfig, serverSettings } from "./_ssh_config.ts";
import { E2E_TEST, withWorld } from "./_world.ts";

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

async function run(command: string, args: string[], env = {}) {
  const out = await new Deno.Command(command, { args, env }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
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
      const dir = await Deno.makeTempDir({ prefix: "et-cfgfwd-" });
      const agentSock = `${dir}/agent.sock`;
      const agent = new Deno.Command("ssh-agent", {
        args: ["-D", "-a", agentSock],
        stdout: "null",
        stderr: "null",
      }).spawn();
      const localPort = freePort();
      try {
        await waitUntil(
          () => Deno.stat(agentSock).then(() => true, () => false),
          10_000,
          "ssh-agent's socket",
        );
        const keygen = await run("ssh-keygen", [
          ..."-t ed25519 -N".split(" "),
          "",
          ..."-C et-config-agent-key -f".split(" "),
          `${dir}/key`,
        ]);
        assert.equal(keygen.code, 0, keygen.stderr);
        const add = await run("ssh-add", [`${dir}/key`], {
          SSH_AUTH_SOCK: agentSock,
        });
        assert.equal(add.code, 0, add.stderr);
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
      } finally {
        controller.abort();
        await service.finished;
        agent.kill("SIGTERM");
        await agent.status;
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    }),
});
