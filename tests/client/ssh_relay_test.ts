/**
 * The over-ssh dialer against a real sshd behind the fault proxy: on a
 * silent path (logins hang) it keeps at most two ssh logins starting, the
 * second only after the first has hung for a while; an abandoned attempt
 * ends its ssh.
 */

import assert from "node:assert/strict";
import { sshRelayDialer } from "../../src/client/ssh_relay.ts";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import { startSshd } from "../helpers/sshd.ts";
import { sleep, waitUntil } from "../e2e/_client.ts";

/** ssh processes of ours whose command line names `port`. */
async function sshProcesses(port: number): Promise<number> {
  let count = 0;
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`);
      const words = cmdline.split("\0");
      if (/(^|\/)ssh$/.test(words[0]) && words.includes(String(port))) {
        count++;
      }
    } catch { /* gone */ }
  }
  return count;
}

Deno.test({
  name:
    "over ssh on a silent path: one login at a time, a second after 2 s, never more; abandoned ones end",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const sshd = await startSshd();
    const proxy = await FaultProxy.start({ targetPort: sshd.port });
    const aborts: AbortController[] = [];
    try {
      proxy.setBlackhole(true);
      const dial = sshRelayDialer({
        ssh: ["ssh", "-F", sshd.configPath, "-p", String(proxy.port)],
        target: sshd.hostAlias,
        terminalPath: "et",
        idHex: "0".repeat(32),
      });
      const attempts = Array.from({ length: 6 }, () => {
        const abort = new AbortController();
        aborts.push(abort);
        return dial(abort.signal).then(
          () => "connected",
          (error: Error) => error.message,
        );
      });
      await sleep(1200);
      assert.equal(proxy.stats.accepted, 1, "one login while it may be slow");
      await waitUntil(() => proxy.stats.accepted === 2, 3000, "a second login");
      await sleep(1500);
      assert.equal(proxy.stats.accepted, 2, "never more than two");
      assert.equal(await sshProcesses(proxy.port), 2, "two ssh running");
      for (const abort of aborts) abort.abort();
      const outcomes = await Promise.all(attempts);
      assert.deepEqual(outcomes, Array(6).fill("attempt abandoned"));
      await waitUntil(
        async () => (await sshProcesses(proxy.port)) === 0,
        5000,
        "the ssh processes to end",
      );
    } finally {
      for (const abort of aborts) abort.abort();
      await proxy.close();
      await sshd.stop();
    }
  },
});
