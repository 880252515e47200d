/**
 * Property tests of {@link Liveness}, the pure keepalive and dead-pipe
 * policy of one end (timers.ts), on simulated clocks.
 *
 * A seeded PRNG drives two ends, a client and a server, through random
 * runs: each end arms one check the way the connection does (a client at
 * most its check interval away, a server when the next verdict is due;
 * at once after the first data of an idle spell, sooner when data sent
 * needs an answer), sends a keepalive when told, answers a keepalive when
 * told, acks data within 5 ms; the user types at random moments with long
 * idle stretches between, and the server echoes. The path delivers in
 * order with a random latency (a run's own, with jitter), and in some runs goes silent for good at a
 * random moment (a blackhole). Properties:
 * - a path that delivers never gets a pipe declared dead, whatever the
 *   latency (up to a third of the keepalive interval), and also when one
 *   end is an older peer that never backs off and never answers;
 * - an idle session backs off: in the second minute of silence each end
 *   sends no more keepalives than the idle interval allows;
 * - a blackholed path is declared dead by each end within the dead-after
 *   plus the longest idle interval; and when the user types into it, the
 *   client declares it dead within the suspect bound of that keystroke.
 *
 * Runs: 300 by default (well under a second). A failure names its seed.
 */

import assert from "node:assert/strict";
import {
  CLIENT_CHECK_MS,
  Liveness,
  type ReceivedKind,
  SUSPECT_AFTER_MS,
} from "../../src/transport/timers.ts";
import { Rng } from "../fuzz/_rng.ts";

/** Uniform in [low, high) from the project's seeded generator. */
function between(rand: Rng, low: number, high: number): number {
  return low + rand.float() * (high - low);
}

type Side = 0 | 1; // 0: client, 1: server

interface RunOptions {
  seed: number;
  keepaliveMs: number;
  deadAfterMs: number;
  /** One-way latency: 80 to 100 % of this, plus up to 5 ms. */
  maxLatencyMs: number;
  /** The path drops everything from this moment on. */
  blackholeAt?: number;
  /** The server is an older peer: never backs off, never answers. */
  oldServer?: boolean;
  /** Simulated length of the run. */
  lengthMs: number;
  /** Typing: the user types only before this moment (then idles). */
  typeUntil?: number;
}

interface RunResult {
  deadAt: [number | null, number | null];
  reasons: [string, string];
  /** Keepalives (own and answers) sent per side, with their times. */
  controlSent: [number[], number[]];
  /** When the client typed into the blackholed path, and its bound. */
  typedIntoHole: { at: number; bound: number } | null;
  ends: [Liveness, Liveness];
}

type Event =
  | { at: number; kind: "check"; side: Side; token: number }
  | {
    at: number;
    kind: "deliver";
    side: Side;
    packet: ReceivedKind;
    /** DATA packets of the sender's the receiver had then (every packet carries it). */
    ack: number;
  }
  | { at: number; kind: "ack"; side: Side }
  | { at: number; kind: "type" };

/** One simulated run of two ends over one path. */
function simulate(options: RunOptions): RunResult {
  const rand = new Rng(options.seed);
  let now = 0;
  const clock = { mono: () => now, wall: () => 1.7e12 + now };
  const { keepaliveMs: k, deadAfterMs: d } = options;
  const ends: [Liveness, Liveness] = [
    new Liveness(k, d, 2000, { clock }),
    new Liveness(k, d, 2000, {
      clock,
      idleKeepaliveMs: options.oldServer ? k : undefined,
    }),
  ];
  for (const end of ends) end.attached();
  const result: RunResult = {
    deadAt: [null, null],
    reasons: ["", ""],
    controlSent: [[], []],
    typedIntoHole: null,
    ends,
  };
  const queue: Event[] = [];
  const push = (event: Event) => {
    // Sorted insert keeps equal times in insertion order (FIFO path).
    let i = queue.length;
    while (i > 0 && queue[i - 1].at > event.at) i--;
    queue.splice(i, 0, event);
  };
  const armedAt: [number, number] = [Infinity, Infinity];
  const tokens: [number, number] = [0, 0];
  const arm = (side: Side, wait: number) => {
    armedAt[side] = now + wait;
    push({ at: now + wait, kind: "check", side, token: ++tokens[side] });
  };
  const limit = (side: Side) => side === 0 ? ends[0].clientCheckMs() : Infinity;
  const lastArrival: [number, number] = [0, 0];
  // DATA packets sent and received by each side, and its acknowledged mark.
  const dataSent: [number, number] = [0, 0];
  const dataReceived: [number, number] = [0, 0];
  const acked: [number, number] = [0, 0];
  let oldCounter = 0;
  const dead = (side: Side) => result.deadAt[side] !== null;
  const send = (from: Side, packet: ReceivedKind) => {
    if (dead(from)) return;
    const data = packet === "data";
    if (data) dataSent[from]++;
    const afterIdle = ends[from].sent(data);
    if (!data) result.controlSent[from].push(now);
    if (TRACE) {
      console.log(now.toFixed(1), from, "send", packet, ends[from].intervalMs);
    }
    if (data) {
      // As the connection does: check at once after an idle spell, and
      // never later than the answer's deadline.
      const wait = afterIdle ? 0 : ends[from].nextCheckInMs(limit(from));
      if (now + wait < armedAt[from]) arm(from, wait);
    }
    if (options.blackholeAt !== undefined && now >= options.blackholeAt) {
      return;
    }
    const to = (1 - from) as Side;
    const at = Math.max(
      lastArrival[to],
      now + options.maxLatencyMs * between(rand, 0.8, 1) + between(rand, 0, 5),
    );
    lastArrival[to] = at;
    // An older peer marks nothing: it numbers its CONTROL packets 0, 1,
    // 2…, so every other one looks like an answer.
    const marked = from === 1 && options.oldServer && packet !== "data"
      ? (oldCounter++ % 2 === 1 ? "answer" : "control")
      : packet;
    push({
      at,
      kind: "deliver",
      side: to,
      packet: marked,
      ack: dataReceived[from],
    });
  };
  arm(0, 0);
  arm(1, 0);
  const typeUntil = options.typeUntil ?? options.lengthMs;
  push({ at: between(rand, 0, 3000), kind: "type" });
  while (queue.length > 0) {
    const event = queue.shift()!;
    now = event.at;
    if (now > options.lengthMs) break;
    switch (event.kind) {
      case "check": {
        const side = event.side;
        if (event.token !== tokens[side] || dead(side)) break;
        armedAt[side] = Infinity;
        const verdict = ends[side].tick(true);
        if (verdict.action === "dead") {
          result.deadAt[side] = now;
          result.reasons[side] = verdict.reason;
          break;
        }
        if (verdict.action === "keepalive") send(side, "control");
        arm(side, ends[side].nextCheckInMs(limit(side)));
        break;
      }
      case "deliver": {
        if (dead(event.side)) break;
        const side = event.side;
        const answer = ends[side].received(event.packet);
        if (event.ack > acked[side]) {
          acked[side] = event.ack;
          ends[side].acknowledged(acked[side] === dataSent[side]);
        }
        if (event.packet === "data") dataReceived[side]++;
        if (TRACE) {
          console.log(now.toFixed(1), event.side, "recv", event.packet, answer);
        }
        if (event.packet === "data") {
          push({
            at: now + between(rand, 0, 5),
            kind: "ack",
            side: event.side,
          });
          // The server's shell echoes what was typed.
          if (event.side === 1) send(1, "data");
        } else if (answer && !(event.side === 1 && options.oldServer)) {
          send(event.side, "answer");
        }
        break;
      }
      case "ack":
        send(event.side, "control");
        break;
      case "type": {
        const intoHole = options.blackholeAt !== undefined &&
          now >= options.blackholeAt && !dead(0);
        if (intoHole && result.typedIntoHole === null) {
          result.typedIntoHole = {
            at: now,
            bound: now + ends[0].suspectAfterMs + CLIENT_CHECK_MS + 20,
          };
        }
        send(0, "data");
        // Bursts of keys, then idle stretches of up to two minutes.
        const pause = rand.float() < 0.7
          ? between(rand, 20, 300)
          : between(rand, 1000, 120_000);
        if (now + pause < typeUntil) push({ at: now + pause, kind: "type" });
        break;
      }
    }
  }
  return result;
}

const RUNS = 300;
const TRACE = Deno.env.get("TRACE") === "1";
const POLICIES = [
  { keepaliveMs: 1000, deadAfterMs: 6000 },
  { keepaliveMs: 50, deadAfterMs: 300 },
  { keepaliveMs: 5000, deadAfterMs: 30_000 },
];

Deno.test("a path that delivers is never declared dead, idle or typing, any latency up to a third of the keepalive", () => {
  for (let seed = 1; seed <= RUNS; seed++) {
    for (const policy of POLICIES) {
      const maxLatencyMs = between(new Rng(seed), 0, policy.keepaliveMs / 3);
      const result = simulate({
        seed,
        ...policy,
        maxLatencyMs,
        lengthMs: 10 * 60_000,
      });
      assert.deepEqual(
        result.deadAt,
        [null, null],
        `seed ${seed} ${JSON.stringify(policy)}: ${result.reasons}`,
      );
    }
  }
});

Deno.test("with an older peer that never backs off nor answers, a delivering path stays up", () => {
  for (let seed = 1; seed <= RUNS; seed++) {
    const result = simulate({
      seed,
      keepaliveMs: 1000,
      deadAfterMs: 6000,
      maxLatencyMs: between(new Rng(seed), 0, 300),
      lengthMs: 5 * 60_000,
      oldServer: true,
    });
    assert.deepEqual(result.deadAt, [null, null], `seed ${seed}`);
  }
});

Deno.test("an idle session backs off: the second idle minute carries few keepalives", () => {
  for (let seed = 1; seed <= RUNS; seed++) {
    const typeUntil = 5000;
    const result = simulate({
      seed,
      keepaliveMs: 1000,
      deadAfterMs: 6000,
      maxLatencyMs: between(new Rng(seed), 0, 100),
      lengthMs: typeUntil + 120_000,
      typeUntil,
    });
    assert.deepEqual(result.deadAt, [null, null], `seed ${seed}`);
    const from = typeUntil + 60_000;
    for (const side of [0, 1] as const) {
      const late = result.controlSent[side].filter((at) => at >= from).length;
      const idleMs = result.ends[side].idleKeepaliveMs;
      assert.equal(idleMs, 15_000);
      // Its own keepalives and its answers to the peer's: at most one of
      // each per idle interval, plus one at the edges.
      assert.ok(
        late <= 2 * (60_000 / idleMs) + 2,
        `seed ${seed}: side ${side} sent ${late} in the second idle minute`,
      );
      assert.equal(result.ends[side].intervalMs, idleMs, `seed ${seed}`);
    }
  }
});

Deno.test("a blackhole is declared dead within the bounds, at once after a keystroke", () => {
  let typedRuns = 0;
  for (let seed = 1; seed <= RUNS; seed++) {
    for (const policy of POLICIES) {
      const rand = new Rng(seed * 7 + policy.keepaliveMs);
      const blackholeAt = between(rand, 0, 200_000);
      const maxLatencyMs = between(rand, 0, policy.keepaliveMs / 3);
      const result = simulate({
        seed,
        ...policy,
        maxLatencyMs,
        blackholeAt,
        lengthMs: blackholeAt + 120_000,
      });
      const probe = new Liveness(policy.keepaliveMs, policy.deadAfterMs);
      // Nothing heard once what was in flight has landed: dead within the
      // silence limit (dead-after plus the longest idle interval).
      const bound = blackholeAt + maxLatencyMs + 5 + probe.silenceLimitMs +
        20;
      for (const side of [0, 1] as const) {
        const at = result.deadAt[side];
        const tag = `seed ${seed} ${JSON.stringify(policy)} side ${side}`;
        assert.ok(at !== null, `${tag}: never declared dead`);
        assert.ok(at >= blackholeAt, `${tag}: dead before the blackhole`);
        assert.ok(at <= bound, `${tag}: dead at ${at}, bound ${bound}`);
        assert.match(result.reasons[side], /^nothing received for/);
      }
      const typed = result.typedIntoHole;
      if (typed) {
        typedRuns++;
        assert.ok(
          result.deadAt[0]! <= typed.bound,
          `seed ${seed}: typed at ${typed.at}, dead at ${
            result.deadAt[0]
          }, bound ${typed.bound}`,
        );
      }
    }
  }
  // The keystroke property was exercised, not vacuously true.
  assert.ok(typedRuns > RUNS / 4, `only ${typedRuns} runs typed into it`);
});

Deno.test("the suspect bound: two seconds, or two retransmission timeouts on a slow path, never past the dead-after", () => {
  let now = 0;
  const clock = { mono: () => now, wall: () => now };
  const fast = new Liveness(1000, 6000, 2000, { clock });
  fast.attached();
  // Unmeasured: the dead-after.
  assert.equal(fast.suspectAfterMs, 6000);
  fast.sent(true);
  now += 3;
  fast.acknowledged(true);
  assert.equal(fast.suspectAfterMs, SUSPECT_AFTER_MS);
  for (let i = 0; i < 50; i++) {
    fast.sent(true);
    now += 1200; // a 1.2 s round trip, again and again
    fast.acknowledged(true);
  }
  assert.ok(
    fast.suspectAfterMs >= 2400 && fast.suspectAfterMs <= 6000,
    `${fast.suspectAfterMs}`,
  );
  const short = new Liveness(50, 300, 2000, { clock });
  short.sent(true);
  now += 3;
  short.acknowledged(true);
  assert.equal(short.suspectAfterMs, 300);
});
