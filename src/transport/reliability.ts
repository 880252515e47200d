/**
 * ReliableStream: the accounting of one end of Eternal TCP (PROTOCOL.md
 * sections 5 and 6) as pure, synchronous state. It owns the BackedWriter
 * (sealed DATA frames held until acknowledged, bounded by the window), the
 * BackedReader (DATA packets received in order), the send cursor of the
 * pipe in use, the resume rule, and how many received packets no sent ack
 * covers yet.
 *
 * No timers, no promises, no crypto, no pipes: sealed frames go in and out
 * as opaque bytes, and the caller says what each one carries. The
 * connection (`connection.ts`) decides *when* things happen (pipes, pumps,
 * timers, waiting for room); this decides *what* is sent, resent, counted
 * and freed, so those rules can be tested exhaustively on their own
 * (`tests/transport/reliability_test.ts`).
 *
 * @module
 */

import { BackedReader, type PacketVerdict } from "./backed_reader.ts";
import { BackedWriter, DEFAULT_WINDOW_BYTES } from "./backed_writer.ts";
import { ProtocolError } from "./wire.ts";

/**
 * Sequence, acknowledgement, window and resume state of one end.
 *
 * @example
 * ```ts
 * const stream = new ReliableStream(1 << 20);
 * // Sending: seal DATA packet `stream.nextSeq` carrying `stream.received`.
 * if (stream.hasRoom(frame.length)) stream.hold(frame, ack);
 * for (let f; (f = stream.nextFrame()) !== null;) write(f);
 * // Receiving DATA `seq`: duplicates are dropped unopened; the next one is
 * // opened (by the caller) and then counted, once.
 * if (stream.classify(seq) === "deliver") {
 *   const { ack, message } = await openDataPacket(body);
 *   if (stream.receive(seq, ack)) deliver(message);
 * }
 * // Reconnecting: the peer said it holds `count` of our packets.
 * stream.resume(count); // nextFrame() now resends the gap
 * ```
 */
export class ReliableStream {
  #writer: BackedWriter;
  #reader = new BackedReader();
  // Next frame the pipe in use has not carried; reset by resume().
  #sendCursor = 0;
  // Highest received count carried by a packet queued so far.
  #ackSent = 0;

  /** Makes the state of a new session's end (window: the flow limit). */
  constructor(windowBytes: number = DEFAULT_WINDOW_BYTES) {
    this.#writer = new BackedWriter(windowBytes);
  }

  /** Bytes of held frames beyond which no further frame is taken. */
  get windowBytes(): number {
    return this.#writer.windowBytes;
  }

  // ---- sending: the BackedWriter ----

  /** Sequence number of the next DATA packet (how many were sealed). */
  get nextSeq(): number {
    return this.#writer.nextSeq;
  }

  /** The peer's acknowledged mark: every packet below it was freed. */
  get acknowledged(): number {
    return this.#writer.acknowledged;
  }

  /** Bytes of sealed packets held until the peer acknowledges them. */
  get heldBytes(): number {
    return this.#writer.bufferedBytes;
  }

  /** Packets held (sent or not yet sent, not acknowledged). */
  get heldCount(): number {
    return this.#writer.nextSeq - this.#writer.acknowledged;
  }

  /**
   * True if a frame of `size` bytes fits in the window now (an empty
   * window always has room, so no frame can stall for ever).
   */
  hasRoom(size: number): boolean {
    return this.#writer.hasRoom(size);
  }

  /**
   * Holds sealed DATA packet number {@link nextSeq}, which carries `ack`
   * (the received count it was sealed with), until the peer acknowledges
   * it; returns its sequence number. Throws RangeError if it does not fit
   * the window or `ack` is more than was received.
   */
  hold(frame: Uint8Array, ack: number): number {
    const seq = this.#writer.push(frame);
    this.ackSent(ack);
    return seq;
  }

  /** The held frames, oldest first (what the peer has not acknowledged). */
  heldFrames(): Uint8Array[] {
    const frames: Uint8Array[] = [];
    for (let seq = this.acknowledged; seq < this.nextSeq; seq++) {
      frames.push(this.#writer.frameAt(seq));
    }
    return frames;
  }

  /**
   * The peer has received `count` of our packets: frees those below it. A
   * stale count (below the mark) changes nothing. Throws ProtocolError,
   * changing nothing, if `count` is more than was ever sent.
   */
  acknowledge(count: number) {
    if (!this.#writer.acknowledge(count)) {
      throw new ProtocolError(`peer acknowledged ${count} unsent packets`);
    }
  }

  // ---- the pipe in use: resume point and send cursor ----

  /**
   * Where sending resumes for a peer that says (in a handshake) it has
   * received `count` of our packets: the higher of `count` and the
   * acknowledged mark, since a count can be stale (an older attempt's, or
   * passed while the old pipe kept delivering) and everything from the
   * mark on is held. Throws CannotResumeError if `count` is more than was
   * ever sent: the peer's state cannot be ours. Changes nothing.
   */
  resumePoint(count: number): number {
    return this.#writer.resumePoint(count);
  }

  /**
   * A new pipe replaces the old one and the peer holds `count` of our
   * packets: frees what it holds and sets the send cursor to the resume
   * point, so {@link nextFrame} resends the gap, in order, then new
   * packets. Returns the resume point. Throws like {@link resumePoint},
   * before changing anything.
   */
  resume(count: number): number {
    const from = this.resumePoint(count);
    this.#writer.acknowledge(from);
    this.#sendCursor = from;
    return from;
  }

  /** Sequence number of the next packet the pipe in use will carry. */
  get sendCursor(): number {
    return Math.max(this.#sendCursor, this.acknowledged);
  }

  /** Packets held that the pipe in use has not carried yet. */
  get unsentCount(): number {
    return this.nextSeq - this.sendCursor;
  }

  /**
   * The next frame for the pipe in use, advancing the send cursor past it,
   * or null when the pipe has carried everything held. Frames the peer
   * acknowledged meanwhile (on another pipe) are skipped.
   */
  nextFrame(): Uint8Array | null {
    const seq = this.sendCursor;
    if (seq >= this.nextSeq) return null;
    this.#sendCursor = seq + 1;
    return this.#writer.frameAt(seq);
  }

  // ---- receiving: the BackedReader ----

  /** DATA packets received in order: the next expected sequence number. */
  get received(): number {
    return this.#reader.received;
  }

  /**
   * What an arriving DATA packet `seq` is, before it is opened: the next
   * one ("deliver"), an old one ("duplicate": a resend or a replay, drop
   * it unopened) or one past a gap ("gap": impossible on an ordered pipe;
   * the pipe is broken).
   */
  classify(seq: number): PacketVerdict {
    return this.#reader.classify(seq);
  }

  /**
   * DATA packet `seq`, carrying `ack`, was authenticated: counts it and
   * applies its ack. Returns false, changing nothing, if it was counted
   * meanwhile (while it was being opened, a resend of it was). Throws
   * ProtocolError, changing nothing, if it is past a gap or its ack is
   * more than was sent.
   */
  receive(seq: number, ack: number): boolean {
    const verdict = this.#reader.classify(seq);
    if (verdict === "duplicate") return false;
    if (verdict === "gap") {
      throw new ProtocolError(
        `packet ${seq} arrived but ${this.received} was expected`,
      );
    }
    if (ack > this.nextSeq) {
      throw new ProtocolError(`peer acknowledged ${ack} unsent packets`);
    }
    this.#reader.advance();
    this.#writer.acknowledge(ack);
    return true;
  }

  // ---- acknowledgements owed ----

  /**
   * A packet carrying `ack` as its received count was queued (a CONTROL
   * packet; DATA packets record theirs in {@link hold}).
   */
  ackSent(ack: number) {
    if (ack > this.received) {
      throw new RangeError(`ack ${ack} is more than ${this.received} received`);
    }
    if (ack > this.#ackSent) this.#ackSent = ack;
  }

  /**
   * Packets received that no queued packet acknowledges yet: an ack is due
   * when this is above zero (soon) or reaches the ack-every count (now).
   */
  get ackOwed(): number {
    return this.received - this.#ackSent;
  }
}
