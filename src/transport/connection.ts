/**
 * EternalConnection: one session's reliable, sealed, multiplexed stream that
 * outlives the byte pipes under it. Pipes come and go (attach, detach); the
 * ReliableStream (sequence numbers, held frames, acks, resume point), nonce
 * counters and channels stay, so a resume resends exactly the gap and
 * nothing is lost or delivered twice.
 *
 * The accounting itself is pure state in `reliability.ts`; this file is what
 * runs around it: pipe lifecycle, sealing, the write pump and read loop,
 * timers, waiting writers, channels and the session's end.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";
import { DEFAULT_WINDOW_BYTES } from "./backed_writer.ts";
import {
  Channel,
  ChannelClosedError,
  type ChannelLink,
  DEFAULT_CHANNEL_WINDOW_BYTES,
} from "./channel.ts";
import {
  concatBytes,
  deriveSessionKeys,
  type SessionKeys,
  type SessionRole,
  TAG_BYTES,
} from "./crypto.ts";
import { FRAME_HEADER_BYTES, FrameError, type FrameReader } from "./frame.ts";
import { openPacket, sealPacket } from "./packet.ts";
import { type BytePipe, closeQuietly, writeAll } from "./pipe.ts";
import { ReliableStream } from "./reliability.ts";
import { ReplayFilter } from "./replay_filter.ts";
import type { SessionSecret } from "./session_secret.ts";
import {
  ACK_DELAY_MS,
  ACK_EVERY_PACKETS,
  DEAD_AFTER_MS,
  HANDSHAKE_TIMEOUT_MS,
  KEEPALIVE_MS,
  Liveness,
} from "./timers.ts";
import {
  decodeMessage,
  decodeText,
  encodeMessageHeader,
  encodeText,
  FrameType,
  MESSAGE_HEADER_BYTES,
  MessageType,
  PACKET_HEADER_BYTES,
  packetCounter,
  ProtocolError,
  readU32Body,
  readU64,
  u32,
  u64,
} from "./wire.ts";

const log = logger("transport");

/** Tuning of an eternal connection; both ends should agree on timings. */
export interface EternalConnectionOptions {
  /**
   * Bytes of sealed data held until acknowledged; also the flow-control
   * limit of the whole connection.
   * @default {1048576}
   */
  windowBytes?: number;
  /**
   * Bytes a sender may have outstanding on one channel.
   * @default {524288}
   */
  channelWindowBytes?: number;
  /**
   * Send a keepalive when nothing was sent for this long.
   * @default {1000}
   */
  keepaliveMs?: number;
  /**
   * Declare the pipe dead when nothing arrived for this long, even if the
   * OS reports no error (a silent blackhole). Measured on the monotonic
   * clock; a pipe is also dropped at once when the machine has slept.
   * @default {6000}
   */
  deadAfterMs?: number;
  /**
   * Longest wait for each handshake step.
   * @default {5000}
   */
  handshakeTimeoutMs?: number;
}

/** How and why a session ended. */
export interface SessionEnd {
  /** Human-readable reason. */
  reason: string;
  /** True when the peer ended it. */
  byPeer: boolean;
  /** Set when the session ended because of an error, not by agreement. */
  error?: Error;
}

/** Options of {@link EternalConnection.attach}. */
export interface AttachOptions {
  /**
   * The handshake attempt this pipe comes from; a pipe is attached only if
   * its attempt is newer than every attempt attached before.
   * @default {one above the last attached}
   */
  attempt?: number;
  /** A frame the new pipe sends before anything else (the ACCEPT). */
  prelude?: Uint8Array;
}

/** Something that happened to the pipe under the session. */
export type ConnectionEvent =
  | { type: "connected"; resent: number }
  | { type: "disconnected"; reason: string };

/** The session is over; thrown at writers and waiters. */
export class SessionClosedError extends Error {
  override name = "SessionClosedError";
}

/** Bytes of small frames coalesced into one pipe write. */
const COALESCE_BYTES = 64 * 1024;

/**
 * Microtasks between a data packet's delivery and the ack decision (see
 * `#scheduleAckSoon`): more than the reader of the delivered bytes needs
 * to write them on (a pty write, a terminal write: measured within 3-6).
 */
const ACK_DECISION_TICKS = 12;

/**
 * The session-long state of one end of an eternal connection.
 *
 * @example
 * ```ts
 * const connection = await EternalConnection.create(secret, "server");
 * connection.channel(1).write(bytes); // buffered until a pipe is attached
 * ```
 */
export class EternalConnection {
  /** Which end this is. */
  readonly role: SessionRole;
  /** The session's public id. */
  readonly sessionId: Uint8Array;
  /** @internal Keys of this end; used by the handshake. */
  readonly keys: SessionKeys;
  /** Effective options. */
  readonly options: Required<EternalConnectionOptions>;

  #stream: ReliableStream;
  // Writers waiting for room in the window, and close() waiting for the
  // last ack: woken by every acknowledgement and by the session's end.
  #ackWaiters: Array<() => void> = [];
  // What waiting writers are failed with once the session has ended.
  #failure: Error | null = null;
  #controlFilter = new ReplayFilter();
  #controlCounter = 0;
  #channels = new Map<number, Channel>();
  #link: ChannelLink;

  #pipe: BytePipe | null = null;
  #generation = 0;
  // Highest handshake attempt attached, and (client) the last one numbered.
  #attachedAttempt = 0;
  #attemptCounter = 0;
  #controlOut: Uint8Array[] = [];
  // Control frames queued and written so far (for acknowledgeAndDetach),
  // and who waits for a write: woken after each write and on each drop.
  #controlQueued = 0;
  #controlWritten = 0;
  #controlWriteWaiters: Array<() => void> = [];
  #wakePump: (() => void) | null = null;
  #sendChain: Promise<void> = Promise.resolve();
  // Acks must never wait behind data that waits for acks: own chain.
  #controlChain: Promise<void> = Promise.resolve();

  #timers: Liveness;
  #ackTimer: ReturnType<typeof setTimeout> | null = null;
  // An ack decision queued a few microtasks ahead (#scheduleAckSoon).
  #ackSoon = false;
  #liveness: ReturnType<typeof setTimeout> | null = null;
  // When the armed liveness timer fires (monotonic ms).
  #livenessAt = Infinity;

  #listeners: Array<(event: ConnectionEvent) => void> = [];
  #end: SessionEnd | null = null;
  // Set when the peer said goodbye: whatever happens next, that is the end.
  #goodbye: SessionEnd | null = null;
  #resolveClosed!: (end: SessionEnd) => void;
  /** Resolves once when the session ends, for whatever reason. */
  readonly closed: Promise<SessionEnd>;
  #detachWaiters: Array<() => void> = [];

  private constructor(
    secret: SessionSecret,
    role: SessionRole,
    keys: SessionKeys,
    options: EternalConnectionOptions,
  ) {
    this.role = role;
    this.sessionId = secret.id;
    this.keys = keys;
    this.options = {
      windowBytes: options.windowBytes ?? DEFAULT_WINDOW_BYTES,
      channelWindowBytes: options.channelWindowBytes ??
        DEFAULT_CHANNEL_WINDOW_BYTES,
      keepaliveMs: options.keepaliveMs ?? KEEPALIVE_MS,
      deadAfterMs: options.deadAfterMs ?? DEAD_AFTER_MS,
      handshakeTimeoutMs: options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    };
    this.#timers = new Liveness(
      this.options.keepaliveMs,
      this.options.deadAfterMs,
    );
    this.#stream = new ReliableStream(this.options.windowBytes);
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#link = {
      sendData: (channel, data) =>
        this.#sendMessage(MessageType.ChannelData, channel, data),
      sendCredit: (channel, bytes) =>
        this.#sendMessage(MessageType.ChannelCredit, channel, u32(bytes)),
      sendEnd: (channel) =>
        this.#sendMessage(MessageType.ChannelEnd, channel, new Uint8Array()),
      finished: (channel) => this.#channels.delete(channel),
    };
  }

  /**
   * Runs the liveness checks while a pipe is attached, and only then: a
   * session without a client (detached, or not yet connected) wakes up for
   * nothing, so idle sessions cost no CPU. A new pipe is checked at once
   * (it owes a keepalive).
   */
  #runLiveness(on: boolean) {
    if (this.#liveness !== null) clearTimeout(this.#liveness);
    this.#liveness = null;
    this.#livenessAt = Infinity;
    if (on) this.#armLiveness(0);
  }

  /**
   * Data just went out: it must be answered within the suspect bound, so
   * an idle end whose timer sleeps through a long keepalive interval
   * re-arms it for that deadline (a client's 500 ms check is soon enough).
   */
  #watchForAnswer(checkNow: boolean) {
    if (this.#liveness === null) return;
    const wait = checkNow ? 0 : this.#timers.nextCheckInMs(this.#checkLimit());
    if (performance.now() + wait >= this.#livenessAt) return;
    clearTimeout(this.#liveness);
    this.#armLiveness(wait);
  }

  /** Longest wait between two checks of this end (see #armLiveness). */
  #checkLimit(): number {
    return this.role === "client" ? this.#timers.clientCheckMs() : Infinity;
  }

  /**
   * Arms the one liveness timer: in `delayMs`, else when the next verdict
   * can be due. A client checks at least every CLIENT_CHECK_MS while data
   * flows (CLIENT_IDLE_CHECK_MS once idle, and at once at the first data
   * after that), so a wake from sleep is noticed soon; a server, which has
   * no network to lose by sleeping, wakes for its keepalives and deadlines
   * only.
   */
  #armLiveness(delayMs?: number) {
    const wait = delayMs ?? this.#timers.nextCheckInMs(this.#checkLimit());
    this.#livenessAt = performance.now() + wait;
    this.#liveness = setTimeout(() => {
      this.#liveness = null;
      this.#livenessAt = Infinity;
      this.#checkLiveness();
      if (this.#pipe !== null && !this.#end) this.#armLiveness();
    }, wait);
  }

  /** Derives the keys and makes the session state of one end. */
  static async create(
    secret: SessionSecret,
    role: SessionRole,
    options: EternalConnectionOptions = {},
  ): Promise<EternalConnection> {
    const keys = await deriveSessionKeys(secret, role);
    return new EternalConnection(secret, role, keys, options);
  }

  /** The channel numbered `id`, made on first use by either end. */
  channel(id: number): Channel {
    let channel = this.#channels.get(id);
    if (!channel) {
      channel = new Channel(id, this.#link, this.options.channelWindowBytes);
      if (this.#end) channel.fail(new SessionClosedError(this.#end.reason));
      this.#channels.set(id, channel);
    }
    return channel;
  }

  /**
   * Channels currently held: made and not yet finished (both directions
   * ended, everything read). A finished channel is forgotten.
   */
  get channelCount(): number {
    return this.#channels.size;
  }

  /**
   * One line of the transport's state for a debug dump (`SIGUSR2`, see
   * docs/ARCHITECTURE.md): packets sealed, acknowledged by the peer and
   * written to the pipe; packets received and acks owed; bytes held in the
   * window; writers waiting for room; whether the write pump sleeps; then
   * each channel ({@linkcode Channel.describe}).
   */
  describe(): string {
    const s = this.#stream;
    const channels = [...this.#channels.values()].map((c) => c.describe());
    return `session ${this.#tag()}: ${this.#pipe ? "attached" : "detached"}` +
      ` sent=${s.nextSeq} acked=${s.acknowledged} written=${s.sendCursor}` +
      ` received=${s.received} ack-owed=${s.ackOwed}` +
      ` held=${s.heldBytes}/${s.windowBytes} room-waiters=${this.#ackWaiters.length}` +
      ` control-queued=${this.#controlOut.length}` +
      `${this.#end ? " ended" : ""}; ${channels.join("; ")}`;
  }

  /** Calls `listener` on every connect and disconnect. */
  onEvent(listener: (event: ConnectionEvent) => void) {
    this.#listeners.push(listener);
  }

  /** True while a pipe is attached. */
  get connected(): boolean {
    return this.#pipe !== null;
  }

  /** True once the session has ended. */
  get isClosed(): boolean {
    return this.#end !== null;
  }

  /** True once the session has ended or the peer has said goodbye. */
  get isEnding(): boolean {
    return this.#end !== null || this.#goodbye !== null;
  }

  /** Data packets received so far (what a resume tells the peer). */
  get receivedCount(): number {
    return this.#stream.received;
  }

  /** Bytes of sent data the peer has not acknowledged yet. */
  get unacknowledgedBytes(): number {
    return this.#stream.heldBytes;
  }

  /**
   * Decrypts what this end sent and the peer has not acknowledged: the
   * CHANNEL_DATA bodies still held for resending, per channel, in order.
   * Meant for a session that has ended (or is about to be retired), to hand
   * its undelivered bytes to a successor; on a live one it is a snapshot.
   *
   * @example
   * ```ts
   * connection.fail(new Error("client replaced"));
   * for (const [id, chunks] of await connection.unacknowledged()) {
   *   for (const chunk of chunks) await successor.channel(id).write(chunk);
   * }
   * ```
   */
  async unacknowledged(): Promise<Map<number, Uint8Array[]>> {
    const frames = this.#stream.heldFrames();
    const byChannel = new Map<number, Uint8Array[]>();
    for (const frame of frames) {
      // AES-GCM is symmetric: our own send key opens what we sealed.
      const plain = await openPacket(
        this.keys.send,
        FrameType.Data,
        frame.subarray(FRAME_HEADER_BYTES),
      );
      if (plain === null) throw new Error("a held packet does not open");
      const message = decodeMessage(plain);
      if (message.type !== MessageType.ChannelData) continue;
      const chunks = byChannel.get(message.channel) ?? [];
      chunks.push(message.body);
      byChannel.set(message.channel, chunks);
    }
    return byChannel;
  }

  /** @internal Numbers the next handshake attempt (client): 1, 2, 3… */
  nextAttempt(): number {
    if (this.#attemptCounter >= 0xffff_ffff) {
      throw new Error("handshake attempt numbers exhausted");
    }
    return ++this.#attemptCounter;
  }

  /** @internal The newest handshake attempt attached so far (0: none). */
  get attachedAttempt(): number {
    return this.#attachedAttempt;
  }

  /**
   * Drops the current pipe (if any) so no more packets from it are
   * counted; the client's redial loop then dials again.
   */
  detach(reason: string) {
    this.#generation++;
    const pipe = this.#pipe;
    if (!pipe) return;
    this.#pipe = null;
    this.#runLiveness(false);
    closeQuietly(pipe);
    this.#wakePump?.();
    this.#cancelAck();
    this.#wakeControlWriteWaiters();
    log.info(`session ${this.#tag()}: pipe dropped: ${reason}`);
    this.#emit({ type: "disconnected", reason });
    const waiters = this.#detachWaiters;
    this.#detachWaiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Acknowledges everything received so far, then drops the current pipe
   * once that ack is written to it (after `lingerMs` at the latest): for a
   * peer that said it is leaving, so that it learns its last message
   * arrived and need not dial again to resend it (PROTOCOL.md section 8).
   */
  async acknowledgeAndDetach(reason: string, lingerMs = 200): Promise<void> {
    const generation = this.#generation;
    if (this.#pipe === null) return;
    this.#cancelAck();
    await this.#sendControl().catch(() => {});
    const target = this.#controlQueued;
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      this.#wakeControlWriteWaiters();
    }, lingerMs);
    while (
      this.#controlWritten < target && generation === this.#generation &&
      !late
    ) {
      await new Promise<void>((resolve) =>
        this.#controlWriteWaiters.push(resolve)
      );
    }
    clearTimeout(timer);
    if (generation === this.#generation) this.detach(reason);
  }

  /**
   * Resolves once the peer has acknowledged everything sent so far (at
   * once if it has), or when the session ends.
   */
  allAcknowledged(): Promise<void> {
    return this.#waitAllAcknowledged();
  }

  /** Resolves when the current pipe is dropped (at once if none). */
  waitDetached(): Promise<void> {
    if (!this.#pipe || this.#end) return Promise.resolve();
    return new Promise((resolve) => this.#detachWaiters.push(resolve));
  }

  /**
   * @internal Checks that a peer that has received `count` packets can be
   * resumed; throws CannotResumeError when its count cannot be ours.
   */
  checkResume(count: number) {
    this.#stream.resumePoint(count);
  }

  /**
   * @internal Starts using an authenticated pipe in place of the current
   * one. `peerReceived` is how many of our packets the peer holds (it may
   * lag: it was sent before the swap); everything after it is resent.
   * Returns false, changing nothing, when the session has ended (the pipe
   * is closed) or a newer attempt is attached already (the caller decides).
   * Throws CannotResumeError when the peer claims packets never sent.
   */
  attach(
    pipe: BytePipe,
    frames: FrameReader,
    peerReceived: number,
    options: AttachOptions = {},
  ): boolean {
    if (this.#end) {
      closeQuietly(pipe);
      return false;
    }
    const attempt = options.attempt ?? this.#attachedAttempt + 1;
    if (attempt <= this.#attachedAttempt) return false;
    this.#stream.resumePoint(peerReceived); // throws before anything changes
    // Packets of the old pipe still being opened are dropped from here on
    // (generation): the peer resends them from the count it was told.
    this.detach("replaced by a newer connection");
    this.#attachedAttempt = attempt;
    const resumeFrom = this.#stream.resume(peerReceived);
    this.#wakeAckWaiters();
    const generation = this.#generation;
    this.#pipe = pipe;
    this.#timers.attached();
    this.#runLiveness(true);
    const resent = this.#stream.nextSeq - resumeFrom;
    log.info(
      `session ${this.#tag()}: pipe attached (attempt ${attempt}), resending ${resent} packets`,
    );
    this.#readLoop(pipe, frames, generation);
    this.#pump(pipe, generation, options.prelude);
    // Tell the peer at once what we hold, so its window frees promptly.
    this.#sendControl().catch(() => {});
    this.#emit({ type: "connected", resent });
    return true;
  }

  /**
   * Ends the session by agreement: tells the peer, waits (bounded) until it
   * acknowledged everything, then releases the pipe.
   */
  async close(reason = "closed", lingerMs = 2000): Promise<void> {
    if (this.#end) return;
    try {
      await this.#sendMessage(
        MessageType.SessionEnd,
        0,
        encodeText(reason),
      );
    } catch {
      // already failing: finish below.
    }
    // Woken by acknowledgements, not a poll: a session draining to an
    // absent client may linger for days and must cost nothing meanwhile.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#waitAllAcknowledged(),
      this.closed,
      new Promise((resolve) => {
        timer = setTimeout(resolve, Math.min(lingerMs, 2 ** 31 - 1));
      }),
    ]);
    clearTimeout(timer);
    this.#finish({ reason, byPeer: false });
  }

  /** Ends the session at once because of `error` (no goodbye to the peer). */
  fail(error: Error) {
    this.#finish({ reason: error.message, byPeer: false, error });
  }

  #finish(end: SessionEnd) {
    if (this.#end) return;
    end = this.#goodbye ?? end;
    this.#end = end;
    this.detach(end.reason);
    this.#runLiveness(false);
    const error = end.error ?? new SessionClosedError(end.reason);
    this.#failure = error;
    this.#wakeAckWaiters();
    for (const channel of this.#channels.values()) channel.fail(error);
    for (const wake of this.#detachWaiters) wake();
    this.#detachWaiters = [];
    this.#resolveClosed(end);
  }

  /** Seals a message into the backed writer; resolves once it is held. */
  #sendMessage(type: number, channel: number, body: Uint8Array): Promise<void> {
    // Sealing is serialized so sequence numbers, nonces and the order of
    // frames in the writer always agree.
    const run = this.#sendChain.then(async () => {
      if (this.#end) throw new SessionClosedError(this.#end.reason);
      const frameLength = FRAME_HEADER_BYTES + PACKET_HEADER_BYTES +
        MESSAGE_HEADER_BYTES + body.length + TAG_BYTES;
      await this.#waitForRoom(frameLength);
      const seq = this.#stream.nextSeq;
      const ack = this.#stream.received;
      const frame = await sealPacket(
        this.keys.send,
        FrameType.Data,
        seq,
        [encodeMessageHeader({ ack, type, channel }), body],
      );
      // Held if and only if this resolves: a message the session did not
      // take is never half-sent, and unacknowledged() finds every one it did.
      const end = this.#end as SessionEnd | null; // may have come meanwhile
      if (end) throw new SessionClosedError(end.reason);
      this.#stream.hold(frame, ack);
      this.#cancelAck();
      this.#wakePump?.();
    });
    this.#sendChain = run.catch(() => {});
    return run;
  }

  /**
   * Seals and queues an ack/keepalive (never resent, own nonce space). An
   * `answer` to the peer's keepalive takes an odd counter, everything else
   * an even one (skipping one when needed): the peer never answers an
   * answer (PROTOCOL.md section 7).
   */
  #sendControl(answer = false): Promise<void> {
    const run = this.#controlChain.then(async () => {
      if (!this.#pipe) return;
      let counter = this.#controlCounter;
      if ((counter % 2 === 1) !== answer) counter++;
      this.#controlCounter = counter + 1;
      const ack = this.#stream.received;
      this.#controlOut.push(
        await sealPacket(this.keys.send, FrameType.Control, counter, u64(ack)),
      );
      this.#controlQueued++;
      this.#stream.ackSent(ack);
      this.#wakePump?.();
    });
    this.#controlChain = run.catch(() => {});
    return run;
  }

  /**
   * Writes `prelude` (if any), then queued control frames and held frames
   * from the send cursor, for as long as `pipe` is the current one.
   */
  async #pump(pipe: BytePipe, generation: number, prelude?: Uint8Array) {
    try {
      while (generation === this.#generation) {
        const batch: Uint8Array[] = [];
        let size = 0;
        if (prelude) {
          batch.push(prelude);
          size += prelude.length;
          prelude = undefined;
        }
        let controls = 0;
        while (this.#controlOut.length > 0) {
          const frame = this.#controlOut.shift()!;
          batch.push(frame);
          size += frame.length;
          controls++;
        }
        let data = false;
        while (size < COALESCE_BYTES) {
          const frame = this.#stream.nextFrame();
          if (frame === null) break;
          batch.push(frame);
          size += frame.length;
          data = true;
        }
        if (batch.length === 0) {
          // Never cleared after waking: a replaced pump resuming late must
          // not erase the new pump's resolver (calling a stale one is a no-op).
          await new Promise<void>((resolve) => this.#wakePump = resolve);
          continue;
        }
        // The frames carry our ack (sealed into each): a standalone ack's
        // timer would only wake this process for nothing (on a host, once
        // per keystroke: the echo already acked it).
        if (this.#stream.ackOwed === 0) this.#cancelAck();
        const afterIdle = this.#timers.sent(data);
        if (data) this.#watchForAnswer(afterIdle);
        // Small frames (keystrokes, acks) are joined into one write; big
        // ones go as they are, since copying them costs more than a syscall.
        if (batch.length === 1 || size > COALESCE_BYTES) {
          for (const frame of batch) await writeAll(pipe, frame);
        } else {
          await writeAll(pipe, concatBytes(batch));
        }
        if (controls > 0) {
          this.#controlWritten += controls;
          this.#wakeControlWriteWaiters();
        }
      }
    } catch (error) {
      this.#lost(generation, `write failed: ${errorMessage(error)}`);
    }
  }

  async #readLoop(pipe: BytePipe, frames: FrameReader, generation: number) {
    try {
      while (true) {
        const body = await frames.next();
        if (generation !== this.#generation) return;
        if (body === null) throw new Error("peer closed the connection");
        const answer = this.#timers.received(
          body[0] === FrameType.Data
            ? "data"
            : packetCounter(body) % 2 === 1
            ? "answer"
            : "control",
        );
        if (body[0] === FrameType.Data) {
          await this.#receiveData(body, generation);
        } else if (body[0] === FrameType.Control) {
          await this.#receiveControl(body, generation);
          // The peer's keepalive, found with nothing owed: answered at
          // once, so its end may back off its interval (timers.ts).
          if (answer) this.#sendControl(true).catch(() => {});
        } else {
          throw new ProtocolError(`unexpected frame type ${body[0]}`);
        }
        if (generation !== this.#generation) return;
      }
    } catch (error) {
      if (error instanceof ProtocolError || error instanceof FrameError) {
        log.warn(`session ${this.#tag()}: refused frame: ${error.message}`);
      }
      this.#lost(generation, errorMessage(error));
    } finally {
      if (generation !== this.#generation) closeQuietly(pipe);
    }
  }

  async #receiveData(body: Uint8Array, generation: number) {
    const seq = packetCounter(body);
    const verdict = this.#stream.classify(seq);
    if (verdict === "duplicate") return; // a resend or replay: never twice
    if (verdict === "gap") {
      throw new ProtocolError(
        `packet ${seq} arrived but ${this.#stream.received} was expected`,
      );
    }
    const plain = await openPacket(this.keys.receive, FrameType.Data, body);
    if (plain === null) {
      throw new ProtocolError(`packet ${seq} failed authentication`);
    }
    // The pipe may have been replaced while decrypting: a newer pipe owns
    // the count now, so this packet must not be counted here.
    if (generation !== this.#generation) return;
    const message = decodeMessage(plain);
    const acked = this.#stream.acknowledged;
    if (!this.#stream.receive(seq, message.ack)) return; // counted meanwhile
    this.#ackProgress(acked);
    this.#wakeAckWaiters();
    this.#dispatch(message.type, message.channel, message.body);
    this.#scheduleAckSoon();
  }

  async #receiveControl(body: Uint8Array, generation: number) {
    const counter = packetCounter(body);
    if (!this.#controlFilter.isFresh(counter)) return; // replayed
    const plain = await openPacket(this.keys.receive, FrameType.Control, body);
    if (plain === null || plain.length !== 8) {
      throw new ProtocolError(`control ${counter} failed authentication`);
    }
    if (generation !== this.#generation) return;
    this.#controlFilter.record(counter);
    const acked = this.#stream.acknowledged;
    this.#stream.acknowledge(
      readU64(new DataView(plain.buffer, plain.byteOffset, 8), 0),
    );
    this.#ackProgress(acked);
    this.#wakeAckWaiters();
  }

  /**
   * Resolves once a frame of `size` bytes fits in the window (writers wait
   * here: nothing is dropped); rejects once the session has ended.
   */
  async #waitForRoom(size: number) {
    while (!this.#stream.hasRoom(size)) {
      if (this.#failure) throw this.#failure;
      await new Promise<void>((resolve) => this.#ackWaiters.push(resolve));
    }
    if (this.#failure) throw this.#failure;
  }

  /** Resolves once the peer acknowledged everything held, or at the end. */
  async #waitAllAcknowledged() {
    while (this.#stream.heldBytes > 0 && !this.#failure) {
      await new Promise<void>((resolve) => this.#ackWaiters.push(resolve));
    }
  }

  /** Tells the liveness policy when an ack moved the mark past `before`. */
  #ackProgress(before: number) {
    const now = this.#stream.acknowledged;
    if (now > before) this.#timers.acknowledged(now >= this.#stream.sendCursor);
  }

  #wakeControlWriteWaiters() {
    const waiters = this.#controlWriteWaiters;
    this.#controlWriteWaiters = [];
    for (const wake of waiters) wake();
  }

  #wakeAckWaiters() {
    const waiters = this.#ackWaiters;
    this.#ackWaiters = [];
    for (const wake of waiters) wake();
  }

  #dispatch(type: number, channelId: number, body: Uint8Array) {
    switch (type) {
      case MessageType.ChannelData:
        this.channel(channelId).deliver(body);
        return;
      case MessageType.ChannelCredit:
        // Credit may trail a channel's end (the peer read our last bytes
        // after we finished): it never makes a channel, or a finished one
        // would come back and stay forever.
        this.#channels.get(channelId)?.grant(readU32Body(body));
        return;
      case MessageType.ChannelEnd:
        this.channel(channelId).deliverEnd();
        return;
      case MessageType.SessionEnd: {
        const reason = decodeText(body) || "closed by peer";
        this.#goodbye = { reason, byPeer: true };
        // Acknowledge the goodbye before releasing the pipe.
        this.#sendControl().finally(() =>
          setTimeout(() => this.#finish({ reason, byPeer: true }), 50)
        );
        return;
      }
      default:
        log.warn(`session ${this.#tag()}: ignored message type ${type}`);
    }
  }

  /**
   * {@linkcode #scheduleAck}, a few microtasks from now: arming a timer
   * costs ~0.06 ms the first time after the process slept (every
   * keystroke), and done at once it sat between a packet's arrival and its
   * reader. The reader of what was just delivered (a keystroke going into
   * the pty, an echo going onto the screen) writes it within a few
   * microtasks; the ack decision comes after that. Only timing depends on
   * this order, never correctness: an ack decided later is still correct.
   */
  #scheduleAckSoon() {
    if (this.#ackSoon) return;
    this.#ackSoon = true;
    const decide = () => {
      this.#ackSoon = false;
      this.#scheduleAck();
    };
    let later = Promise.resolve();
    for (let i = 0; i < ACK_DECISION_TICKS; i++) later = later.then();
    later.then(decide);
  }

  #scheduleAck() {
    // Nothing owed: what we sent since carries the ack (on a host, a
    // keystroke's echo, sealed before this decision runs). A timer armed
    // here only to be cancelled by the pump cost ~40 µs per keystroke
    // between the echo's seal and its write.
    if (this.#stream.ackOwed === 0) return;
    if (this.#stream.ackOwed >= ACK_EVERY_PACKETS) {
      // An armed timer stays: when it fires it acks what came since, or
      // finds nothing owed. Cancelled here, the next packet would arm a
      // new one: the timers made so during a bulk stream (node's, some
      // tens of µs each here) were 1.4 % of a client's CPU.
      this.#sendControl().catch(() => {});
    } else if (this.#ackTimer === null) {
      this.#ackTimer = setTimeout(() => {
        this.#ackTimer = null;
        if (this.#stream.ackOwed > 0) {
          this.#sendControl().catch(() => {});
        }
      }, ACK_DELAY_MS);
    }
  }

  #cancelAck() {
    if (this.#ackTimer !== null) clearTimeout(this.#ackTimer);
    this.#ackTimer = null;
  }

  #checkLiveness() {
    const verdict = this.#timers.tick(this.#pipe !== null);
    if (verdict.action === "dead") this.detach(verdict.reason);
    else if (verdict.action === "keepalive") {
      this.#sendControl().catch(() => {});
    }
  }

  #lost(generation: number, reason: string) {
    if (generation !== this.#generation) return;
    this.detach(reason);
  }

  #emit(event: ConnectionEvent) {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        log.error(`event listener failed: ${errorMessage(error)}`);
      }
    }
  }

  #tag(): string {
    let hex = "";
    for (const byte of this.sessionId.subarray(0, 4)) {
      hex += byte.toString(16).padStart(2, "0");
    }
    return `${hex}/${this.role}`;
  }
}

export { ChannelClosedError };
