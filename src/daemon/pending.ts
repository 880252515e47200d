/**
 * Caps on connections that have not yet said which session they are for:
 * the only state an unauthenticated peer can make the daemon hold. When a
 * cap is reached the oldest pending connection (of that source, or of all)
 * is dropped for the new one, rather than the new one refused: an honest
 * client's hello arrives one round trip after its connect, so it is almost
 * never the oldest, while connections that never speak age out first. A
 * flood of silent connections therefore cannot keep real clients out.
 *
 * @module
 */

import { formatIp, type PeerAddress } from "../platform/socket.ts";

/**
 * Most pending connections at once, from all sources. A hello comes one
 * round trip after the connect, so even a busy server has a handful
 * pending; 256 leaves room for a burst of reconnecting clients (a network
 * that came back) while bounding what silent peers hold: 256 descriptors
 * (a quarter of the common 1024 limit) and 256 × 54 bytes.
 */
export const MAX_PENDING = 256;

/**
 * Most pending connections from one source (an IPv4 address, or an IPv6
 * /64, what one host usually holds). Clients behind one NAT share an
 * address, and 32 handshakes at the same instant is more than an office
 * reconnecting after an outage makes; it keeps one source to an eighth of
 * {@link MAX_PENDING}.
 */
export const MAX_PENDING_PER_SOURCE = 32;

/** The key a peer's address is counted under: IPv4 address or IPv6 /64. */
export function sourceKey(peer: PeerAddress | null): string {
  if (!peer) return "unknown";
  if (peer.bytes.length === 4 || !peer.address.includes(":")) {
    return peer.address;
  }
  const prefix = new Uint8Array(16);
  prefix.set(peer.bytes.subarray(0, 8));
  return `${formatIp(prefix)}/64`;
}

/** One pending connection's place; `signal` aborts if it is evicted. */
export interface PendingSlot {
  /** Aborts when a newer connection took this one's place. */
  readonly signal: AbortSignal;
  /** Gives the place back (the connection was routed or closed). */
  release(): void;
}

interface Slot extends PendingSlot {
  source: string;
  controller: AbortController;
}

/** What {@link PendingConnections.admit} had to do to make room. */
export type Eviction = "none" | "source full" | "all full";

/**
 * The set of pending connections, capped per source and in all.
 *
 * @example
 * ```ts
 * const pending = new PendingConnections();
 * const { slot } = pending.admit("203.0.113.9");
 * try {
 *   await readHello(fd, slot.signal); // aborted if evicted
 * } finally {
 *   slot.release();
 * }
 * ```
 */
export class PendingConnections {
  #total: number;
  #perSource: number;
  #all = new Set<Slot>();
  #bySource = new Map<string, Set<Slot>>();

  /** Caps: `total` in all, `perSource` per source key. */
  constructor(total = MAX_PENDING, perSource = MAX_PENDING_PER_SOURCE) {
    this.#total = total;
    this.#perSource = perSource;
  }

  /** How many connections are pending. */
  get size(): number {
    return this.#all.size;
  }

  /** How many are pending from `source`. */
  countFrom(source: string): number {
    return this.#bySource.get(source)?.size ?? 0;
  }

  /** Admits a connection from `source`, evicting the oldest if needed. */
  admit(source: string): { slot: PendingSlot; evicted: Eviction } {
    let evicted: Eviction = "none";
    const fromSource = this.#bySource.get(source);
    if (fromSource && fromSource.size >= this.#perSource) {
      this.#evict(fromSource.values().next().value!);
      evicted = "source full";
    }
    if (this.#all.size >= this.#total) {
      this.#evict(this.#all.values().next().value!);
      evicted = "all full";
    }
    const controller = new AbortController();
    const slot: Slot = {
      source,
      controller,
      signal: controller.signal,
      release: () => this.#remove(slot),
    };
    this.#all.add(slot);
    let set = this.#bySource.get(source);
    if (!set) this.#bySource.set(source, set = new Set());
    set.add(slot);
    return { slot, evicted };
  }

  /** Evicts every pending connection (the daemon is closing). */
  clear(): void {
    for (const slot of [...this.#all]) this.#evict(slot);
  }

  #evict(slot: Slot) {
    this.#remove(slot);
    slot.controller.abort();
  }

  #remove(slot: Slot) {
    if (!this.#all.delete(slot)) return;
    const set = this.#bySource.get(slot.source)!;
    set.delete(slot);
    if (set.size === 0) this.#bySource.delete(slot.source);
  }
}
