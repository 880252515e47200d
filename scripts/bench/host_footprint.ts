/**
 * What the terminal role costs on the server, through real sessions (sshd,
 * `et server`, piped clients): start to prompt of the first and the second
 * session, the resident memory of every terminal-role process with 1, 2
 * and 10 sessions open, and their CPU time over 10 s with 3 idle sessions
 * (attached, nobody typing); then, in 3 rounds each starting with no
 * terminal process left, start to prompt of a first session and of a
 * second one beside it. Prints one JSON object.
 *
 * Usage: `deno run -A scripts/bench/host_footprint.ts`
 *
 * @module
 */

import {
  PipedClient,
  shellAnswers,
  sleep,
  waitUntil,
} from "../../tests/e2e/_client.ts";
import { type EtWorld, withWorld } from "../../tests/e2e/_world.ts";

/** VmRSS of `pid` in KiB, 0 when it is gone. */
async function rssKiB(pid: number): Promise<number> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    return Number(status.match(/^VmRSS:\s+(\d+)/m)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** utime + stime of `pid` in clock ticks (1/100 s here). */
async function cpuTicks(pid: number): Promise<number> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/** The world's terminal processes that hold sessions (no launcher). */
async function holders(world: EtWorld): Promise<number[]> {
  const all = await world.terminalProcesses();
  return all.filter((p) => / terminal --(serve|host)$/.test(p.cmdline))
    .map((p) => p.pid);
}

/** Total RSS in MB of the processes holding sessions, once settled. */
async function totalRssMB(world: EtWorld): Promise<number> {
  await sleep(2000);
  let kib = 0;
  for (const pid of await holders(world)) kib += await rssKiB(pid);
  return Math.round(kib / 1024 * 10) / 10;
}

// Each round's first session is a cold start (no host left from the
// round before): the host exits with its last session here.
await withWorld({ privateRuntime: true, hostLinger: "0" }, async (world) => {
  const clients: PipedClient[] = [];
  const startToPrompt: number[] = [];
  const rss: Record<number, number> = {};
  let idle: { processes: number; cpuSeconds: number } | undefined;
  let holding = 0;
  try {
    for (let n = 1; n <= 10; n++) {
      const started = performance.now();
      const client = new PipedClient(world.client());
      clients.push(client);
      await shellAnswers(client);
      startToPrompt.push(Math.round(performance.now() - started));
      if (n === 3) {
        await sleep(2000);
        const pids = await holders(world);
        const before = await Promise.all(pids.map(cpuTicks));
        await sleep(10_000);
        const after = await Promise.all(pids.map(cpuTicks));
        const ticks = after.reduce((sum, t, i) => sum + t - before[i], 0);
        idle = { processes: pids.length, cpuSeconds: ticks / 100 };
      }
      if (n === 1 || n === 2 || n === 10) rss[n] = await totalRssMB(world);
      if (n === 10) holding = (await holders(world)).length;
    }
    for (const client of clients.splice(0)) {
      await client.type("exit\n").catch(() => {});
      await client.exit().catch(() => {});
      await client.close();
    }
    const rounds: { first: number; second: number }[] = [];
    for (let round = 0; round < 3; round++) {
      await waitUntil(
        async () => (await world.terminalProcesses()).length === 0,
        30_000,
        "no terminal process left",
        100,
      );
      const times = [];
      for (let i = 0; i < 2; i++) {
        const started = performance.now();
        const client = new PipedClient(world.client());
        clients.push(client);
        await shellAnswers(client);
        times.push(Math.round(performance.now() - started));
      }
      rounds.push({ first: times[0], second: times[1] });
      for (const client of clients.splice(0)) {
        await client.type("exit\n").catch(() => {});
        await client.exit().catch(() => {});
        await client.close();
      }
    }
    console.log(JSON.stringify({
      startToPromptMs: startToPrompt,
      firstSecondRounds: rounds,
      processesFor10Sessions: holding,
      rssMB: rss,
      perExtraSessionMB: Math.round((rss[10] - rss[1]) / 9 * 10) / 10,
      idle3SessionsOver10s: idle,
    }));
  } finally {
    for (const client of clients) {
      await client.type("exit\n").catch(() => {});
    }
    for (const client of clients) await client.close();
  }
});
