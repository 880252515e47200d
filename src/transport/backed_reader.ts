/**
 * BackedReader: the receiving half of Eternal TCP. It counts the data
 * packets delivered in order; that count is what a reconnect tells the peer
 * so it resends exactly the gap. A packet below the count is a duplicate (a
 * resend or a replay) and is dropped; one above it cannot happen on an
 * ordered pipe and means the connection is broken.
 *
 * @module
 */

/** What to do with an arriving data packet. */
export type PacketVerdict = "deliver" | "duplicate" | "gap";

/**
 * Counts in-order data packets.
 *
 * @example
 * ```ts
 * const reader = new BackedReader();
 * if (reader.classify(seq) === "deliver") { deliver(packet); reader.advance(); }
 * ```
 */
export class BackedReader {
  #received = 0;

  /** Packets delivered so far: the next expected sequence number. */
  get received(): number {
    return this.#received;
  }

  /** Says whether packet `seq` is the next one, an old one or a gap. */
  classify(seq: number): PacketVerdict {
    if (seq === this.#received) return "deliver";
    return seq < this.#received ? "duplicate" : "gap";
  }

  /** Records that the expected packet was authenticated and delivered. */
  advance() {
    this.#received++;
  }
}
