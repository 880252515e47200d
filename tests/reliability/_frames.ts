/**
 * Frames as an observer on the path sees them: the fault proxy hands over
 * TCP chunks, these helpers cut them into `et` frames (u32 length, body)
 * per pair and direction, so a run can tell when a connection is
 * authenticated (the ACCEPT went down), count the DATA it carried, record
 * what a client sent, and flip a bit inside one sealed packet.
 *
 * @module
 */

import type { FaultProxy } from "../helpers/fault_proxy.ts";

/** Frame types (docs/PROTOCOL.md section 3). */
export const FRAME = {
  hello: 0x01,
  challenge: 0x02,
  auth: 0x03,
  accept: 0x04,
  refuse: 0x05,
  data: 0x10,
  control: 0x11,
} as const;

/** Largest frame body the protocol allows. */
const MAX_BODY = 128 * 1024;
/** Frame header (length) and packet header (type, counter) sizes. */
export const FRAME_HEADER_BYTES = 4;
export const PACKET_HEADER_BYTES = 9;

/**
 * Cuts a byte stream into whole frames (header included). Bytes that do
 * not parse as a frame (a length out of range) end the cutting: from then
 * on everything passes as it comes, in `raw`.
 */
export class FrameCutter {
  #buffer = new Uint8Array(0);
  #lost = false;

  /** True once the stream stopped parsing as frames. */
  get lost(): boolean {
    return this.#lost;
  }

  /**
   * Adds `chunk`; returns the frames it completed, and any bytes passed
   * on unparsed (after a loss of sync).
   */
  push(chunk: Uint8Array): { frames: Uint8Array[]; raw: Uint8Array | null } {
    if (this.#lost) return { frames: [], raw: chunk };
    const joined = new Uint8Array(this.#buffer.length + chunk.length);
    joined.set(this.#buffer);
    joined.set(chunk, this.#buffer.length);
    const frames: Uint8Array[] = [];
    let at = 0;
    while (joined.length - at >= FRAME_HEADER_BYTES) {
      const length = new DataView(joined.buffer, at, 4).getUint32(0);
      if (length === 0 || length > MAX_BODY) {
        this.#lost = true;
        this.#buffer = new Uint8Array(0);
        return { frames, raw: joined.slice(at) };
      }
      if (joined.length - at < FRAME_HEADER_BYTES + length) break;
      frames.push(joined.slice(at, at + FRAME_HEADER_BYTES + length));
      at += FRAME_HEADER_BYTES + length;
    }
    this.#buffer = joined.slice(at);
    return { frames, raw: null };
  }
}

/** What was seen of one pair (one TCP connection through the proxy). */
export interface PairView {
  id: number;
  /** The session id its HELLO named (hex), once seen. */
  sessionId?: string;
  /** `performance.now()` when its ACCEPT went down (authenticated). */
  acceptedAt?: number;
  /** DATA frames and their bytes, per direction. */
  dataUp: number;
  dataDown: number;
  dataBytesDown: number;
  dataBytesUp: number;
  /** The first frames the client sent, whole (with `record`). */
  upFrames: Uint8Array[];
}

/** Options of {@linkcode PairWatch}. */
export interface PairWatchOptions {
  /**
   * Keep up to this many of each pair's first client frames (HELLO, AUTH,
   * the first DATA…) for replay.
   * @default {0}
   */
  record?: number;
}

/**
 * Watches every pair of `proxy` through its tap: handshakes, DATA counts,
 * and (optionally) the client's first frames. Takes the proxy's tap.
 */
export class PairWatch {
  readonly views = new Map<number, PairView>();
  #cutters = new Map<string, FrameCutter>();
  #record: number;
  #proxy: FaultProxy;
  #wakers: (() => void)[] = [];

  /** Starts watching `proxy`. */
  constructor(proxy: FaultProxy, options: PairWatchOptions = {}) {
    this.#proxy = proxy;
    this.#record = options.record ?? 0;
    proxy.setTap((up, _bytes, chunk, pair) => this.#see(up, chunk, pair));
  }

  /** Stops watching (removes the tap). */
  stop(): void {
    this.#proxy.setTap(null);
  }

  /** The view of pair `id` (made on first use). */
  view(id: number): PairView {
    let view = this.views.get(id);
    if (!view) {
      view = {
        id,
        dataUp: 0,
        dataDown: 0,
        dataBytesDown: 0,
        dataBytesUp: 0,
        upFrames: [],
      };
      this.views.set(id, view);
    }
    return view;
  }

  /** The newest pair whose handshake completed, if any. */
  newestAccepted(): PairView | undefined {
    let newest: PairView | undefined;
    for (const view of this.views.values()) {
      if (view.acceptedAt !== undefined && (!newest || view.id > newest.id)) {
        newest = view;
      }
    }
    return newest;
  }

  /** Resolves at the next frame seen (or after `ms`). */
  changed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wakers.push(done);
    });
  }

  #see(up: boolean, chunk: Uint8Array, pair: number) {
    const key = `${pair}${up ? "u" : "d"}`;
    let cutter = this.#cutters.get(key);
    if (!cutter) this.#cutters.set(key, cutter = new FrameCutter());
    const { frames } = cutter.push(chunk);
    if (frames.length === 0) return;
    const view = this.view(pair);
    for (const frame of frames) {
      const type = frame[FRAME_HEADER_BYTES];
      if (up) {
        if (view.upFrames.length < this.#record) view.upFrames.push(frame);
        if (type === FRAME.hello && view.sessionId === undefined) {
          view.sessionId = hex(frame.subarray(6, 22));
        } else if (type === FRAME.data) {
          view.dataUp++;
          view.dataBytesUp += frame.length;
        }
      } else if (type === FRAME.accept) {
        view.acceptedAt = performance.now();
      } else if (type === FRAME.data) {
        view.dataDown++;
        view.dataBytesDown += frame.length;
      }
    }
    const wakers = this.#wakers;
    this.#wakers = [];
    for (const wake of wakers) wake();
  }
}

/** Lowercase hex of `bytes`. */
export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
