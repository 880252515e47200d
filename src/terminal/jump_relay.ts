/**
 * `et terminal --relay`: the jump relay on a jumphost (`et --jumphost`).
 * Started by the launcher for a `jump` bootstrap line, as the user, it
 * takes the connections of one session id the way a session process does
 * (handed over by this host's daemon, or on a port of its own in no-root
 * mode) and copies each one, unchanged and HELLO included, to the next hop
 * or the destination. The destination's terminal process runs the
 * handshake with the client through it.
 *
 * It ends when told to (its control socket), when no client came within the
 * connect timeout or none was relayed for the session timeout, and when
 * the destination has said for a minute that the session is gone (probed
 * with a bare HELLO once no client is connected: see session_probe.ts).
 *
 * It never holds the session's key (it is never given the secret) and
 * never sees plaintext: it moves sealed frames. Its control socket
 * (`<id>.jump.ctl`, owner-only) answers `status` with all it knows: the
 * session id, the destination, its port and counters. The daemon stays out
 * of it: the relay is the user's own process, dialing where the user said.
 *
 * @module
 */

import { sleep, withDeadline } from "../deadline.ts";
import { configureLog, errorMessage, fileSink, logger } from "../log.ts";
import {
  decodeBootstrap,
  encodeReady,
  encodeRefusal,
  type JumpRequest,
  privateRuntimeDir,
} from "../session/mod.ts";
import {
  type BytePipe,
  closeQuietly,
  fromHex,
  HandshakeWatch,
  probeSession,
  refuse,
  RefuseCode,
  type RelayCounters,
  relayPipes,
} from "../transport/mod.ts";
import { reactor } from "../platform/reactor.ts";
import { controlRequest, serveControl } from "./control_socket.ts";
import { readStdinLine } from "./local_io.ts";
import { serveOwnPort } from "./own_port.ts";
import { chooseRoute, keepRegistered } from "./route.ts";

const log = logger("jump");

/**
 * Most relayed connections whose handshake has not completed (the session
 * id is public: anyone can make the relay dial). At the cap the oldest is
 * dropped for the new one, as the daemon does; connections the
 * destination accepted are never dropped for them.
 */
export const MAX_PENDING_PAIRS = 64;
/** A connection not accepted by the destination within this is dropped. */
const PENDING_LIMIT_MS = 10_000;
/** Longest wait to connect to the destination. */
const DIAL_TIMEOUT_MS = 5000;
/** Margin on the connect deadline, as the session process has. */
const CONNECT_MARGIN_MS = 5000;
/**
 * With no client connected, the destination is probed this long after
 * the last one left, then at doubling intervals up to the maximum.
 */
const FIRST_PROBE_DELAY_MS = 2000;
const MAX_PROBE_DELAY_MS = 10 * 60_000;
/**
 * The relay ends once every probe for this long said the session is gone:
 * longer than a destination daemon's restart, during which it is briefly
 * unknown there.
 */
export const GONE_FOR_MS = 60_000;

/** Path of the control socket of the jump relay for session `idHex`. */
export function relayControlPath(dir: string, idHex: string): string {
  return `${dir}/${idHex}.jump.ctl`;
}

/** What a relay's control socket answers to `status`: all it knows. */
export interface RelayStatus {
  id: string;
  role: "jump";
  /** `host:port` it dials. */
  destination: string;
  /** Its own TCP port (no-root mode), absent when the daemon hands over. */
  port?: number;
  /** Connections relayed now, of which the destination accepted `accepted`. */
  live: number;
  accepted: number;
  /** Connections taken since it started. */
  total: number;
  /** Bytes copied toward the destination, and back. */
  bytesUp: number;
  bytesDown: number;
  startedAt: number;
  /**
   * When a client (a connection the destination accepted) was last
   * relayed (ms since the epoch).
   */
  lastSeenAt: number;
}

/** One relayed connection. */
interface Pair {
  incoming: BytePipe;
  outgoing?: BytePipe;
  watch: HandshakeWatch;
  counters: RelayCounters;
  /** Settles when the destination accepted, or the pair is over. */
  settled: Promise<void>;
}

/** Options of {@link serveJumpRelay}. */
export interface JumpRelayOptions {
  /** This host's daemon's router socket. */
  routerPath: string;
}

/**
 * Runs one jump relay from the `jump` line on stdin until it is told to
 * end, no client came (the connect timeout), none was relayed for the
 * session timeout, or the destination says the session is gone. Prints the launcher's ready line (with its port in
 * no-root mode), or a refusal line. Returns the process exit code.
 */
export async function serveJumpRelay(
  options: JumpRelayOptions,
): Promise<number> {
  let request: JumpRequest;
  let dir: string;
  try {
    const decoded = decodeBootstrap(await readStdinLine(10_000));
    if (decoded.op !== "jump") throw new Error("not a jump request");
    request = decoded;
    dir = await privateRuntimeDir();
  } catch (error) {
    console.log(`error: ${errorMessage(error)}`);
    return 1;
  }
  const id8 = request.id.slice(0, 8);
  configureLog({ level: "info", sink: fileSink(`${dir}/relay-${id8}.log`) });
  const controlPath = relayControlPath(dir, request.id);
  await endOlderRelay(controlPath);
  let route;
  try {
    route = await chooseRoute(request, options.routerPath, request.id);
  } catch (error) {
    log.warn(errorMessage(error));
    console.log(encodeRefusal(errorMessage(error)));
    return 1;
  }
  const relay = new JumpRelay(request);
  const ownPort = route.kind === "own port"
    ? route.listener.addr.port
    : undefined;
  const stop = new AbortController();
  const controlling = serveControl<RelayStatus>(controlPath, {
    status: () => relay.status(ownPort),
    attach: () => {
      throw new Error("a jump relay holds no session");
    },
    end: () => {
      stop.abort();
      return Promise.resolve();
    },
  }, stop.signal).catch((error) =>
    log.error(`control socket failed: ${errorMessage(error)}`)
  );
  log.info(
    `relaying session ${id8} to ${relay.destination}${
      ownPort ? ` from port ${ownPort} (no-root mode)` : " (daemon)"
    }`,
  );
  console.log(encodeReady({ id: request.id, detached: 0, port: ownPort }));
  try {
    Deno.stdout.close();
  } catch { /* already closed */ }

  const serving = route.kind === "daemon"
    ? keepRegistered(
      route.registration,
      options.routerPath,
      request.id,
      stop.signal,
      (handed) => relay.take(handed.pipe, handed.peer),
    )
    : serveOwnPort(route.listener, relay.take, stop.signal);
  const why = await relay.idle(stop.signal);
  stop.abort();
  relay.close();
  await Promise.allSettled([serving, controlling]);
  await reactor().idle();
  log.info(`relay of session ${id8} ended: ${why}`);
  return 0;
}

/**
 * A relay for the same session left by an earlier client (an attach
 * through the same jumphost): ended, so that this one can register.
 */
async function endOlderRelay(controlPath: string) {
  try {
    await controlRequest(controlPath, { op: "end" });
  } catch (error) {
    // A socket nobody answers on: its relay died; ours takes its place.
    if (error instanceof Deno.errors.ConnectionRefused) {
      await Deno.remove(controlPath).catch(() => {});
    }
    return;
  }
  for (let i = 0; i < 40; i++) {
    if (!await Deno.stat(controlPath).then(() => true, () => false)) return;
    await sleep(50);
  }
  await Deno.remove(controlPath).catch(() => {});
}

/** The relay's state: its pairs, counters and lifetime. */
class JumpRelay {
  readonly destination: string;
  #request: JumpRequest;
  #pairs = new Set<Pair>();
  #total = 0;
  #bytesUp = 0;
  #bytesDown = 0;
  #startedAt = Date.now();
  #lastSeenAt = Date.now();
  #everAccepted = false;
  #probeDelay = FIRST_PROBE_DELAY_MS;
  #nextProbeAt = Infinity;
  #goneSince: number | null = null;
  #dialFailuresSince = 0;
  #droppedSince = 0;
  #lastDropLog = -Infinity;
  #lastDialLog = -Infinity;

  constructor(request: JumpRequest) {
    this.#request = request;
    this.destination = request.host.includes(":")
      ? `[${request.host}]:${request.port}`
      : `${request.host}:${request.port}`;
  }

  /** What the control socket shows. */
  status(port: number | undefined): RelayStatus {
    const pairs = [...this.#pairs];
    return {
      id: this.#request.id,
      role: "jump",
      destination: this.destination,
      ...(port === undefined ? {} : { port }),
      live: pairs.length,
      accepted: pairs.filter((p) => p.watch.accepted === true).length,
      total: this.#total,
      bytesUp: this.#bytesUp + sum(pairs, (p) => p.counters.aToB),
      bytesDown: this.#bytesDown + sum(pairs, (p) => p.counters.bToA),
      startedAt: this.#startedAt,
      lastSeenAt: this.#lastSeenAt,
    };
  }

  /**
   * Relays one incoming connection to the destination; resolves once the
   * destination accepted the client or the pair is over (so a listener
   * counts it as pending until then). Never throws.
   */
  take = (incoming: BytePipe, peer: string): Promise<void> => {
    this.#total++;
    this.#dropOldestPendingAtCap();
    let settle!: () => void;
    const pair: Pair = {
      incoming,
      watch: new HandshakeWatch(),
      counters: { aToB: 0, bToA: 0 },
      settled: new Promise<void>((resolve) => settle = resolve),
    };
    this.#pairs.add(pair);
    const limit = setTimeout(() => {
      if (pair.watch.accepted !== true) this.#closePair(pair);
    }, PENDING_LIMIT_MS);
    this.#run(pair, peer, settle).finally(() => {
      clearTimeout(limit);
      this.#pairs.delete(pair);
      this.#bytesUp += pair.counters.aToB;
      this.#bytesDown += pair.counters.bToA;
      if (pair.watch.accepted) this.#lastSeenAt = Date.now();
      if (this.#pairs.size === 0 && this.#everAccepted) {
        this.#nextProbeAt = Math.min(
          this.#nextProbeAt,
          Date.now() + this.#probeDelay,
        );
      }
      settle();
    });
    return pair.settled;
  };

  async #run(pair: Pair, peer: string, settle: () => void) {
    let outgoing: Deno.TcpConn;
    try {
      outgoing = await this.#dial();
    } catch (error) {
      this.#logDialFailure(error);
      // Plain, like every relay's: the client retries, and names it last.
      await refuse(
        pair.incoming,
        RefuseCode.NextHopUnreachable,
        `${this.destination} (${errorMessage(error)})`,
      );
      return;
    }
    if (!this.#pairs.has(pair)) {
      // Dropped (a cap, the end) while dialing.
      closeQuietly(outgoing);
      return;
    }
    outgoing.setNoDelay(true);
    pair.outgoing = outgoing;
    // Debug only: anyone who knows the id can make connections.
    log.debug(`relaying a connection from ${peer} to ${this.destination}`);
    await relayPipes(pair.incoming, outgoing, {
      counters: pair.counters,
      onChunk: (fromClient, chunk) => {
        if (fromClient || pair.watch.accepted !== null) return;
        pair.watch.push(chunk);
        if (pair.watch.accepted) {
          // A client of the session: it is alive; probe afresh later.
          this.#everAccepted = true;
          this.#lastSeenAt = Date.now();
          this.#goneSince = null;
          this.#probeDelay = FIRST_PROBE_DELAY_MS;
          this.#nextProbeAt = Infinity;
          settle();
        }
      },
    });
  }

  /** Connects to the destination, within the dial timeout. */
  #dial(): Promise<Deno.TcpConn> {
    return withDeadline(
      Deno.connect({ hostname: this.#request.host, port: this.#request.port }),
      DIAL_TIMEOUT_MS,
      `no answer within ${DIAL_TIMEOUT_MS / 1000} s`,
    );
  }

  /**
   * With no client connected, on the probe schedule: asks the destination
   * whether the session still exists. True once it has said "gone" for
   * {@link GONE_FOR_MS}.
   */
  async #sessionGone(): Promise<boolean> {
    if (this.#pairs.size > 0 || Date.now() < this.#nextProbeAt) return false;
    const answer = await probeSession(
      () => this.#dial(),
      fromHex(this.#request.id, 16),
    );
    if (this.#nextProbeAt === Infinity) return false; // a client came
    const now = Date.now();
    log.info(`probed the destination: session ${answer}`);
    if (answer === "alive") this.#goneSince = null;
    if (answer === "gone") this.#goneSince ??= now;
    this.#probeDelay = Math.min(this.#probeDelay * 2, MAX_PROBE_DELAY_MS);
    this.#nextProbeAt = now + this.#probeDelay;
    return this.#goneSince !== null && now - this.#goneSince >= GONE_FOR_MS;
  }

  #logDialFailure(error: unknown) {
    this.#dialFailuresSince++;
    // The client retries every few hundred ms: a line a second at most.
    if (performance.now() - this.#lastDialLog < 1000) return;
    log.warn(
      `cannot reach ${this.destination}: ${
        errorMessage(error)
      } (${this.#dialFailuresSince} since the last line)`,
    );
    this.#dialFailuresSince = 0;
    this.#lastDialLog = performance.now();
  }

  #dropOldestPendingAtCap() {
    const pending = [...this.#pairs].filter((p) => p.watch.accepted !== true);
    if (pending.length < MAX_PENDING_PAIRS) return;
    // A Set iterates in insertion order: the first pending is the oldest.
    this.#closePair(pending[0]);
    this.#droppedSince++;
    // A flood must not flood the log: a line a second at most.
    if (performance.now() - this.#lastDropLog < 1000) return;
    log.warn(
      `${MAX_PENDING_PAIRS} connections pending: dropped the oldest (${this.#droppedSince} since the last line)`,
    );
    this.#droppedSince = 0;
    this.#lastDropLog = performance.now();
  }

  #closePair(pair: Pair) {
    this.#pairs.delete(pair);
    closeQuietly(pair.incoming);
    if (pair.outgoing) closeQuietly(pair.outgoing);
  }

  /**
   * Resolves, with why, when the relay has no more reason to live: no
   * client came within the connect timeout, or none was relayed for the
   * session timeout (0: never); or when `signal` aborts (an end request).
   */
  async idle(signal: AbortSignal): Promise<string> {
    const { connectTimeoutMs, sessionTimeoutMs } = this.#request.limits;
    while (!signal.aborted) {
      const wait = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        signal.addEventListener("abort", () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
      await wait;
      if (signal.aborted) break;
      const now = Date.now();
      if (
        !this.#everAccepted &&
        now - this.#startedAt > connectTimeoutMs + CONNECT_MARGIN_MS
      ) return "no client came";
      // Clients only: probes and strangers' connections keep no relay.
      const clients = [...this.#pairs].filter((p) => p.watch.accepted).length;
      if (
        sessionTimeoutMs > 0 && clients === 0 &&
        now - this.#lastSeenAt > sessionTimeoutMs
      ) return "no client for the session timeout";
      if (await this.#sessionGone()) return "the session is gone";
    }
    return "asked to end";
  }

  /** Closes every pair. */
  close() {
    for (const pair of [...this.#pairs]) this.#closePair(pair);
  }
}

function sum<T>(items: T[], of: (item: T) => number): number {
  return items.reduce((total, item) => total + of(item), 0);
}
