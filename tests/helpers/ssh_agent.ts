/**
 * A private `ssh-agent` holding one fresh ed25519 key, for agent
 * forwarding tests.
 *
 * @module
 */

import assert from "node:assert/strict";

async function run(command: string, args: string[], env = {}) {
  const out = await new Deno.Command(command, { args, env }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

/**
 * Runs `body` with the socket path of an ssh-agent that holds a new key
 * whose comment is `comment` (`ssh-add -l` shows it); stops the agent
 * and removes its files afterwards.
 */
export async function withTestAgent(
  comment: string,
  body: (agentSocket: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "et-agent-" });
  const agentSocket = `${dir}/agent.sock`;
  const agent = new Deno.Command("ssh-agent", {
    args: ["-D", "-a", agentSocket],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    const deadline = Date.now() + 10_000;
    while (!(await Deno.stat(agentSocket).then(() => true, () => false))) {
      if (Date.now() > deadline) throw new Error("ssh-agent's socket");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const keygen = await run("ssh-keygen", [
      ..."-t ed25519 -N".split(" "),
      "",
      "-C",
      comment,
      "-f",
      `${dir}/key`,
    ]);
    assert.equal(keygen.code, 0, keygen.stderr);
    const add = await run("ssh-add", [`${dir}/key`], {
      SSH_AUTH_SOCK: agentSocket,
    });
    assert.equal(add.code, 0, add.stderr);
    await body(agentSocket);
  } finally {
    agent.kill("SIGTERM");
    await agent.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
