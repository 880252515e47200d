/**
 * SentTail: the last output a session handed to one channel of its current
 * connection, counted from the connection's start. A client that leaves on
 * purpose says how many of the channel's bytes its terminal really took
 * (a detach's `written`, docs/PROTOCOL.md section 8); what it received but
 * never showed is then still here, and the next client (attach) is sent
 * everything after that point, not only what the transport had left
 * unacknowledged.
 *
 * It keeps references to chunks the transport holds anyway while they are
 * unacknowledged; only up to its capacity outlives that.
 *
 * @module
 */

/**
 * The tail of one channel's sent output.
 *
 * @example
 * ```ts
 * const tail = new SentTail(1024);
 * tail.record(new Uint8Array([1, 2, 3]));
 * tail.record(new Uint8Array([4, 5]));
 * tail.since(2); // [Uint8Array [3], Uint8Array [4, 5]]
 * ```
 */
export class SentTail {
  #capacity: number;
  #chunks: Uint8Array[] = [];
  #held = 0;
  #total = 0;

  /** Keeps at least the last `capacity` bytes (whole chunks). */
  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** Bytes sent on the channel so far. */
  get total(): number {
    return this.#total;
  }

  /** Notes `chunk` as sent (after everything recorded before it). */
  record(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.#chunks.push(chunk);
    this.#held += chunk.length;
    this.#total += chunk.length;
    while (this.#held - this.#chunks[0].length >= this.#capacity) {
      this.#held -= this.#chunks.shift()!.length;
    }
  }

  /**
   * What was sent from byte `offset` on, in order; null when that is not
   * known: `offset` is past what was sent, or older than what is kept.
   */
  since(offset: number): Uint8Array[] | null {
    if (!Number.isSafeInteger(offset) || offset > this.#total) return null;
    let at = this.#total - this.#held;
    if (offset < at) return null;
    const out: Uint8Array[] = [];
    for (const chunk of this.#chunks) {
      const end = at + chunk.length;
      if (end > offset) out.push(chunk.subarray(Math.max(0, offset - at)));
      at = end;
    }
    return out;
  }
}
