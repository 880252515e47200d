/**
 * A TCP proxy on 127.0.0.1 that injects real network faults between a client
 * and a server: connection resets, silent paths, refused connections,
 * latency and fragmentation.
 *
 * Resets are real TCP RSTs. `Deno.Conn.close()` only sends a FIN, which a
 * peer sees as a clean end of stream; a transport that resumes sessions must
 * also survive the abrupt kind. This proxy uses `node:net`, whose
 * `socket.resetAndDestroy()` works under Deno 2.9.6: it closes the socket with
 * SO_LINGER set to zero, so Linux sends an RST and the peer's next read fails
 * with `Deno.errors.ConnectionReset` (ECONNRESET). `fault_proxy_test.ts`
 * checks this from both endpoints.
 *
 * @module
 */

import net from "node:net";

/** Where a {@linkcode FaultProxy} listens and where it forwards to. */
export interface FaultProxyOptions {
  /** Port of the real server that connections are forwarded to. */
  targetPort: number;
  /**
   * Host of the real server.
   * @default {"127.0.0.1"}
   */
  targetHost?: string;
  /**
   * Port the proxy listens on, always on 127.0.0.1.
   * @default {0} (an ephemeral port, read it back from {@linkcode FaultProxy.port})
   */
  listenPort?: number;
}

/** Counters of a {@linkcode FaultProxy}, updated live. */
export interface FaultProxyStats {
  /** Connections accepted from clients, including refused ones. */
  accepted: number;
  /** Connections accepted while refusing, and reset at once. */
  refused: number;
  /** Connections answered with a forged REFUSE frame (see setForgedRefusal). */
  forged: number;
  /** Connection pairs aborted by {@linkcode FaultProxy.cut}. */
  cuts: number;
  /** Bytes passed on from clients toward the server (dropped ones not counted). */
  bytesUp: number;
  /** Bytes passed on from the server toward clients (dropped ones not counted). */
  bytesDown: number;
}

// Past this many queued bytes in one direction the source is paused, so a
// slow destination (or a long delay) cannot make the proxy buffer without
// bound; below the low mark it reads again.
const HIGH_WATER = 1 << 20;
const LOW_WATER = 1 << 18;

/** One chunk waiting to be forwarded, and when it may leave (delay). */
interface Pending {
  data: Uint8Array;
  due: number;
}

/** One direction of a pair: bytes read from `from`, written to `to`. */
interface Flow {
  from: net.Socket;
  to: net.Socket;
  up: boolean;
  queue: Pending[];
  queued: number;
  pumping: boolean;
  /** `from` sent its FIN; pass it on once the queue is flushed. */
  ended: boolean;
}

/** A client connection and the proxy's connection to the server for it. */
interface Pair {
  /** Numbers pairs in the order they were accepted, from 1 (taps see it). */
  id: number;
  client: net.Socket;
  /** Absent when the pair was born blackholed: the server never hears of it. */
  server?: net.Socket;
  flows: Flow[];
  blackholed: boolean;
  /**
   * The direction this pair drops silently (a half-open path), or null;
   * see {@linkcode FaultProxy.setHalfOpen}.
   */
  halfOpen: HalfOpenDirection | null;
  /** Set by cut()/close()/a propagated reset: forward nothing more. */
  dead: boolean;
  /** Wake-ups of pending delays (each clears its timer), run when it dies. */
  sleepers: Set<() => void>;
}

/**
 * A TCP proxy that forwards 127.0.0.1:`port` to a target and injects faults
 * on command.
 *
 * @example Cut every connection with an RST
 * ```ts
 * const proxy = await FaultProxy.start({ targetPort: server.port });
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: proxy.port });
 * proxy.cut(); // conn.read() now rejects with Deno.errors.ConnectionReset
 * await proxy.close();
 * ```
 */
export class FaultProxy {
  /** The port clients connect to, on 127.0.0.1. */
  readonly port: number;
  /** Live counters; see {@linkcode FaultProxyStats}. */
  readonly stats: FaultProxyStats = {
    accepted: 0,
    refused: 0,
    forged: 0,
    cuts: 0,
    bytesUp: 0,
    bytesDown: 0,
  };

  #server: net.Server;
  #targetHost: string;
  #targetPort: number;
  #pairs = new Set<Pair>();
  #sockets = new Set<net.Socket>();
  #socketClosed = new Map<net.Socket, Promise<void>>();
  #blackhole = false;
  #refuse = false;
  #forged: ForgedRefusal | null = null;
  #tap: Tap | null = null;
  #rewrite: Rewrite | null = null;
  #halfOpen: HalfOpenDirection | null = null;
  #nextPairId = 1;
  #delay = 0;
  #split = false;
  #closed = false;

  private constructor(
    server: net.Server,
    port: number,
    targetHost: string,
    targetPort: number,
  ) {
    this.#server = server;
    this.port = port;
    this.#targetHost = targetHost;
    this.#targetPort = targetPort;
    server.on("connection", (socket: net.Socket) => this.#accept(socket));
  }

  /** Starts listening on 127.0.0.1 and resolves once the port is bound. */
  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    // allowHalfOpen: a FIN from one side must travel on as a FIN, not make
    // the proxy close the whole pair.
    const server = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(
        { host: "127.0.0.1", port: options.listenPort ?? 0 },
        () => {
          server.off("error", reject);
          resolve();
        },
      );
    });
    const address = server.address() as net.AddressInfo;
    return new FaultProxy(
      server,
      address.port,
      options.targetHost ?? "127.0.0.1",
      options.targetPort,
    );
  }

  /**
   * Aborts every current connection pair with a TCP RST to both endpoints
   * (blackholed pairs too). Returns how many pairs were cut.
   */
  cut(): number {
    let count = 0;
    for (const pair of this.#pairs) {
      if (pair.dead) continue;
      count++;
      this.#kill(pair, true);
    }
    this.stats.cuts += count;
    return count;
  }

  /**
   * Turns the silent path on or off. While on, every current pair and every
   * pair accepted meanwhile forwards nothing ever again: bytes are read and
   * dropped, resets and FINs are not passed on, and the proxy closes
   * nothing on its own. A pair accepted while on never reaches the server
   * at all. Turning it off only affects pairs accepted afterwards: a
   * blackholed pair stays so until cut() or close(), or until each endpoint
   * closes its own side (a FIN from an endpoint closes only the proxy's
   * socket toward that endpoint; the other endpoint hears nothing).
   */
  setBlackhole(on: boolean): void {
    this.#blackhole = on;
    if (!on) return;
    for (const pair of this.#pairs) this.#blackholePair(pair);
  }

  /**
   * Takes the path down for new connections: while on, each new connection
   * is accepted and reset at once (the client's connect succeeds, its first
   * read fails with a reset). Current pairs are untouched.
   */
  setRefuse(on: boolean): void {
    this.#refuse = on;
  }

  /**
   * Impersonates the server toward new connections: while set, each new
   * connection never reaches the server; once the client has sent its
   * first bytes (its hello) it is answered with one REFUSE frame, as an
   * attacker on the path could forge it (no MAC), and closed with a FIN.
   * The frame is `u32` big-endian length, then the body `0x05`, the code
   * byte and the UTF-8 reason. `codes` are used in turn, one per
   * connection. Current pairs are untouched; null turns the mode off.
   */
  setForgedRefusal(refusal: ForgedRefusal | null): void {
    if (refusal && refusal.codes.length === 0) {
      throw new RangeError("setForgedRefusal: no codes");
    }
    this.#forged = refusal;
  }

  /**
   * Calls `tap` synchronously with each chunk read from an endpoint of a
   * live pair (`up`: from the client), before the chunk is forwarded, so
   * a fault injected from `tap` already applies to that chunk (e.g.
   * blackhole from the first byte of output on). It also gets the chunk
   * itself (valid during the call only: copy what you keep) and the pair's
   * number ({@linkcode FaultProxy.pairs}), e.g. to record what a client
   * sent. Chunks a silent path or a half-open direction drops are not
   * tapped. Null removes it.
   */
  setTap(tap: Tap | null): void {
    this.#tap = tap;
  }

  /**
   * Rewrites what a live pair forwards, as an attacker on the path could:
   * `rewrite` gets each chunk (after the tap; its own copy, free to
   * change), the direction and the pair's number, and returns the bytes to
   * forward in its place: the same chunk, a changed one (a flipped bit),
   * more (injected frames) or nothing (held back, e.g. until a frame is
   * whole). Order is kept. Null removes it.
   */
  setRewrite(rewrite: Rewrite | null): void {
    this.#rewrite = rewrite;
  }

  /**
   * Turns a half-open path on or off: while `direction` is set, every
   * current pair and every pair accepted meanwhile silently drops that
   * direction's bytes (`"up"`: client to server), FINs and resets
   * included, while the other direction flows on. As with the blackhole,
   * turning it off (null) only affects pairs accepted afterwards: a caught
   * pair stays half-open until cut() or close(), or until its endpoints
   * close (an endpoint whose sending direction is dead closes only the
   * proxy's socket toward it; a FIN on the live direction is passed on,
   * and then both of the pair's sockets are closed, since nothing can
   * travel back any more).
   */
  setHalfOpen(direction: HalfOpenDirection | null): void {
    this.#halfOpen = direction;
    if (direction === null) return;
    for (const pair of this.#pairs) {
      if (pair.dead || pair.blackholed || pair.halfOpen) continue;
      pair.halfOpen = direction;
      for (const flow of pair.flows) {
        if (!flowIsDead(pair, flow)) continue;
        flow.queue.length = 0;
        flow.queued = 0;
        // Keep reading (and dropping): the sender is not pushed back.
        flow.from.resume();
      }
      this.#wakeSleepers(pair);
    }
  }

  /**
   * The numbers of the pairs still open (see {@linkcode setTap}), oldest
   * first; the last one is the newest connection.
   */
  get pairs(): number[] {
    return [...this.#pairs].filter((pair) => !pair.dead).map((pair) => pair.id);
  }

  /**
   * Adds `ms` of one-way latency to every chunk read from now on, in each
   * direction: a chunk leaves `ms` after it arrived, order preserved.
   */
  setDelay(ms: number): void {
    this.#delay = Math.max(0, ms);
  }

  /**
   * While on, forwards every chunk as pieces of 1..16 random bytes, each its
   * own write that completes before the next starts, with Nagle off: the
   * receiver sees messages broken at arbitrary points.
   */
  setSplit(on: boolean): void {
    this.#split = on;
  }

  /**
   * Stops listening and destroys every connection. Resolves once every
   * socket and the listener are closed, so no op or resource is left behind.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const listenerClosed = new Promise<void>((resolve) =>
      this.#server.close(() => resolve())
    );
    for (const pair of this.#pairs) this.#kill(pair, false);
    for (const socket of this.#sockets) socket.destroy();
    await Promise.all([listenerClosed, ...this.#socketClosed.values()]);
  }

  #track(socket: net.Socket): void {
    this.#sockets.add(socket);
    this.#socketClosed.set(
      socket,
      new Promise<void>((resolve) =>
        socket.once("close", () => {
          this.#sockets.delete(socket);
          this.#socketClosed.delete(socket);
          resolve();
        })
      ),
    );
  }

  #accept(client: net.Socket): void {
    this.stats.accepted++;
    this.#track(client);
    // Errors are expected here (resets are the point); they are handled
    // through the pair, never thrown as unhandled 'error' events.
    client.on("error", () => {});
    if (this.#closed) {
      client.destroy();
      return;
    }
    if (this.#refuse) {
      this.stats.refused++;
      client.resetAndDestroy();
      return;
    }
    client.setNoDelay(true);
    if (this.#forged) {
      const refusal = this.#forged;
      const code = refusal.codes[this.stats.forged % refusal.codes.length];
      this.stats.forged++;
      client.once("data", () => {
        client.end(forgedRefuseFrame(code, refusal.reason));
      });
      client.on("end", () => client.destroy());
      return;
    }
    const pair: Pair = {
      id: this.#nextPairId++,
      client,
      flows: [],
      blackholed: this.#blackhole,
      halfOpen: this.#halfOpen,
      dead: false,
      sleepers: new Set(),
    };
    this.#pairs.add(pair);
    client.once("close", () => this.#forgetIfGone(pair));
    if (pair.blackholed) {
      this.#drain(client);
      return;
    }
    const server = net.connect({
      host: this.#targetHost,
      port: this.#targetPort,
      allowHalfOpen: true,
    });
    pair.server = server;
    this.#track(server);
    server.setNoDelay(true);
    server.once("close", () => this.#forgetIfGone(pair));
    pair.flows.push(
      this.#flow(pair, client, server, true),
      this.#flow(pair, server, client, false),
    );
  }

  /**
   * For a pair born blackholed: reads and drops everything from `socket`,
   * and closes it when its endpoint sends a FIN.
   */
  #drain(socket: net.Socket): void {
    socket.on("data", () => {});
    socket.on("end", () => socket.destroy());
  }

  #blackholePair(pair: Pair): void {
    if (pair.blackholed || pair.dead) return;
    pair.blackholed = true;
    for (const flow of pair.flows) {
      flow.queue.length = 0;
      flow.queued = 0;
    }
    this.#wakeSleepers(pair);
    // Keep reading (and dropping) so the endpoints' writes never stall: a
    // silent path swallows data, it does not push back.
    for (const flow of pair.flows) flow.from.resume();
  }

  #flow(pair: Pair, from: net.Socket, to: net.Socket, up: boolean): Flow {
    const flow: Flow = {
      from,
      to,
      up,
      queue: [],
      queued: 0,
      pumping: false,
      ended: false,
    };
    from.on("data", (chunk: Uint8Array) => {
      if (pair.blackholed || pair.dead || flowIsDead(pair, flow)) return;
      this.#tap?.(up, chunk.length, chunk, pair.id);
      if (pair.blackholed || pair.dead || flowIsDead(pair, flow)) return;
      // Copy (a Buffer's slice() would not): the chunk may wait in the
      // queue (delay), and its memory is not promised to stay untouched
      // after the event.
      let data: Uint8Array = new Uint8Array(chunk);
      if (this.#rewrite) {
        data = this.#rewrite(data, up, pair.id);
        if (data.length === 0) return;
      }
      flow.queue.push({
        data,
        due: performance.now() + this.#delay,
      });
      flow.queued += data.length;
      if (flow.queued > HIGH_WATER) from.pause();
      void this.#pump(pair, flow);
    });
    from.on("end", () => {
      // On a silent path an endpoint's FIN closes only its own side; the
      // other endpoint hears nothing.
      if (pair.blackholed || flowIsDead(pair, flow)) {
        return void from.destroy();
      }
      if (pair.dead) return;
      flow.ended = true;
      void this.#pump(pair, flow);
    });
    from.on("error", () => {
      // A half-open direction carries no reset either.
      if (flowIsDead(pair, flow)) return void from.destroy();
      // An endpoint reset (or a failed connect to the server): a real path
      // carries the RST through, so reset the other endpoint too.
      if (pair.blackholed || pair.dead) return;
      pair.dead = true;
      this.#wakeSleepers(pair);
      if (to.destroyed) return;
      if (to.connecting) to.destroy();
      else to.resetAndDestroy();
    });
    return flow;
  }

  async #pump(pair: Pair, flow: Flow): Promise<void> {
    if (flow.pumping) return;
    flow.pumping = true;
    const stop = () =>
      pair.dead || pair.blackholed || flowIsDead(pair, flow) ||
      flow.to.destroyed;
    try {
      while (flow.queue.length > 0 && !stop()) {
        const wait = flow.queue[0].due - performance.now();
        if (wait > 0) await this.#sleep(pair, wait);
        if (stop()) break;
        const { data } = flow.queue.shift()!;
        flow.queued -= data.length;
        let sent = 0;
        if (this.#split) {
          while (sent < data.length && !stop()) {
            const n = Math.min(
              data.length - sent,
              1 + Math.floor(Math.random() * 16),
            );
            await writeAndWait(flow.to, data.subarray(sent, sent + n));
            sent += n;
          }
        } else {
          if (!flow.to.write(data)) await drained(flow.to);
          sent = data.length;
        }
        if (flow.up) this.stats.bytesUp += sent;
        else this.stats.bytesDown += sent;
        if (flow.queued < LOW_WATER && flow.from.isPaused()) flow.from.resume();
      }
      if (flow.ended && flow.queue.length === 0) {
        if (!stop()) flow.to.end();
        // Half-open: the other direction is dead, so once this one ended
        // nothing can travel any more; let go of the sender's socket.
        if (pair.halfOpen) flow.from.destroy();
      }
    } finally {
      flow.pumping = false;
    }
  }

  #sleep(pair: Pair, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        pair.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      pair.sleepers.add(wake);
    });
  }

  #wakeSleepers(pair: Pair): void {
    for (const wake of [...pair.sleepers]) wake();
  }

  /** Ends a pair: with an RST to both endpoints when `reset`, else destroy. */
  #kill(pair: Pair, reset: boolean): void {
    pair.dead = true;
    this.#wakeSleepers(pair);
    for (const socket of [pair.client, pair.server]) {
      if (!socket || socket.destroyed) continue;
      // A connect still in progress has no peer to reset yet; node's
      // resetAndDestroy would wait for it to finish, destroy closes it now.
      if (reset && !socket.connecting) socket.resetAndDestroy();
      else socket.destroy();
    }
  }

  #forgetIfGone(pair: Pair): void {
    if (pair.client.destroyed && (!pair.server || pair.server.destroyed)) {
      this.#wakeSleepers(pair);
      this.#pairs.delete(pair);
    }
  }
}

/**
 * What {@linkcode FaultProxy.setTap} calls: the direction (`up`: from the
 * client), the chunk's size, the chunk (valid during the call only) and
 * the pair's number.
 */
export type Tap = (
  up: boolean,
  bytes: number,
  chunk: Uint8Array,
  pair: number,
) => void;

/**
 * What {@linkcode FaultProxy.setRewrite} calls: returns the bytes to
 * forward in place of `chunk` (which it may change or return).
 */
export type Rewrite = (
  chunk: Uint8Array,
  up: boolean,
  pair: number,
) => Uint8Array;

/** The direction a half-open path drops: `"up"` is client to server. */
export type HalfOpenDirection = "up" | "down";

/** True when `flow` is the direction its half-open pair drops. */
function flowIsDead(pair: Pair, flow: Flow): boolean {
  return pair.halfOpen !== null && (pair.halfOpen === "up") === flow.up;
}

/** What {@linkcode FaultProxy.setForgedRefusal} answers with. */
export interface ForgedRefusal {
  /** Refusal codes, used in turn (1 unknown session … 6 stale attempt). */
  codes: readonly number[];
  /** The reason text. */
  reason: string;
}

/** A REFUSE frame without a MAC: length, 0x05, code, reason. */
export function forgedRefuseFrame(code: number, reason: string): Uint8Array {
  const text = new TextEncoder().encode(reason);
  const frame = new Uint8Array(4 + 2 + text.length);
  new DataView(frame.buffer).setUint32(0, 2 + text.length);
  frame[4] = 0x05;
  frame[5] = code & 0x7f;
  frame.set(text, 6);
  return frame;
}

/** Writes `data` and resolves once it was handed to the kernel (or failed). */
function writeAndWait(socket: net.Socket, data: Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    const onClose = () => resolve();
    socket.once("close", onClose);
    socket.write(data, () => {
      socket.off("close", onClose);
      resolve();
    });
  });
}

/** Resolves on 'drain', or when the socket closes and never will drain. */
function drained(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off("drain", done);
      socket.off("close", done);
      resolve();
    };
    socket.once("drain", done);
    socket.once("close", done);
  });
}

/** A fault that {@linkcode chaos} injects. */
export type ChaosFault = "cut" | "blackhole" | "refuse";

/** Options of {@linkcode chaos}. */
export interface ChaosOptions {
  /** Shortest quiet time between two faults, in ms. */
  minMs: number;
  /** Longest quiet time between two faults, in ms; also the longest refuse. */
  maxMs: number;
  /**
   * Longest time the blackhole stays on for new connections, in ms.
   * @default {maxMs}
   */
  blackholeMaxMs?: number;
  /**
   * Source of randomness in [0, 1); pass a seeded one to replay a run.
   * @default {Math.random}
   */
  random?: () => number;
  /**
   * Faults to choose from, uniformly.
   * @default {["cut", "blackhole", "refuse"]}
   */
  kinds?: readonly ChaosFault[];
  /** Called as each fault starts, with its kind. */
  onFault?: (kind: string) => void;
}

/**
 * Injects random faults into `proxy` until stopped, and returns the stop
 * function; stopping waits for the loop to end and turns blackhole and
 * refuse off again.
 *
 * Faults, after a quiet time drawn from [minMs, maxMs]:
 * - `"cut"`: {@linkcode FaultProxy.cut}.
 * - `"blackhole"`: blackhole on for up to `blackholeMaxMs`, then off. The
 *   pairs it caught stay silent: the code under test has to notice on its own.
 * - `"refuse"`: the path goes down: cut, then refuse new connections for up
 *   to `maxMs` (refusing alone would not touch a connected client).
 *
 * @example
 * ```ts
 * const stop = chaos(proxy, { minMs: 200, maxMs: 800 });
 * // ... drive a session through proxy.port ...
 * await stop();
 * ```
 */
export function chaos(
  proxy: FaultProxy,
  options: ChaosOptions,
): () => Promise<void> {
  const random = options.random ?? Math.random;
  const kinds = options.kinds ?? ["cut", "blackhole", "refuse"];
  const between = (min: number, max: number) =>
    min + random() * Math.max(0, max - min);
  let stopped = false;
  let wakeSleeper: (() => void) | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (stopped) return resolve();
      wakeSleeper = () => {
        clearTimeout(timer);
        wakeSleeper = undefined;
        resolve();
      };
      const timer = setTimeout(wakeSleeper, ms);
    });

  const loop = (async () => {
    while (!stopped) {
      await sleep(between(options.minMs, options.maxMs));
      if (stopped) break;
      const kind =
        kinds[Math.min(kinds.length - 1, Math.floor(random() * kinds.length))];
      options.onFault?.(kind);
      if (kind === "cut") {
        proxy.cut();
      } else if (kind === "blackhole") {
        proxy.setBlackhole(true);
        await sleep(between(0, options.blackholeMaxMs ?? options.maxMs));
        proxy.setBlackhole(false);
      } else {
        proxy.cut();
        proxy.setRefuse(true);
        await sleep(between(0, options.maxMs));
        proxy.setRefuse(false);
      }
    }
  })();

  return async () => {
    stopped = true;
    wakeSleeper?.();
    await loop;
    proxy.setBlackhole(false);
    proxy.setRefuse(false);
  };
}
