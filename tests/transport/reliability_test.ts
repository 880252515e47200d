/**
 * Property tests of {@link ReliableStream}, the pure accounting of Eternal
 * TCP (sequence numbers, held frames, acks, window, resume).
 *
 * A seeded PRNG drives two ends, a client and a server, through random
 * runs: the applications write; frames are sealed (asynchronously, as the
 * connection does: the ack is taken before, the frame held after), pumped
 * into a pipe, delivered, opened (sometimes late, after the pipe was
 * replaced) and acknowledged by DATA and CONTROL packets. Meanwhile the
 * path misbehaves: frames in flight are dropped, old frames and stale or
 * repeated acks are replayed, pipes are cut (losing whatever was in flight
 * after a random prefix), one end notices a dead pipe before the other,
 * and reconnects happen at any moment — with each side's received count,
 * or a stale one from an older attempt, while the old pipe keeps
 * delivering during the handshake, and sometimes an attempt the server
 * attaches is abandoned by the client. Forged claims (a count or an ack
 * above what was sent) are made now and then. At the end the path heals
 * and the run must drain.
 *
 * After every step, for each end:
 * - what was delivered is every payload the peer wrote, in order, once;
 * - held bytes stay within the window (or one frame alone that is larger:
 *   an empty writer always has room), and equal the frames not yet
 *   acknowledged, which are exactly the ones held (acknowledged ones freed);
 * - nothing is freed that the peer has not received;
 * - no pipe carries a frame twice, and a gap appears only where the path
 *   dropped or inserted a frame;
 * - a resume point is neither below the acknowledged mark nor above what
 *   the peer really holds;
 * - the ack owed is what was received beyond the highest ack queued;
 * - a forged claim is refused and changes nothing.
 * At the end of every run, everything was delivered and acknowledged.
 *
 * Runs: 10 000 by default (a few seconds). Longer:
 *
 *     deno test -A tests/transport/reliability_test.ts -- --long   # 500 000
 *     ET_RELIABILITY_RUNS=2000000 deno test -A tests/transport/reliability_test.ts
 *
 * A failure names its seed; replay it alone, with a step trace:
 *
 *     ET_RELIABILITY_SEED=1234 deno test -A tests/transport/reliability_test.ts
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  CannotResumeError,
  ProtocolError,
  ReliableStream,
} from "../../src/transport/mod.ts";
import { seeded } from "../helpers/seeded.ts";

// ---- configuration ----

function envNumber(name: string): number | undefined {
  try {
    const value = Deno.env.get(name);
    return value === undefined ? undefined : Number(value);
  } catch {
    return undefined; // no env permission: defaults
  }
}

const RUNS = envNumber("ET_RELIABILITY_RUNS") ??
  (Deno.args.includes("--long") ? 500_000 : 10_000);
const ONLY_SEED = envNumber("ET_RELIABILITY_SEED");

// ---- a seeded PRNG (mulberry32) ----

class Random {
  /** Uniform in [0, 1). */
  readonly next: () => number;
  constructor(seed: number) {
    this.next = seeded(seed);
  }
  /** Uniform integer in 0..n-1. */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
}

// ---- the model: frames, pipes, ends ----

type Side = "client" | "server";
const other = (side: Side): Side => side === "client" ? "server" : "client";

/**
 * A "sealed" DATA frame: seq in the clear (as in the packet header); ack
 * and payload as if sealed; filler up to its size. Opaque to the stream.
 */
const FRAME_HEADER = 12;
function sealFrame(
  seq: number,
  ack: number,
  payload: number,
  size: number,
): Uint8Array {
  const frame = new Uint8Array(Math.max(FRAME_HEADER, size));
  const view = new DataView(frame.buffer);
  view.setUint32(0, seq);
  view.setUint32(4, ack);
  view.setUint32(8, payload);
  return frame;
}
function openFrame(frame: Uint8Array) {
  const view = new DataView(frame.buffer, frame.byteOffset);
  return {
    seq: view.getUint32(0),
    ack: view.getUint32(4),
    payload: view.getUint32(8),
  };
}

type Packet =
  | { kind: "data"; seq: number; frame: Uint8Array }
  | { kind: "control"; ack: number };

let pipeIds = 0;
/** An ordered byte pipe: what is in flight toward each end. */
class Pipe {
  readonly id = ++pipeIds;
  readonly toward: Record<Side, Packet[]> = { client: [], server: [] };
  /** Highest DATA seq written toward each end (never twice on a pipe). */
  readonly lastSeq: Record<Side, number> = { client: -1, server: -1 };
  /** Set when the path dropped or inserted a frame: gaps may follow. */
  readonly tampered: Record<Side, boolean> = { client: false, server: false };
}

interface Opening {
  seq: number;
  frame: Uint8Array;
  pipe: Pipe;
}

class End {
  readonly side: Side;
  readonly stream: ReliableStream;
  pipe: Pipe | null = null;
  /** Frame sizes of payloads written; payload i becomes DATA packet i. */
  readonly sizes: number[] = [];
  /** Payloads not sealed yet (their writers wait for room). */
  readonly waiting: number[] = [];
  /** A DATA packet being sealed: its ack was taken, it is not held yet. */
  sealing: { payload: number; seq: number; ack: number } | null = null;
  /** A CONTROL packet being sealed: the ack it carries. */
  controlSealing: number | null = null;
  /** CONTROL packets sealed, waiting for the pump. */
  readonly controlOut: number[] = [];
  /** Every DATA frame ever held, by seq. */
  readonly sealed: Uint8Array[] = [];
  /** Bytes of sealed[0..n-1] at index n. */
  readonly sealedBytes: number[] = [0];
  /** Payloads delivered to the application, in order. */
  delivered = 0;
  /** Every received count this end had (for stale claims). */
  readonly history: number[] = [0];
  /** Highest ack carried by a packet queued (the model of ackOwed). */
  ackQueued = 0;
  /** Packets classified "deliver" and being opened (one per pipe). */
  readonly openings: Opening[] = [];

  constructor(side: Side, windowBytes: number) {
    this.side = side;
    this.stream = new ReliableStream(windowBytes);
  }
}

/** How often each thing happens in one run (varied per run). */
interface Profile {
  write: number;
  seal: number;
  transmit: number;
  deliver: number;
  open: number;
  control: number;
  drop: number;
  replay: number;
  staleAck: number;
  cut: number;
  deadOneSide: number;
  reconnect: number;
  forge: number;
  /** Chance that a handshake count is an older one. */
  staleCount: number;
  /** Chance that an opening is deferred (decrypting while things move). */
  deferOpen: number;
}

/**
 * How often each case the properties are about was reached, over all runs:
 * a generator that never reaches a case proves nothing about it.
 */
const seen = {
  /** Resumes (each end, each reconnect). */
  resumes: 0,
  /** ...from a count below the acknowledged mark (the stale-count rule). */
  staleResumes: 0,
  /** ...that had packets to resend. */
  resends: 0,
  /** DATA packets dropped as duplicates (resends, replays). */
  duplicates: 0,
  /** Gaps (the path dropped or inserted a frame): pipe dropped. */
  gaps: 0,
  /** Packets opened late whose resend had been counted meanwhile. */
  countedMeanwhile: 0,
  /** Packets of a replaced pipe counted (the stream's rule alone). */
  countedAfterSwap: 0,
  /** Writers that found the window full. */
  windowFull: 0,
  /** Frames larger than the window, held alone. */
  oversized: 0,
  /** Acks below the acknowledged mark (stale or repeated). */
  staleAcks: 0,
  /** Packets lost in flight at a cut or swap. */
  lostInFlight: 0,
  cuts: 0,
  abandonedAttempts: 0,
  forgeries: 0,
};

class PropertyError extends Error {
  override name = "PropertyError";
}

/** Fails the run (a property does not hold). */
function fail(message: string): never {
  throw new PropertyError(message);
}

class World {
  readonly rand: Random;
  readonly ends: Record<Side, End>;
  readonly profile: Profile;
  readonly trace: string[] | null;
  readonly maxFrame: number;
  readonly windowBytes: number;
  readonly calmWeights: number[];
  readonly weights: number[];

  constructor(seed: number, tracing: boolean) {
    const rand = this.rand = new Random(seed);
    this.trace = tracing ? [] : null;
    this.windowBytes = rand.pick([1, 40, 100, 300, 1000, 4000]);
    this.maxFrame = rand.pick([16, 64, 200, 600]);
    this.ends = {
      client: new End("client", this.windowBytes),
      server: new End("server", this.windowBytes),
    };
    const stormy = rand.chance(0.5);
    const w = (calm: number, storm: number) =>
      (stormy ? storm : calm) * (0.5 + rand.next());
    this.profile = {
      write: w(6, 6),
      seal: w(8, 8),
      transmit: w(6, 6),
      deliver: w(10, 10),
      open: w(3, 3),
      control: w(2, 2),
      drop: w(0.1, 1),
      replay: w(0.2, 1.5),
      staleAck: w(0.2, 1),
      cut: w(0.2, 1.5),
      deadOneSide: w(0.1, 0.5),
      reconnect: w(0.3, 1.5),
      forge: w(0.05, 0.1),
      staleCount: rand.next() * 0.5,
      deferOpen: rand.next() * 0.5,
    };
    const p = this.profile;
    // Cumulative weights, in the order of the actions in step().
    const calm = [p.write, p.seal, p.transmit, p.deliver, p.open, p.control];
    const faults = [
      p.drop,
      p.replay,
      p.staleAck,
      p.cut,
      p.deadOneSide,
      p.reconnect,
      p.forge,
    ];
    let total = 0;
    this.calmWeights = calm.map((weight) => total += weight);
    this.weights = [...this.calmWeights, ...faults.map((w) => total += w)];
  }

  /** Records a step when tracing (the line is built only then). */
  log(line: () => string) {
    this.trace?.push(line());
  }

  // ---- applications ----

  write(end: End) {
    const payload = end.sizes.length;
    const size = this.rand.chance(0.05)
      ? Math.max(FRAME_HEADER, this.windowBytes + 1 + this.rand.int(99)) // > window
      : FRAME_HEADER + this.rand.int(this.maxFrame);
    end.sizes.push(size);
    end.waiting.push(payload);
    this.log(() => `${end.side} writes payload ${payload} (${size} bytes)`);
  }

  /** Starts sealing the next payload if it fits, else finishes one. */
  seal(end: End) {
    const { stream } = end;
    if (end.sealing) {
      const { payload, seq, ack } = end.sealing;
      const frame = sealFrame(seq, ack, payload, end.sizes[payload]);
      if (!stream.hasRoom(frame.length)) {
        fail(`${end.side}: room for packet ${seq} vanished while sealing`);
      }
      if (stream.nextSeq !== seq) {
        fail(`${end.side}: nextSeq moved while sealing`);
      }
      if (frame.length > stream.windowBytes) seen.oversized++;
      if (stream.hold(frame, ack) !== seq) {
        fail(`${end.side}: hold numbered it`);
      }
      end.sealed.push(frame);
      end.sealedBytes.push(end.sealedBytes[seq] + frame.length);
      end.ackQueued = Math.max(end.ackQueued, ack);
      end.sealing = null;
      this.log(() => `${end.side} holds packet ${seq} (ack ${ack})`);
      return;
    }
    if (end.waiting.length === 0) return;
    const payload = end.waiting[0];
    const size = end.sizes[payload];
    if (!stream.hasRoom(size)) {
      seen.windowFull++;
      // The writer waits; holding it anyway must be refused.
      if (this.rand.chance(0.02)) {
        const before = snapshot(stream);
        assert.throws(
          () => stream.hold(new Uint8Array(size), stream.received),
          RangeError,
        );
        if (!same(before, snapshot(stream))) {
          fail("a refused hold changed state");
        }
      }
      return;
    }
    end.waiting.shift();
    end.sealing = { payload, seq: stream.nextSeq, ack: stream.received };
    if (payload !== stream.nextSeq) fail("payloads are sealed in order");
  }

  // ---- the pump ----

  transmit(end: End, limit: number) {
    const pipe = end.pipe;
    if (!pipe) return;
    const peer = other(end.side);
    while (end.controlOut.length > 0) {
      pipe.toward[peer].push({ kind: "control", ack: end.controlOut.shift()! });
    }
    for (let i = 0; i < limit; i++) {
      const frame = end.stream.nextFrame();
      if (frame === null) break;
      const seq = openFrame(frame).seq;
      if (frame !== end.sealed[seq]) {
        fail(`${end.side}: frame ${seq} is not the one sealed`);
      }
      if (seq <= pipe.lastSeq[peer]) {
        fail(
          `${end.side}: pipe ${pipe.id} carries ${seq} after ${
            pipe.lastSeq[peer]
          }`,
        );
      }
      pipe.lastSeq[peer] = seq;
      pipe.toward[peer].push({ kind: "data", seq, frame });
    }
  }

  /** Starts sealing a CONTROL packet, or finishes the one being sealed. */
  control(end: End) {
    if (end.controlSealing !== null) {
      const ack = end.controlSealing;
      end.controlSealing = null;
      end.controlOut.push(ack);
      end.stream.ackSent(ack);
      end.ackQueued = Math.max(end.ackQueued, ack);
      this.log(() => `${end.side} queues control ack ${ack}`);
      return;
    }
    // As the connection: only with a pipe; when owed, or as a keepalive.
    if (end.pipe && (end.stream.ackOwed > 0 || this.rand.chance(0.2))) {
      end.controlSealing = end.stream.received;
    }
  }

  // ---- the read loop ----

  /** Reads the next packet of the end's pipe (if it is not opening one). */
  deliver(end: End): boolean {
    const pipe = end.pipe;
    if (!pipe) return false;
    if (end.openings.some((opening) => opening.pipe === pipe)) {
      return false; // the read loop awaits the open
    }
    const packet = pipe.toward[end.side].shift();
    if (!packet) return false;
    const { stream } = end;
    if (packet.kind === "control") {
      const peer = this.ends[other(end.side)];
      if (packet.ack > peer.stream.received) {
        fail("an honest ack is never above the peer's count");
      }
      if (packet.ack < stream.acknowledged) seen.staleAcks++;
      stream.acknowledge(packet.ack);
      if (stream.acknowledged < packet.ack) {
        fail("an ack freed what it covers");
      }
      this.log(() => `${end.side} acked ${packet.ack} by control`);
      return true;
    }
    const verdict = stream.classify(packet.seq);
    const expected = packet.seq < stream.received
      ? "duplicate"
      : packet.seq === stream.received
      ? "deliver"
      : "gap";
    if (verdict !== expected) {
      fail(`classify(${packet.seq}) said ${verdict}`);
    }
    if (verdict === "duplicate") {
      seen.duplicates++;
      return true;
    }
    if (verdict === "gap") {
      seen.gaps++;
      if (!pipe.tampered[end.side]) {
        fail(
          `${end.side}: gap at ${packet.seq} (expected ${stream.received}) on pipe ${pipe.id}, which nobody tampered with`,
        );
      }
      // The connection closes a pipe that skipped a packet.
      this.log(() =>
        `${end.side} sees a gap at ${packet.seq}: drops pipe ${pipe.id}`
      );
      end.pipe = null;
      return true;
    }
    const opening = { seq: packet.seq, frame: packet.frame, pipe };
    if (this.rand.chance(this.profile.deferOpen)) end.openings.push(opening);
    else this.finishOpening(end, opening);
    return true;
  }

  /** An open completes (possibly after its pipe was replaced). */
  finishOpening(end: End, opening: Opening) {
    const index = end.openings.indexOf(opening);
    if (index >= 0) end.openings.splice(index, 1);
    const { stream } = end;
    if (opening.pipe !== end.pipe && this.rand.chance(0.5)) {
      // The connection's generation rule drops it; the other half of the
      // time it is handed in anyway: the stream alone must keep it once.
      return;
    }
    const { ack, payload } = openFrame(opening.frame);
    const peer = this.ends[other(end.side)];
    if (opening.frame !== peer.sealed[opening.seq]) {
      fail("a frame was altered");
    }
    const before = snapshot(stream);
    if (ack < stream.acknowledged) seen.staleAcks++;
    if (!stream.receive(opening.seq, ack)) {
      seen.countedMeanwhile++;
      if (opening.seq >= stream.received) {
        fail("receive refused the next packet");
      }
      if (!same(before, snapshot(stream))) {
        fail("a refused receive changed state");
      }
      this.log(() =>
        `${end.side} drops packet ${opening.seq}: counted meanwhile`
      );
      return;
    }
    if (payload !== end.delivered) {
      fail(
        `${end.side} delivered payload ${payload}, expected ${end.delivered}`,
      );
    }
    end.delivered++;
    if (opening.pipe !== end.pipe) seen.countedAfterSwap++;
    end.history.push(stream.received);
    if (stream.acknowledged < ack) {
      fail("a data packet's ack freed what it covers");
    }
    this.log(() => `${end.side} delivers packet ${opening.seq} (ack ${ack})`);
  }

  // ---- the path ----

  livePipes(): Pipe[] {
    const pipes = [this.ends.client.pipe, this.ends.server.pipe];
    return [...new Set(pipes.filter((pipe): pipe is Pipe => pipe !== null))];
  }

  drop() {
    const pipes = this.livePipes();
    if (pipes.length === 0) return;
    const pipe = this.rand.pick(pipes);
    const side: Side = this.rand.chance(0.5) ? "client" : "server";
    const queue = pipe.toward[side];
    if (queue.length === 0) return;
    const [gone] = queue.splice(this.rand.int(queue.length), 1);
    pipe.tampered[side] = true;
    this.log(() =>
      `path drops ${
        gone.kind === "data" ? `packet ${gone.seq}` : `ack ${gone.ack}`
      } toward ${side}`
    );
  }

  /**
   * An old DATA frame, or a stale or repeated ack, injected into what the
   * peer reads: at the end of what is in flight (a replay), or anywhere.
   */
  replay(from: End, staleAckOnly: boolean) {
    const toward = other(from.side);
    const pipe = this.ends[toward].pipe;
    if (!pipe) return;
    const queue = pipe.toward[toward];
    if (staleAckOnly || from.sealed.length === 0) {
      const ack = this.rand.pick(from.history);
      queue.push({ kind: "control", ack });
      this.log(() => `path replays ack ${ack} to ${toward}`);
      return;
    }
    const seq = this.rand.int(from.sealed.length);
    const packet: Packet = { kind: "data", seq, frame: from.sealed[seq] };
    const atEnd = this.rand.chance(0.7);
    if (atEnd) queue.push(packet);
    else queue.splice(this.rand.int(queue.length + 1), 0, packet);
    // Behind a frame this pipe carried, a replay can only be a duplicate;
    // anywhere else it may open a gap, and the pipe is broken.
    if (!atEnd || seq > pipe.lastSeq[toward]) pipe.tampered[toward] = true;
    this.log(() =>
      `path replays packet ${seq} to ${toward} (at end: ${atEnd})`
    );
  }

  /** Drains up to `count` packets toward `end` on `pipe`, then stops. */
  drainSome(end: End, pipe: Pipe, count: number) {
    for (let i = 0; i < count && end.pipe === pipe; i++) {
      const opening = end.openings.find((o) => o.pipe === pipe);
      if (opening) this.finishOpening(end, opening);
      else if (!this.deliver(end)) break;
    }
  }

  /** The pipe breaks: each end reads a random prefix of what is in flight. */
  cut(pipe: Pipe) {
    seen.cuts++;
    for (const side of ["client", "server"] as const) {
      const end = this.ends[side];
      if (end.pipe === pipe) {
        this.drainSome(end, pipe, this.rand.int(pipe.toward[side].length + 1));
        end.pipe = null;
      }
      this.lose(pipe, side);
    }
    this.log(() => `pipe ${pipe.id} cut`);
  }

  /** Whatever is still in flight toward `side` on `pipe` is lost. */
  lose(pipe: Pipe, side: Side) {
    seen.lostInFlight += pipe.toward[side].length;
    pipe.toward[side].length = 0;
  }

  /** A count the end would claim in a handshake: its own, or a stale one. */
  claim(end: End): number {
    return this.rand.chance(this.profile.staleCount)
      ? this.rand.pick(end.history)
      : end.stream.received;
  }

  /** A few random steps on whatever pipes are attached (handshake time). */
  meanwhile() {
    for (let i = this.rand.int(4); i > 0; i--) this.step(false);
  }

  /** Checks the resume rule, then resumes `end` on `pipe`. */
  resume(end: End, pipe: Pipe, count: number) {
    const { stream } = end;
    const peer = this.ends[other(end.side)];
    const acknowledged = stream.acknowledged;
    const from = stream.resume(count);
    seen.resumes++;
    if (count < acknowledged) seen.staleResumes++;
    if (from < stream.nextSeq) seen.resends++;
    if (from < acknowledged) {
      fail(
        `${end.side} resumes from ${from}, below its acknowledged mark ${acknowledged} (count ${count})`,
      );
    }
    if (from > peer.stream.received) {
      fail(
        `${end.side} resumes from ${from}, past what the peer holds (${peer.stream.received})`,
      );
    }
    if (stream.sendCursor !== from) {
      fail("the cursor is at the resume point");
    }
    if (stream.acknowledged !== from) {
      fail("the resume point is acknowledged");
    }
    end.pipe = pipe;
    this.log(() =>
      `${end.side} attaches pipe ${pipe.id}, resending from ${from} (count ${count})`
    );
  }

  /**
   * A handshake on a new pipe: AUTH carries the client's count, ACCEPT the
   * server's; the old pipe keeps working until each end swaps.
   */
  reconnect() {
    const { client, server } = this.ends;
    const pipe = new Pipe();
    const clientCount = this.claim(client);
    this.meanwhile();
    server.stream.resumePoint(clientCount); // checkResume: must not throw
    const serverCount = this.claim(server);
    this.meanwhile();
    // The server swaps: it stops reading the old pipe; the client may still
    // read what the server wrote to it before.
    const old = server.pipe;
    if (old) this.lose(old, "server");
    this.resume(server, pipe, clientCount);
    this.ackNow(server); // attach tells the peer at once what it holds
    if (this.rand.chance(0.1)) {
      // The client gave this attempt up (a newer one won, or it timed out):
      // the server's pipe goes nowhere; the client's old pipe dies.
      seen.abandonedAttempts++;
      this.log(() => `client abandons attempt on pipe ${pipe.id}`);
      if (old && client.pipe === old) {
        this.drainSome(
          client,
          old,
          this.rand.int(old.toward.client.length + 1),
        );
        client.pipe = null;
      }
      return;
    }
    this.meanwhile();
    if (client.pipe && client.pipe !== pipe) {
      const previous = client.pipe;
      this.drainSome(
        client,
        previous,
        this.rand.int(previous.toward.client.length + 1),
      );
      this.lose(previous, "client");
    }
    this.resume(client, pipe, serverCount);
    this.ackNow(client);
  }

  /** Seals and queues a CONTROL packet now (after the one being sealed). */
  ackNow(end: End) {
    if (end.controlSealing !== null) this.control(end);
    end.controlSealing = end.stream.received;
    this.control(end);
  }

  /** Forged claims are refused and change nothing. */
  forge(end: End) {
    const { stream } = end;
    seen.forgeries++;
    const before = snapshot(stream);
    const claim = stream.nextSeq + 1 + this.rand.int(5);
    assert.throws(() => stream.resumePoint(claim), CannotResumeError);
    assert.throws(() => stream.resume(claim), CannotResumeError);
    assert.throws(() => stream.acknowledge(claim), ProtocolError);
    assert.throws(() => stream.receive(stream.received, claim), ProtocolError);
    assert.throws(
      () => stream.receive(stream.received + 1 + this.rand.int(3), 0),
      ProtocolError,
    );
    assert.throws(() => stream.ackSent(stream.received + 1), RangeError);
    if (!same(before, snapshot(stream))) {
      fail(`${end.side}: a forgery changed state`);
    }
  }

  // ---- one random step ----

  step(faults: boolean) {
    const weights = faults ? this.weights : this.calmWeights;
    const end = this.ends[this.rand.chance(0.5) ? "client" : "server"];
    const r = this.rand.next() * weights[weights.length - 1];
    let action = 0;
    while (r >= weights[action]) action++;
    switch (action) {
      case 0:
        return this.write(end);
      case 1:
        return this.seal(end);
      case 2:
        return this.transmit(end, 1 + this.rand.int(4));
      case 3:
        this.deliver(end);
        return;
      case 4:
        if (end.openings.length > 0) {
          this.finishOpening(end, this.rand.pick(end.openings));
        }
        return;
      case 5:
        return this.control(end);
      case 6:
        return this.drop();
      case 7:
        return this.replay(end, false);
      case 8:
        return this.replay(end, true);
      case 9: {
        const pipes = this.livePipes();
        if (pipes.length > 0) this.cut(this.rand.pick(pipes));
        return;
      }
      case 10: {
        const pipe = end.pipe;
        if (pipe) {
          this.log(() => `${end.side} declares pipe ${pipe.id} dead`);
          end.pipe = null;
        }
        return;
      }
      case 11:
        return this.reconnect();
      case 12:
        return this.forge(end);
    }
  }

  // ---- properties ----

  checkInvariants() {
    for (const side of ["client", "server"] as const) {
      const end = this.ends[side];
      const peer = this.ends[other(side)];
      const { stream } = end;
      // Exactly once, in order: one payload per packet counted.
      if (end.delivered !== stream.received) {
        fail(`${side}: delivered != received`);
      }
      if (stream.received > peer.stream.nextSeq) {
        fail(`${side} received more than the peer sent`);
      }
      if (stream.nextSeq !== end.sealed.length) {
        fail(`${side}: nextSeq drifted`);
      }
      // Nothing freed that the peer lacks.
      if (stream.acknowledged > peer.stream.received) {
        fail(
          `${side} freed ${stream.acknowledged} but the peer holds ${peer.stream.received}`,
        );
      }
      // Held is exactly the unacknowledged frames, and bounded.
      const bytes = end.sealedBytes[stream.nextSeq] -
        end.sealedBytes[stream.acknowledged];
      if (stream.heldBytes !== bytes) {
        fail(`${side} holds ${stream.heldBytes} bytes, expected ${bytes}`);
      }
      if (stream.heldCount !== stream.nextSeq - stream.acknowledged) {
        fail(`${side}: heldCount`);
      }
      if (stream.heldBytes > stream.windowBytes && stream.heldCount !== 1) {
        fail(
          `${side} holds ${stream.heldBytes} bytes in ${stream.heldCount} frames, window ${stream.windowBytes}`,
        );
      }
      if (
        stream.sendCursor < stream.acknowledged ||
        stream.sendCursor > stream.nextSeq
      ) {
        fail(`${side}: send cursor ${stream.sendCursor} out of range`);
      }
      if (stream.ackOwed !== stream.received - end.ackQueued) {
        fail(
          `${side}: ackOwed ${stream.ackOwed}, model ${
            stream.received - end.ackQueued
          }`,
        );
      }
    }
  }

  /** Deep checks, now and then: the held frames are the very ones sealed. */
  checkHeldFrames() {
    for (const end of Object.values(this.ends)) {
      const held = end.stream.heldFrames();
      const from = end.stream.acknowledged;
      if (held.length !== end.stream.heldCount) fail("heldFrames() length");
      held.forEach((frame, i) => {
        if (frame !== end.sealed[from + i]) fail("heldFrames() order");
      });
    }
  }

  /** Nothing left to do: written, sealed, sent, delivered, acknowledged. */
  quiet(): boolean {
    for (const end of [this.ends.client, this.ends.server]) {
      if (
        end.waiting.length > 0 || end.sealing !== null ||
        end.controlSealing !== null || end.controlOut.length > 0 ||
        end.openings.length > 0 || end.stream.unsentCount > 0 ||
        end.stream.ackOwed > 0 || end.stream.heldBytes > 0 ||
        (end.pipe?.toward[end.side].length ?? 0) > 0
      ) {
        return false;
      }
    }
    return true;
  }

  /** The path heals: everything written must arrive and be acknowledged. */
  heal() {
    const { client, server } = this.ends;
    for (const end of [client, server]) {
      while (end.openings.length > 0) {
        this.finishOpening(end, end.openings[0]);
      }
    }
    // A clean reconnect with true counts.
    const pipe = new Pipe();
    this.resume(server, pipe, client.stream.received);
    this.resume(client, pipe, server.stream.received);
    const budget = 20 * (client.sizes.length + server.sizes.length + 10);
    for (let round = 0; !this.quiet(); round++) {
      if (round >= budget) fail("the run does not drain");
      for (const end of [client, server]) {
        while (end.openings.length > 0) {
          this.finishOpening(end, end.openings[0]);
        }
        if (end.sealing || end.waiting.length > 0) this.seal(end);
        this.transmit(end, 1 << 30);
        while (this.deliver(end)) this.checkInvariants();
        if (end.controlSealing !== null || end.stream.ackOwed > 0) {
          this.control(end);
          this.transmit(end, 0);
        }
        this.checkInvariants();
      }
    }
    for (const end of [client, server]) {
      const peer = this.ends[other(end.side)];
      if (end.delivered !== peer.sizes.length) {
        fail(
          `${end.side} got ${end.delivered} of ${peer.sizes.length} payloads`,
        );
      }
      if (end.stream.heldBytes !== 0) fail(`${end.side} still holds frames`);
      if (end.stream.ackOwed !== 0) fail(`${end.side} still owes an ack`);
    }
  }
}

function snapshot(stream: ReliableStream) {
  return [
    stream.nextSeq,
    stream.acknowledged,
    stream.heldBytes,
    stream.sendCursor,
    stream.received,
    stream.ackOwed,
  ];
}

function same(a: number[], b: number[]): boolean {
  return a.every((value, i) => value === b[i]);
}

/** One random run; throws with the seed (and a trace, when tracing). */
function run(seed: number, tracing = false) {
  const world = new World(seed, tracing);
  const steps = 20 + world.rand.int(300);
  let step = 0;
  try {
    for (; step < steps; step++) {
      world.step(true);
      world.checkInvariants();
      if (step % 16 === 0) world.checkHeldFrames();
    }
    world.heal();
    world.checkHeldFrames();
  } catch (error) {
    if (!tracing) run(seed, true); // again, to report the steps
    const trace = world.trace?.slice(-40).join("\n  ") ?? "";
    throw new Error(
      `seed ${seed}, ${step < steps ? `step ${step}` : "healing"}: ${
        (error as Error).message
      }` +
        (trace ? `\n  last steps:\n  ${trace}` : ""),
      { cause: error },
    );
  }
}

// ---- the tests ----

const RUNS_NAME = ONLY_SEED === undefined
  ? `${RUNS} random runs`
  : `the random run of seed ${ONLY_SEED}`;

Deno.test(`ReliableStream properties hold over ${RUNS_NAME} of sends, acks, drops, replays, cuts and resumes`, () => {
  if (ONLY_SEED !== undefined) {
    run(ONLY_SEED, true);
    return;
  }
  const started = performance.now();
  for (let seed = 1; seed <= RUNS; seed++) run(seed);
  const took = Math.round(performance.now() - started);
  console.log(`${RUNS} runs in ${took} ms; reached: ${JSON.stringify(seen)}`);
  // Every case the properties speak of was reached, many times over.
  if (RUNS >= 1000) {
    for (const [name, count] of Object.entries(seen)) {
      assert.ok(count >= RUNS / 100, `${name} reached only ${count} times`);
    }
  }
});

Deno.test("a stale count resumes from the acknowledged mark; a count above what was sent is refused", () => {
  const stream = new ReliableStream(1000);
  for (let i = 0; i < 6; i++) stream.hold(new Uint8Array([i]), 0);
  stream.acknowledge(4);
  // An older attempt's count (2) finishes last: resend from 4, not 2.
  assert.equal(stream.resume(2), 4);
  assert.equal(stream.nextFrame()?.[0], 4);
  assert.equal(stream.nextFrame()?.[0], 5);
  assert.equal(stream.nextFrame(), null);
  assert.throws(() => stream.resume(7), CannotResumeError);
  assert.equal(stream.sendCursor, 6, "a refused resume changes nothing");
  assert.equal(stream.resume(6), 6);
  assert.equal(stream.heldBytes, 0);
});

Deno.test("acks on another pipe move the send cursor past what they cover", () => {
  const stream = new ReliableStream();
  for (let i = 0; i < 5; i++) stream.hold(new Uint8Array([i]), 0);
  stream.resume(0);
  assert.equal(stream.nextFrame()?.[0], 0);
  stream.acknowledge(3); // the peer got 1 and 2 on the old pipe
  assert.equal(stream.sendCursor, 3);
  assert.equal(stream.nextFrame()?.[0], 3);
  stream.acknowledge(1); // stale: nothing changes
  assert.equal(stream.acknowledged, 3);
  assert.equal(stream.nextFrame()?.[0], 4);
});

Deno.test("a packet counted while it was being opened is dropped; acks owed follow what was queued", () => {
  const stream = new ReliableStream();
  assert.equal(stream.classify(0), "deliver");
  assert.ok(stream.receive(0, 0));
  assert.equal(stream.receive(0, 0), false, "a resend counted meanwhile");
  assert.throws(() => stream.receive(2, 0), ProtocolError);
  assert.equal(stream.classify(2), "gap");
  assert.ok(stream.receive(1, 0));
  assert.equal(stream.ackOwed, 2);
  stream.ackSent(1);
  assert.equal(stream.ackOwed, 1);
  stream.ackSent(0); // an older ack sealed late does not raise what is owed
  assert.equal(stream.ackOwed, 1);
  stream.hold(new Uint8Array(1), 2);
  assert.equal(stream.ackOwed, 0);
});
