/**
 * descendantsOf on a real process tree: a wrapper shell with a process
 * named ssh (which has a child of its own, as ssh has its ProxyCommand)
 * and a sibling. The client ends a wrapped bootstrap ssh by signalling
 * such a tree, so what it lists decides what gets a SIGTERM.
 */

import assert from "node:assert/strict";
import {
  descendantsOf,
  executableName,
} from "../../src/platform/process_tree.ts";
import { waitUntil } from "../e2e/_client.ts";

/** Each pid's kernel process name, sorted, for comparing trees. */
async function namesOf(pids: number[]): Promise<string[]> {
  const names = await Promise.all(
    pids.map((pid) =>
      Deno.readTextFile(`/proc/${pid}/comm`).then((text) => text.trim())
    ),
  );
  return names.sort();
}

Deno.test({
  name:
    "descendantsOf lists a whole tree, and leaves out the children of a process that ends its own (ssh and its proxy)",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const fakeSsh = `${dir}/ssh`;
    await Deno.writeTextFile(fakeSsh, "#!/bin/sh\nsleep 300 &\nwait\n", {
      mode: 0o755,
    });
    // root ─┬─ ssh (the script) ── sleep
    //       └─ sleep
    const root = new Deno.Command("sh", {
      args: ["-c", `${fakeSsh} & sleep 300 & wait`],
      stdin: "null",
    }).spawn();
    let all: number[] = [];
    try {
      await waitUntil(
        async () => (all = await descendantsOf(root.pid)).length === 3,
        10_000,
        async () => `the tree to form: ${JSON.stringify(await namesOf(all))}`,
      );
      assert.deepEqual(await namesOf(all), ["sleep", "sleep", "ssh"]);
      const sshPid = all.find((pid) =>
        Deno.readTextFileSync(`/proc/${pid}/comm`).trim() === "ssh"
      )!;
      // Its program is the shell: the client's own check (by executable)
      // takes such an "ssh" for a wrapper and signals its tree.
      assert.equal(executableName(sshPid), executableName(root.pid));
      const pruned = await descendantsOf(root.pid, (name) => name === "ssh");
      assert.deepEqual(await namesOf(pruned), ["sleep", "ssh"]);
      assert.ok(pruned.includes(sshPid));
      // The sleep left out is the ssh's child, not the root's.
      const [leftOut] = all.filter((pid) => !pruned.includes(pid));
      assert.deepEqual(await descendantsOf(sshPid), [leftOut]);
    } finally {
      for (const pid of [root.pid, ...all]) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await root.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
