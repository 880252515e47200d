/**
 * Child process of the benchmark (run with `--v8-flags=--expose-gc`):
 * opens N idle eternal connection pairs in this process over one loopback
 * listener and prints, as JSON on stdout, the RSS and V8 heap before and
 * after, settled by garbage collection. Usage: `idle_memory.ts <pairs>`.
 *
 * @module
 */

import { PairHost } from "./pairs.ts";
import { sleep } from "./util.ts";
import type { IdleMemory } from "./transport.ts";

const gc = (globalThis as { gc?: () => void }).gc;

/** Collects garbage a few times with pauses, so RSS reflects live memory. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc?.();
    await sleep(200);
  }
}

/** Opens `pairs` idle pairs and reports the memory they cost. */
async function main(pairs: number): Promise<IdleMemory> {
  // Warm up first: compiled code, crypto and socket machinery are paid once
  // per process, not per connection, so they belong in the baseline.
  const warm = new PairHost();
  for (let i = 0; i < 5; i++) await warm.open();
  await sleep(1500); // a keepalive round, so timers and acks ran too
  await warm.close();
  await settle();
  const before = Deno.memoryUsage();

  const host = new PairHost();
  // Open in small batches: all at once would measure handshake bursts.
  for (let i = 0; i < pairs; i += 20) {
    const batch = Math.min(20, pairs - i);
    await Promise.all(Array.from({ length: batch }, () => host.open()));
  }
  // Idle long enough for keepalives (1 s) and acks to flow a few times.
  await sleep(3000);
  await settle();
  const after = Deno.memoryUsage();
  await host.close();

  const ends = 2 * pairs;
  return {
    pairs,
    rssBefore: before.rss,
    rssAfter: after.rss,
    heapBefore: before.heapUsed,
    heapAfter: after.heapUsed,
    rssPerEnd: (after.rss - before.rss) / ends,
    heapPerEnd: (after.heapUsed - before.heapUsed) / ends,
  };
}

if (import.meta.main) {
  if (!gc) console.error("warning: run with --v8-flags=--expose-gc");
  const pairs = Number(Deno.args[0] ?? "200");
  const result = await main(pairs);
  console.log(JSON.stringify(result));
  Deno.exit(0);
}
