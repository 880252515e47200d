/**
 * A channel: one of several independent byte streams multiplexed over an
 * eternal connection (terminal bytes, control, later each tunnel). Each
 * direction of a channel has its own credit window, so a reader that stops
 * reading one channel stalls only that channel, never its neighbours.
 *
 * @module
 */

/** Default bytes a sender may have outstanding on one channel. */
export const DEFAULT_CHANNEL_WINDOW_BYTES = 512 * 1024;

/** Largest body of one channel data message. */
export const MAX_CHUNK_BYTES = 64 * 1024;

/** What a channel needs from the connection under it. */
export interface ChannelLink {
  /** Sends channel bytes (at most MAX_CHUNK_BYTES). */
  sendData(channel: number, data: Uint8Array): Promise<void>;
  /** Tells the peer it may send `bytes` more on the channel. */
  sendCredit(channel: number, bytes: number): Promise<void>;
  /** Tells the peer no more bytes follow on the channel. */
  sendEnd(channel: number): Promise<void>;
  /**
   * Both directions ended and every byte was read: the connection may
   * forget the channel (its id is never used again by a well-behaved peer).
   */
  finished(channel: number): void;
}

/** The session ended: the channel can neither read nor write. */
export class ChannelClosedError extends Error {
  override name = "ChannelClosedError";
}

/**
 * One multiplexed byte stream.
 *
 * @example
 * ```ts
 * const terminal = connection.channel(1);
 * await terminal.write(new TextEncoder().encode("ls\n"));
 * const output = await terminal.read(); // null once the peer ends it
 * ```
 */
export class Channel {
  /** The channel's number, agreed by both ends. */
  readonly id: number;
  #link: ChannelLink;
  #window: number;
  #inbox: Uint8Array[] = [];
  #ended = false;
  #readWaiter: (() => void) | null = null;
  #credit: number;
  #creditWaiter: (() => void) | null = null;
  #consumed = 0;
  #closed: Error | null = null;
  #writeEnded = false;
  #writeChain: Promise<void> = Promise.resolve();
  #chunkLimit: number;
  #finished = false;

  /** Made by the connection; use `connection.channel(id)`. */
  constructor(id: number, link: ChannelLink, windowBytes: number) {
    this.id = id;
    this.#link = link;
    this.#window = windowBytes;
    this.#credit = windowBytes;
    // The receiver grants credit in half-window batches, so just under
    // half may stay ungranted for good: a message waiting for more than
    // half the window could wait forever. Half is safe.
    this.#chunkLimit = Math.max(
      1,
      Math.min(MAX_CHUNK_BYTES, Math.floor(windowBytes / 2)),
    );
  }

  /**
   * Resolves with the next bytes from the peer, or null once the peer ended
   * the channel (or the session ended) and everything was read.
   */
  async read(): Promise<Uint8Array | null> {
    while (this.#inbox.length === 0) {
      if (this.#ended || this.#closed) return null;
      await new Promise<void>((resolve) => this.#readWaiter = resolve);
    }
    const chunk = this.#inbox.shift()!;
    this.#consumed += chunk.length;
    this.#checkFinished();
    // Grant credit in batches: one credit message per half window. Each
    // grant is a sealed packet the sender must open and acknowledge; at a
    // quarter window a bulk stream spent measurably more CPU on both ends
    // (issue #10: server 0.74 -> 0.65 s per 100 MB) for no throughput,
    // since the half still in flight keeps the sender busy meanwhile.
    if (this.#consumed >= this.#window / 2 && !this.#closed) {
      const grant = this.#consumed;
      this.#consumed = 0;
      this.#link.sendCredit(this.id, grant).catch(() => {});
    }
    return chunk;
  }

  /**
   * Sends all of `data`, waiting for channel credit and room in the
   * connection's window. Writes on one channel keep their order.
   *
   * A write of at most {@link MAX_CHUNK_BYTES} (and at most half the
   * channel window) is atomic: it waits until the whole of it fits the
   * credit, goes out as one message, and resolves if and only if that
   * message is held by the connection (delivered, or kept for resending
   * and for the connection's `unacknowledged()`). If the session ends
   * first it rejects and none of it was sent. A larger write goes out as
   * several such messages; if it rejects, a prefix may have been sent.
   */
  write(data: Uint8Array): Promise<void> {
    const run = this.#writeChain.then(() => this.#writeNow(data));
    this.#writeChain = run.catch(() => {});
    return run;
  }

  async #writeNow(data: Uint8Array) {
    if (this.#writeEnded) {
      throw new ChannelClosedError("channel write side ended");
    }
    let offset = 0;
    while (offset < data.length) {
      // Never split a message to fit the credit: wait for all of it.
      const size = Math.min(data.length - offset, this.#chunkLimit);
      while (this.#credit < size) {
        if (this.#closed) throw this.#closed;
        await new Promise<void>((resolve) => this.#creditWaiter = resolve);
      }
      if (this.#closed) throw this.#closed;
      this.#credit -= size;
      await this.#link.sendData(this.id, data.subarray(offset, offset + size));
      offset += size;
    }
  }

  /** Ends this side's writing; the peer's read() returns null after the data. */
  closeWrite(): Promise<void> {
    const run = this.#writeChain.then(async () => {
      if (this.#writeEnded || this.#closed) return;
      this.#writeEnded = true;
      await this.#link.sendEnd(this.id);
      this.#checkFinished();
    });
    this.#writeChain = run.catch(() => {});
    return run;
  }

  /** Bytes this side may still send before the peer grants more. */
  get credit(): number {
    return this.#credit;
  }

  /** Bytes received but not yet read. */
  get pendingBytes(): number {
    let total = 0;
    for (const chunk of this.#inbox) total += chunk.length;
    return total;
  }

  /**
   * One line of this channel's state for a debug dump (`SIGUSR2`, see
   * docs/ARCHITECTURE.md): credit left, bytes received and not read,
   * read credit not yet granted back, and who waits.
   */
  describe(): string {
    const flags = [
      this.#readWaiter ? " reader-waits" : "",
      this.#creditWaiter ? " writer-waits-credit" : "",
      this.#ended ? " ended" : "",
      this.#writeEnded ? " write-ended" : "",
      this.#closed ? " closed" : "",
    ].join("");
    return `ch${this.id} credit=${this.#credit} unread=${this.pendingBytes}/${this.#inbox.length} ungranted=${this.#consumed}${flags}`;
  }

  /** @internal Called by the connection with bytes from the peer. */
  deliver(data: Uint8Array) {
    if (this.#ended) return;
    this.#inbox.push(data);
    this.#wakeReader();
  }

  /** @internal Called when the peer grants more credit. */
  grant(bytes: number) {
    this.#credit += bytes;
    const wake = this.#creditWaiter;
    this.#creditWaiter = null;
    wake?.();
  }

  /** @internal Called when the peer ends the channel. */
  deliverEnd() {
    this.#ended = true;
    this.#wakeReader();
    this.#checkFinished();
  }

  /** True once both directions ended and every received byte was read. */
  get finished(): boolean {
    return this.#finished;
  }

  // A channel whose two directions are over holds nothing worth keeping:
  // tell the connection, so thousands of short tunnel connections do not
  // pile up in its table.
  #checkFinished() {
    if (
      this.#finished || !this.#ended || !this.#writeEnded ||
      this.#inbox.length > 0
    ) return;
    this.#finished = true;
    this.#link.finished(this.id);
  }

  /** @internal Called when the session ends. */
  fail(reason: Error) {
    if (this.#closed) return;
    this.#closed = reason;
    this.#wakeReader();
    this.grant(0);
  }

  #wakeReader() {
    const wake = this.#readWaiter;
    this.#readWaiter = null;
    wake?.();
  }
}
