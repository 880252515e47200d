/**
 * Transport benchmarks in this process: one-way throughput of raw loopback
 * TCP against an eternal connection pair, and (in a child process, so the
 * numbers are not polluted by everything else the benchmark holds) the
 * memory an idle connection costs.
 *
 * @module
 */

import { PairHost } from "./pairs.ts";
import { mbPerSecond, progress, withTimeout } from "./util.ts";

/** Bytes per write, for both raw and et (the brief's 64 KiB). */
const CHUNK_BYTES = 64 * 1024;

/** One chunk of incompressible-looking bytes, reused for every write. */
function chunk(): Uint8Array {
  const bytes = new Uint8Array(CHUNK_BYTES);
  crypto.getRandomValues(bytes); // at most 64 KiB per call: exactly one
  return bytes;
}

/**
 * Sends `totalBytes` over plain loopback TCP (64 KiB writes) and returns
 * the throughput in MB/s, timed from the first write to the last byte read.
 */
export async function rawTcpThroughput(totalBytes: number): Promise<number> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const sender = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.addr.port,
  });
  const receiver = await accepted;
  listener.close();
  const data = chunk();
  try {
    const started = performance.now();
    const sending = (async () => {
      for (let sent = 0; sent < totalBytes;) {
        const size = Math.min(CHUNK_BYTES, totalBytes - sent);
        let offset = 0;
        while (offset < size) {
          offset += await sender.write(data.subarray(offset, size));
        }
        sent += size;
      }
    })();
    const buffer = new Uint8Array(CHUNK_BYTES);
    let received = 0;
    while (received < totalBytes) {
      const n = await receiver.read(buffer);
      if (n === null) throw new Error("raw tcp: early end of stream");
      received += n;
    }
    const elapsed = performance.now() - started;
    await sending;
    return mbPerSecond(totalBytes, elapsed);
  } finally {
    sender.close();
    receiver.close();
  }
}

/**
 * Sends `totalBytes` from an eternal connection client to its server on
 * channel 1 (64 KiB writes, each awaited as an application would) and
 * returns MB/s, timed from the first write to the last byte read. Both ends
 * run in this process, so sealing and opening share one event loop — the
 * raw TCP figure is measured the same way.
 */
export async function eternalThroughput(totalBytes: number): Promise<number> {
  const host = new PairHost();
  try {
    const { client, server } = await host.open();
    const data = chunk();
    const out = client.channel(1);
    const inbox = server.channel(1);
    const started = performance.now();
    const sending = (async () => {
      for (let sent = 0; sent < totalBytes;) {
        const size = Math.min(CHUNK_BYTES, totalBytes - sent);
        await out.write(data.subarray(0, size));
        sent += size;
      }
    })();
    let received = 0;
    while (received < totalBytes) {
      const bytes = await inbox.read();
      if (bytes === null) throw new Error("et: channel ended early");
      received += bytes.length;
    }
    const elapsed = performance.now() - started;
    await sending;
    return mbPerSecond(totalBytes, elapsed);
  } finally {
    await host.close();
  }
}

/** What the idle-memory child reports. */
export interface IdleMemory {
  /** Pairs created (each has two ends). */
  pairs: number;
  rssBefore: number;
  rssAfter: number;
  heapBefore: number;
  heapAfter: number;
  /** Bytes of RSS per connection end. */
  rssPerEnd: number;
  /** Bytes of V8 heap per connection end. */
  heapPerEnd: number;
}

/**
 * Runs `idle_memory.ts` in a child with `--expose-gc` (the benchmark itself
 * runs without it) and returns what it measured for `pairs` idle pairs.
 */
export async function idleMemory(pairs: number): Promise<IdleMemory> {
  const script = new URL("./idle_memory.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      script,
      String(pairs),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = await withTimeout(child.output(), 120_000, "idle memory")
    .catch((error) => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      throw error;
    });
  const stderr = new TextDecoder().decode(output.stderr).trim();
  if (stderr) progress(`idle memory child: ${stderr}`);
  if (!output.success) {
    throw new Error(`idle memory child failed (${output.code}): ${stderr}`);
  }
  return JSON.parse(new TextDecoder().decode(output.stdout)) as IdleMemory;
}
