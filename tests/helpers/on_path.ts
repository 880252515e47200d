/**
 * What a slow path or an attacker on the path can do to one client
 * connection, for handshake tests: put bytes in front of what the client
 * reads (a forged REFUSE), or hold either direction for a while (a slow
 * attempt that finishes after a newer one).
 *
 * @module
 */

import type { BytePipe } from "../../src/transport/mod.ts";

/** A gate that holds callers until opened. */
class Gate {
  #open = true;
  #waiters: Array<() => void> = [];

  get isOpen(): boolean {
    return this.#open;
  }

  close() {
    this.#open = false;
  }

  open() {
    this.#open = true;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  async pass() {
    while (!this.#open) {
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
}

/**
 * Wraps a real socket; passes everything through unless told otherwise.
 *
 * @example
 * ```ts
 * const pipe = new OnPathPipe(await Deno.connect({ port }));
 * pipe.injectRead(encodeFrame(encodeRefuse({ code: 1, reason: "no" })));
 * ```
 */
export class OnPathPipe implements BytePipe {
  #inner: Deno.Conn;
  #injected: Uint8Array[] = [];
  #reads = new Gate();
  #writes = new Gate();
  /** Called with every write the client makes, before it goes out. */
  onWrite?: (data: Uint8Array) => void;
  /** Resolves when a write first waits at the closed write gate. */
  readonly writeHeld: Promise<void>;
  #signalWriteHeld!: () => void;

  /** Wraps `inner`. */
  constructor(inner: Deno.Conn) {
    this.#inner = inner;
    this.writeHeld = new Promise((resolve) => this.#signalWriteHeld = resolve);
  }

  /** Bytes the client will read before anything the server sends. */
  injectRead(bytes: Uint8Array) {
    this.#injected.push(bytes.slice());
  }

  /** Holds what the client writes (it stays with us) until released. */
  holdWrites() {
    this.#writes.close();
  }

  /** Holds what the server sends (it waits in the socket) until released. */
  holdReads() {
    this.#reads.close();
  }

  /** Lets both directions flow again. */
  release() {
    this.#writes.open();
    this.#reads.open();
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    if (this.#injected.length > 0) {
      const next = this.#injected[0];
      const n = Math.min(next.length, buffer.length);
      buffer.set(next.subarray(0, n));
      if (n === next.length) this.#injected.shift();
      else this.#injected[0] = next.subarray(n);
      return n;
    }
    await this.#reads.pass();
    return await this.#inner.read(buffer);
  }

  async write(data: Uint8Array): Promise<number> {
    this.onWrite?.(data);
    if (!this.#writes.isOpen) this.#signalWriteHeld();
    await this.#writes.pass();
    return await this.#inner.write(data);
  }

  /** Closes the socket; closing twice is fine. */
  close() {
    try {
      this.#inner.close();
    } catch {
      // already closed
    }
  }
}
