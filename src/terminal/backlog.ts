/**
 * OutputBacklog: what a session's program printed and its client has not
 * taken yet. A reader loop keeps pulling from the program while the backlog
 * is below its current capacity — small while a client is connected (so
 * Ctrl-C under a flood quiets the screen at once), large while it is away
 * (so the program keeps running) — and only past that capacity does the
 * program block. Nothing is ever dropped.
 *
 * A sender takes chunks with `peek` and removes each with `commit` only
 * once the transport holds it, so a chunk is never lost or sent twice
 * when the connection under the sender is replaced.
 *
 * @module
 */

import { AbortLinks } from "../abort_links.ts";
import { MAX_CHUNK_BYTES } from "../transport/mod.ts";
import type { OutputSource } from "./program.ts";

/** Buffered program output between the program and the transport. */
export class OutputBacklog {
  #source: OutputSource;
  #capacity: () => number;
  #chunks: Uint8Array[] = [];
  #bytes = 0;
  #eof = false;
  #lastReadAt = performance.now();
  #waitingForRoom = false;
  #roomWaiter: (() => void) | null = null;
  #dataWaiters: Array<() => void> = [];
  // A sender's abort signal wakes the data waiters (each checks its own).
  #abortLinks = new AbortLinks(() => this.#wakeData());
  // The head was handed out by peek and is not committed yet: a sender may
  // be giving it to the transport right now, so it must stay.
  #headLent = false;
  /** Resolves when the source has ended and the reader loop stopped. */
  readonly sourceEnded: Promise<void>;

  /** Starts reading `source` while the backlog is below `capacity()`. */
  constructor(source: OutputSource, capacity: () => number) {
    this.#source = source;
    this.#capacity = capacity;
    this.sourceEnded = this.#readLoop();
  }

  /** Bytes waiting to be sent. */
  get bytes(): number {
    return this.#bytes;
  }

  /** True once the source ended (the program's output is complete). */
  get sourceDone(): boolean {
    return this.#eof;
  }

  /** True while the reader waits for room (the program is blocked). */
  get full(): boolean {
    return this.#waitingForRoom;
  }

  /** When output last arrived (performance.now()). */
  get lastReadAt(): number {
    return this.#lastReadAt;
  }

  /** Call when the capacity may have grown, so the reader goes on. */
  recheckCapacity() {
    const wake = this.#roomWaiter;
    this.#roomWaiter = null;
    wake?.();
  }

  /**
   * The next chunk to send (at most MAX_CHUNK_BYTES), without removing it;
   * null once the source ended and everything was committed. Resolves
   * undefined when `signal` aborts first.
   */
  async peek(signal?: AbortSignal): Promise<Uint8Array | null | undefined> {
    while (this.#chunks.length === 0) {
      if (this.#eof) return null;
      if (signal?.aborted) return undefined;
      if (signal) this.#abortLinks.link(signal);
      await new Promise<void>((resolve) => this.#dataWaiters.push(resolve));
    }
    if (signal?.aborted) return undefined;
    const head = this.#chunks[0];
    if (head.length > MAX_CHUNK_BYTES) {
      // Split in place so peek and commit agree on the chunk.
      this.#chunks.splice(
        0,
        1,
        head.subarray(0, MAX_CHUNK_BYTES),
        head.subarray(MAX_CHUNK_BYTES),
      );
    }
    this.#headLent = true;
    return this.#chunks[0];
  }

  /** Removes `chunk`, which `peek` returned and the transport now holds. */
  commit(chunk: Uint8Array) {
    if (this.#chunks[0] !== chunk) {
      throw new Error("backlog: commit of a chunk that is not the head");
    }
    this.#chunks.shift();
    this.#bytes -= chunk.length;
    this.#headLent = false;
    this.recheckCapacity();
  }

  /**
   * Puts `chunks` back in front (output a retired connection sent but its
   * client never acknowledged).
   */
  unshift(chunks: Uint8Array[]) {
    if (chunks.length === 0) return;
    this.#headLent = false;
    this.#chunks.unshift(...chunks);
    for (const chunk of chunks) this.#bytes += chunk.length;
    this.#wakeData();
  }

  /**
   * Replaces every chunk no sender holds yet (all but a head that `peek`
   * handed out) with `chunks` (`--resume screen`: a snapshot instead of
   * the missed bytes). Returns how many bytes were dropped.
   */
  replacePending(chunks: Uint8Array[]): number {
    const kept = this.#headLent ? this.#chunks.slice(0, 1) : [];
    let dropped = 0;
    for (const chunk of this.#chunks.slice(kept.length)) {
      dropped += chunk.length;
    }
    this.#chunks = [...kept, ...chunks];
    this.#bytes = this.#chunks.reduce((n, chunk) => n + chunk.length, 0);
    this.#wakeData();
    this.recheckCapacity();
    return dropped;
  }

  /**
   * For a debug dump: bytes and chunks waiting to be sent, whether the
   * head is lent to a sender, whether reading waits for room or has ended,
   * and how long ago the source last gave anything.
   */
  describe(): string {
    const ago = (performance.now() - this.#lastReadAt).toFixed(0);
    return `backlog=${this.#bytes}/${this.#chunks.length}` +
      `${this.#headLent ? " head-lent" : ""}` +
      `${this.#waitingForRoom ? " full" : ""}${this.#eof ? " eof" : ""}` +
      ` senders-waiting=${this.#dataWaiters.length} last-read=${ago}ms-ago`;
  }

  async #readLoop() {
    try {
      while (true) {
        while (this.#bytes >= this.#capacity()) {
          this.#waitingForRoom = true;
          await new Promise<void>((resolve) => this.#roomWaiter = resolve);
          this.#waitingForRoom = false;
        }
        const chunk = await this.#source.read();
        if (chunk === null) break;
        this.#lastReadAt = performance.now();
        if (chunk.length === 0) continue;
        this.#chunks.push(chunk);
        this.#bytes += chunk.length;
        this.#wakeData();
      }
    } finally {
      this.#eof = true;
      this.#waitingForRoom = false;
      this.#wakeData();
    }
  }

  #wakeData() {
    const waiters = this.#dataWaiters;
    this.#dataWaiters = [];
    for (const wake of waiters) wake();
  }
}
