import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { Channel } from "../../src/transport/mod.ts";
import { configureLog } from "../../src/log.ts";
import { chaos, FaultProxy } from "../helpers/fault_proxy.ts";
import {
  patternBytes,
  startSessionPair,
  StreamHash,
  waitUntil,
} from "../helpers/session_pair.ts";

// The last log lines, kept for the stall report below.
const recent: string[] = [];
configureLog({
  level: "info",
  sink: (line) => {
    recent.push(line);
    if (recent.length > 40) recent.shift();
  },
});

const MB = 1_000_000;

/** Writes `data` in 1 MB pieces, waiting for `gate(i)` before piece i. */
async function pacedWrite(
  channel: Channel,
  data: Uint8Array,
  gate: (piece: number) => Promise<void>,
) {
  for (let i = 0, offset = 0; offset < data.length; i++, offset += MB) {
    await gate(i);
    await channel.write(data.subarray(offset, offset + MB));
  }
}

async function readAll(
  channel: Channel,
  size: number,
  progress?: (bytes: number) => void,
): Promise<string> {
  const hash = new StreamHash();
  while (hash.size < size) {
    const chunk = await channel.read();
    if (chunk === null) throw new Error(`ended after ${hash.size} bytes`);
    hash.update(chunk);
    progress?.(chunk.length);
  }
  assert.equal(hash.size, size, "no byte duplicated");
  return hash.digest();
}

Deno.test("100 MB each way survive 200+ random cuts, refusals and blackholes", async () => {
  let proxy!: FaultProxy;
  const pair = await startSessionPair({
    // Short timers so blackholes are noticed quickly in a test.
    connection: { keepaliveMs: 50, deadAfterMs: 300, handshakeTimeoutMs: 1000 },
    via: async (port) => {
      proxy = await FaultProxy.start({ targetPort: port });
      return proxy.port;
    },
  });
  const faults: Record<string, number> = { cut: 0, refuse: 0, blackhole: 0 };
  let total = 0;
  let deadDetected = 0;
  pair.client.onEvent((event) => {
    if (
      event.type === "disconnected" &&
      event.reason.startsWith("nothing received")
    ) {
      deadDetected++;
    }
  });
  const startChaos = () =>
    chaos(proxy, {
      minMs: 5,
      maxMs: 40,
      blackholeMaxMs: 200,
      kinds: ["cut", "cut", "cut", "cut", "refuse", "blackhole"],
      onFault: (kind) => {
        faults[kind]++;
        total++;
      },
    });
  let stop = startChaos();
  // Halfway, one pure blackhole with no cut to rescue it: only the
  // keepalive timeout can notice that the pipe is dead.
  let pureBlackhole: Promise<void> | null = null;
  const blackholeAlone = async () => {
    await stop();
    await waitUntil(() => pair.client.connected, 10_000, "connected");
    const before = deadDetected;
    proxy.setBlackhole(true);
    await waitUntil(() => deadDetected > before, 5000, "dead-pipe detection");
    proxy.setBlackhole(false);
    stop = startChaos();
  };
  const size = 100 * MB;
  const up = patternBytes(size, 11);
  const down = patternBytes(size, 12);
  // Two faults per megabyte sent: 200 faults land inside the transfer.
  const gate = async (piece: number) => {
    if (piece === 50) await (pureBlackhole ??= blackholeAlone());
    // Piece i waits for 2(i+1) faults: the last of 100 pieces needs 200.
    const needed = (piece + 1) * 2;
    await waitUntil(() => total >= needed, 30_000, `fault ${needed}`);
  };
  // A stall must fail with the state of both ends, never hang the suite.
  let moved = 0;
  let lastMoved = -1;
  let stalledFor = 0;
  let failStall: (error: Error) => void = () => {};
  const stalled = new Promise<never>((_, reject) => failStall = reject);
  const describe = (end: typeof pair.client) =>
    `connected=${end.connected} received=${end.receivedCount} ` +
    `unacked=${end.unacknowledgedBytes} credit=${end.channel(1).credit} ` +
    `pending=${end.channel(1).pendingBytes}`;
  const watchdog = setInterval(() => {
    stalledFor = moved === lastMoved ? stalledFor + 1 : 0;
    lastMoved = moved;
    if (stalledFor === 30) {
      failStall(
        new Error(
          `no progress for 30 s after ${moved} bytes, ${total} faults; ` +
            `client ${describe(pair.client)}; server ${describe(pair.server)}` +
            `\nlast log lines:\n${recent.join("\n")}`,
        ),
      );
    }
  }, 1000);
  const count = (bytes: number) => moved += bytes;
  let digests: [string, string, void, void];
  try {
    digests = await Promise.race([
      Promise.all([
        readAll(pair.server.channel(1), size, count),
        readAll(pair.client.channel(1), size, count),
        pacedWrite(pair.client.channel(1), up, gate),
        pacedWrite(pair.server.channel(1), down, gate),
      ]),
      stalled,
    ]);
  } finally {
    clearInterval(watchdog);
  }
  const [upDigest, downDigest] = digests;
  await stop();
  assert.ok(total >= 200, `only ${total} faults`);
  assert.equal(upDigest, createHash("sha256").update(up).digest("hex"));
  assert.equal(downDigest, createHash("sha256").update(down).digest("hex"));
  assert.ok(faults.blackhole >= 10, `only ${faults.blackhole} blackholes`);
  assert.ok(deadDetected >= 1, "a blackholed pipe was declared dead");
  // The session is still alive and usable.
  await waitUntil(() => pair.client.connected, 10_000, "reconnect");
  await pair.client.channel(2).write(new TextEncoder().encode("alive"));
  assert.equal(
    new TextDecoder().decode((await pair.server.channel(2).read())!),
    "alive",
  );
  console.log(
    `faults: ${JSON.stringify(faults)}, dead pipes detected: ${deadDetected}`,
  );
  await pair.stop();
  await proxy.close();
});

Deno.test("tiny split writes and added latency with cuts keep every byte", async () => {
  let proxy!: FaultProxy;
  const pair = await startSessionPair({
    via: async (port) => {
      proxy = await FaultProxy.start({ targetPort: port });
      return proxy.port;
    },
  });
  proxy.setSplit(true);
  proxy.setDelay(5);
  const stop = chaos(proxy, { minMs: 100, maxMs: 300, kinds: ["cut"] });
  const size = 1 * MB;
  const up = patternBytes(size, 13);
  const down = patternBytes(size, 14);
  const [upDigest, downDigest] = await Promise.all([
    readAll(pair.server.channel(1), size),
    readAll(pair.client.channel(1), size),
    pair.client.channel(1).write(up),
    pair.server.channel(1).write(down),
  ]);
  await stop();
  assert.equal(upDigest, createHash("sha256").update(up).digest("hex"));
  assert.equal(downDigest, createHash("sha256").update(down).digest("hex"));
  assert.ok(proxy.stats.cuts >= 1, "at least one cut landed");
  await pair.stop();
  await proxy.close();
});
