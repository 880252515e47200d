/**
 * BackedWriter: the sending half of Eternal TCP. It keeps every sealed data
 * frame until the peer acknowledges it, so a reconnect can resend exactly
 * what the peer is missing. What it holds is bounded by a window that is
 * also the flow-control limit: a frame is taken only while there is room,
 * so memory never grows past the window, connected or not. Pure state: the
 * connection makes its writers wait (nothing is dropped) until an
 * acknowledgement frees room.
 *
 * @module
 */

/** The peer asked to resume from data we no longer hold. */
export class CannotResumeError extends Error {
  override name = "CannotResumeError";
}

/** Default bytes of unacknowledged frames a writer may hold. */
export const DEFAULT_WINDOW_BYTES = 1024 * 1024;

/**
 * Holds sealed frames by sequence number until acknowledged.
 *
 * @example
 * ```ts
 * const writer = new BackedWriter(1 << 20);
 * if (writer.hasRoom(frame.length)) {
 *   const seq = writer.push(frame);
 *   writer.acknowledge(seq + 1); // the peer has it: memory is freed
 * }
 * ```
 */
export class BackedWriter {
  /** Bytes of held frames beyond which no further frame is taken. */
  readonly windowBytes: number;
  // Acknowledged slots are cleared at once so their memory is freed; the
  // array itself is compacted now and then.
  #frames: Array<Uint8Array | undefined> = [];
  #head = 0;
  #base = 0;
  #bytes = 0;

  /** Makes a writer holding at most `windowBytes` unacknowledged bytes. */
  constructor(windowBytes: number = DEFAULT_WINDOW_BYTES) {
    this.windowBytes = windowBytes;
  }

  /** Sequence number the next pushed frame gets. */
  get nextSeq(): number {
    return this.#base + this.#frames.length - this.#head;
  }

  /** Lowest sequence number still held (everything below is acknowledged). */
  get acknowledged(): number {
    return this.#base;
  }

  /** Bytes currently held for resending. */
  get bufferedBytes(): number {
    return this.#bytes;
  }

  /**
   * True if a frame of `size` bytes fits in the window now. An empty writer
   * always has room, so a frame larger than the window cannot stall.
   */
  hasRoom(size: number): boolean {
    return this.#bytes === 0 || this.#bytes + size <= this.windowBytes;
  }

  /**
   * Stores a sealed frame and returns its sequence number. Throws
   * RangeError if it does not fit ({@link hasRoom}): the window is a bound,
   * not a hint.
   */
  push(frame: Uint8Array): number {
    if (!this.hasRoom(frame.length)) {
      throw new RangeError(
        `a frame of ${frame.length} bytes does not fit: ${this.#bytes} of ${this.windowBytes} held`,
      );
    }
    const seq = this.nextSeq;
    this.#frames.push(frame);
    this.#bytes += frame.length;
    return seq;
  }

  /** The frame with sequence number `seq`, which must still be held. */
  frameAt(seq: number): Uint8Array {
    if (seq < this.#base || seq >= this.nextSeq) {
      throw new RangeError(`frame ${seq} is not held`);
    }
    return this.#frames[this.#head + seq - this.#base]!;
  }

  /**
   * Records that the peer has every frame below `count`, freeing them.
   * Returns false (and changes nothing) if `count` is beyond what was sent.
   */
  acknowledge(count: number): boolean {
    if (count > this.nextSeq) return false;
    while (this.#base < count) {
      this.#bytes -= this.#frames[this.#head]!.length;
      this.#frames[this.#head] = undefined;
      this.#head++;
      this.#base++;
    }
    // Compact now and then so the array does not grow forever.
    if (this.#head > 1024 && this.#head * 2 > this.#frames.length) {
      this.#frames = this.#frames.slice(this.#head);
      this.#head = 0;
    }
    return true;
  }

  /**
   * Where to resume sending for a peer that says it has received `count`
   * frames: from `count`, or from the acknowledged mark if that is higher.
   * A count below the mark is stale, not lost: the peer acknowledged more
   * since (an older reconnect attempt can finish after a newer one), and
   * everything from the mark on is still held. Throws CannotResumeError if
   * the peer claims frames that were never sent: its state cannot match.
   */
  resumePoint(count: number): number {
    if (count > this.nextSeq) {
      throw new CannotResumeError(
        `peer claims ${count} packets but only ${this.nextSeq} were sent`,
      );
    }
    return Math.max(count, this.#base);
  }
}
