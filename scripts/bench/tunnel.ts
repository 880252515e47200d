/**
 * Tunnel throughput: `et -N -t` beside `ssh -N -L` against the same
 * private sshd, in the same run. Each pushes the same bytes from a local
 * connection through its tunnel to a sink on loopback, which answers once
 * it has read them all (the half close passes through both); timed from
 * the first byte written to that answer. CPU seconds are each process's
 * user + system time over the push, read from /proc: the client, and on
 * the "remote" side the et session process plus the daemon, or sshd's
 * session processes.
 *
 * @module
 */

import type { EtWorld } from "../../tests/e2e/_world.ts";
import { daemonPid } from "./e2e.ts";
import { mbPerSecond, sleep } from "./util.ts";

/** One push through one tunnel. */
export interface TunnelRun {
  /** Throughput, MB (10^6 bytes) per second. */
  mbPerSecond: number;
  /** CPU seconds of the client process over the push. */
  clientCpu: number;
  /** CPU seconds of the remote side's processes over the push. */
  serverCpu: number;
}

/** Which tunnel a measurement is about. */
export type TunnelKind = "et" | "ssh";

const CHUNK = new Uint8Array(1024 * 1024).map((_, i) => (i * 7919) & 0xff);
const CLOCK_TICKS = 100; // USER_HZ on Linux

/** CPU seconds (user + system) `pid` used so far; 0 if it is gone. */
async function cpuSeconds(pid: number): Promise<number> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after ")".
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

async function totalCpu(pids: number[]): Promise<number> {
  let sum = 0;
  for (const pid of pids) sum += await cpuSeconds(pid);
  return sum;
}

/** Every live descendant of `root`, from /proc. */
async function descendants(root: number): Promise<number[]> {
  const parent = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      parent.set(
        Number(entry.name),
        Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]),
      );
    } catch { /* gone */ }
  }
  const out: number[] = [];
  const walk = (pid: number) => {
    for (const [child, ppid] of parent) {
      if (ppid === pid) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(root);
  return out;
}

/** A loopback sink: reads each connection to EOF, answers `ok <bytes>`. */
function startSink() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      (async () => {
        const buffer = new Uint8Array(256 * 1024);
        let total = 0;
        try {
          for (let n; (n = await conn.read(buffer)) !== null;) total += n;
          await conn.write(new TextEncoder().encode(`ok ${total}\n`));
        } catch { /* the pusher went away */ }
        conn.close();
      })();
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await serving.catch(() => {});
    },
  };
}

/** Pushes `bytes` into `port`, half-closes, waits for the sink's answer. */
async function push(port: number, bytes: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const began = performance.now();
  for (let sent = 0; sent < bytes;) {
    const chunk = CHUNK.subarray(0, Math.min(CHUNK.length, bytes - sent));
    for (let o = 0; o < chunk.length;) o += await conn.write(chunk.subarray(o));
    sent += chunk.length;
  }
  await conn.closeWrite();
  const buffer = new Uint8Array(64);
  let answer = "";
  for (let n; (n = await conn.read(buffer)) !== null;) {
    answer += new TextDecoder().decode(buffer.subarray(0, n));
  }
  const ms = performance.now() - began;
  conn.close();
  if (answer.trim() !== `ok ${bytes}`) {
    throw new Error(`the sink answered '${answer.trim()}' for ${bytes} bytes`);
  }
  return ms;
}

/** A port free right now on 127.0.0.1. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Pushes a byte until the tunnel carries it (it is up). */
async function waitForTunnel(port: number, child: Deno.ChildProcess) {
  const deadline = performance.now() + 60_000;
  let exited = false;
  child.status.then(() => exited = true);
  while (true) {
    try {
      await push(port, 1);
      return;
    } catch (error) {
      if (exited || performance.now() > deadline) {
        throw new Error(`tunnel never came up: ${(error as Error).message}`);
      }
      await sleep(200);
    }
  }
}

/**
 * Starts a tunnel of `kind` to a fresh sink, pushes `bytes` through it
 * once, stops it; returns MB/s and CPU seconds.
 */
export async function tunnelThroughput(
  world: EtWorld,
  kind: TunnelKind,
  bytes: number,
): Promise<TunnelRun> {
  const sink = startSink();
  const port = freePort();
  const argv = kind === "et"
    ? world.client(["-N", "-t", `${port}:${sink.port}`])
    : [
      ...world.sshd.sshCommand.split(" "),
      "-N",
      "-L",
      `${port}:127.0.0.1:${sink.port}`,
      world.sshd.hostAlias,
    ];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await waitForTunnel(port, child);
    const server = kind === "et"
      ? [
        ...(await world.sessionProcesses()).map((p) => p.pid),
        await daemonPid(world),
      ]
      : await descendants(await sshdPid(world));
    const clientBefore = await cpuSeconds(child.pid);
    const serverBefore = await totalCpu(server);
    const ms = await push(port, bytes);
    return {
      mbPerSecond: mbPerSecond(bytes, ms),
      clientCpu: await cpuSeconds(child.pid) - clientBefore,
      serverCpu: await totalCpu(server) - serverBefore,
    };
  } finally {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await sink.close();
    // Let the et session end before the next run looks for its own.
    const deadline = performance.now() + 10_000;
    while (
      kind === "et" && (await world.sessionProcesses()).length > 0 &&
      performance.now() < deadline
    ) await sleep(100);
  }
}

async function sshdPid(world: EtWorld): Promise<number> {
  return Number((await Deno.readTextFile(`${world.sshd.dir}/sshd.pid`)).trim());
}
