/**
 * The daemon's router socket: where terminal processes register their
 * session ids, and the channel over which the daemon hands them their
 * clients' connections. A registration is bound to the uid the kernel
 * reports for the registering process (SO_PEERCRED), lives as long as its
 * connection, and is refused if the id belongs to another user (live, or
 * reserved from before a daemon restart: `registry.ts`).
 *
 * Every local user can connect, so everything a connection may cost is
 * bounded: connections per uid and in all, one request line of at most
 * {@link ROUTER_LINE_LIMIT} bytes within {@link REQUEST_TIMEOUT_MS}, and
 * nothing more may be sent after it.
 *
 * @module
 */

import { errorMessage, logger, RefusalLog } from "../log.ts";
import {
  decodeRegisterRequest,
  encodeConnectionNotice,
  encodeRouterAnswer,
  ROUTER_LINE_LIMIT,
  type RouterAnswer,
} from "../session/mod.ts";
import { acceptEachFd } from "../platform/accept_loop.ts";
import { reactor } from "../platform/reactor.ts";
import {
  closeSocket,
  listenUnix,
  type PeerCredentials,
  peerCredentials,
  receive,
  sendSome,
  sendWithDescriptor,
  setSendBuffer,
  shutdownSocket,
  WOULD_BLOCK,
} from "../platform/socket.ts";
import { type Owner, processStart, SessionRegistry } from "./registry.ts";

const log = logger("router");

/**
 * Most router connections one uid may hold at once: its registrations
 * (at most `MAX_SESSIONS_PER_UID`) and a few more being made.
 */
export const MAX_ROUTER_CONNECTIONS_PER_UID = 80;

/**
 * Most router connections in all: bounds the descriptors local users can
 * make the daemon hold however many accounts they have. (Lower when the
 * descriptor limit is: see `startDaemon`.)
 */
export const MAX_ROUTER_CONNECTIONS = 4096;

/** Options of {@link SessionRouter.listen}. */
export interface RouterOptions {
  /**
   * Directory keeping the id → user bindings across restarts; null keeps
   * them in memory only.
   * @default {path + ".sessions"}
   */
  stateDir?: string | null;
  /**
   * Most router connections at once, from all users.
   * @default {MAX_ROUTER_CONNECTIONS}
   */
  maxConnections?: number;
}

/**
 * Send buffer of a registration connection. A terminal takes each handed
 * connection at once; one that stops reading gets about a dozen queued
 * (a notice and its socket use a few hundred bytes of buffer), and then
 * its clients are refused as "busy" rather than piling up sockets in
 * flight for it without bound.
 */
const REGISTRATION_SEND_BUFFER_BYTES = 8 * 1024;

/** Longest wait for a connection's request line. */
export const REQUEST_TIMEOUT_MS = 5000;

/** How often reservations whose process died are forgotten. */
const SWEEP_INTERVAL_MS = 60_000;

const encoder = new TextEncoder();

/** Why a connection could not be handed over. */
export type HandOverFailure = "busy" | "gone";

/** A live registration: a terminal process waiting for its connections. */
export class Registration {
  /** The session id (hex). */
  readonly id: string;
  /** Who registered it. */
  readonly owner: Owner;
  #fd: number;

  /** @internal Made by the router only. */
  constructor(id: string, owner: Owner, fd: number) {
    this.id = id;
    this.owner = owner;
    this.#fd = fd;
  }

  /**
   * Passes the client connection `connectionFd` to the terminal, with the
   * `hello` frame the daemon read from it and the client's address. On
   * success the terminal holds its own descriptor; the caller closes ours
   * either way. Never waits: a terminal that does not take its
   * connections (its socket buffer is full) is "busy".
   */
  handOver(
    connectionFd: number,
    hello: Uint8Array,
    peer: string,
  ): HandOverFailure | null {
    const notice = encoder.encode(encodeConnectionNotice({ peer, hello }));
    try {
      const sent = sendWithDescriptor(this.#fd, notice, connectionFd);
      if (sent === notice.length) return null;
      if (sent === WOULD_BLOCK) return "busy";
      // A partial notice would garble every later one: end the
      // registration (the terminal registers again).
      shutdownSocket(this.#fd);
      return "gone";
    } catch {
      return "gone";
    }
  }
}

/**
 * The router socket and the registry behind it.
 *
 * @example
 * ```ts
 * const router = SessionRouter.listen("/run/et/router.sock");
 * router.lookup("0f1e...")?.handOver(fd, hello, "203.0.113.9:50000");
 * await router.close();
 * ```
 */
export class SessionRouter {
  #registry: SessionRegistry<Registration>;
  #fd: number;
  #path: string;
  #stop = new AbortController();
  #serving: Promise<void>;
  #connections = new Set<Promise<void>>();
  #perUid = new Map<number, number>();
  #openCount = 0;
  #maxConnections: number;
  #refusals = new RefusalLog(log);
  #sweeper: ReturnType<typeof setInterval>;

  private constructor(
    fd: number,
    path: string,
    registry: SessionRegistry<Registration>,
    maxConnections: number,
  ) {
    this.#fd = fd;
    this.#maxConnections = maxConnections;
    this.#path = path;
    this.#registry = registry;
    this.#serving = acceptEachFd(fd, ({ fd }) => this.#admit(fd), {
      signal: this.#stop.signal,
      onError: (error) =>
        this.#refusals.refused(
          "accept failed",
          `router accept failed: ${errorMessage(error)}`,
        ),
    });
    this.#sweeper = setInterval(() => registry.sweep(), SWEEP_INTERVAL_MS);
    Deno.unrefTimer(this.#sweeper);
  }

  /**
   * Listens on `path` (replacing a stale socket file), connectable by
   * everyone so any user's terminal can register; what it can register is
   * only ids that are not another user's.
   */
  static async listen(
    path: string,
    options: RouterOptions = {},
  ): Promise<SessionRouter> {
    const stateDir = options.stateDir === undefined
      ? `${path}.sessions`
      : options.stateDir;
    const dir = path.slice(0, path.lastIndexOf("/")) || "/";
    await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
    const registry = SessionRegistry.open<Registration>(stateDir);
    try {
      const info = await Deno.lstat(path);
      if (!info.isSocket) throw new Error(`${path} exists and is not a socket`);
      await Deno.remove(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const fd = listenUnix(path);
    try {
      await Deno.chmod(path, 0o666);
    } catch (error) {
      closeSocket(fd);
      throw error;
    }
    return new SessionRouter(
      fd,
      path,
      registry,
      options.maxConnections ?? MAX_ROUTER_CONNECTIONS,
    );
  }

  /** Path of the router socket. */
  get path(): string {
    return this.#path;
  }

  /** The live registration for a session id (hex), if any. */
  lookup(idHex: string): Registration | undefined {
    return this.#registry.live(idHex);
  }

  /** How many sessions are registered (live). */
  get size(): number {
    return this.#registry.liveCount;
  }

  /** How many ids are reserved from before a restart, not yet back. */
  get reserved(): number {
    return this.#registry.reservedCount;
  }

  /** How many router connections are open. */
  get connections(): number {
    return this.#openCount;
  }

  /**
   * Stops listening and closes every registration connection, keeping
   * the ids reserved for the next daemon, and removes the socket.
   */
  async close() {
    this.#registry.keepReservations();
    this.#stop.abort();
    clearInterval(this.#sweeper);
    await this.#serving;
    closeSocket(this.#fd);
    await Promise.allSettled([...this.#connections]);
    try {
      await Deno.remove(this.#path);
    } catch { /* gone */ }
  }

  #admit(fd: number) {
    let peer: PeerCredentials;
    try {
      peer = peerCredentials(fd);
    } catch (error) {
      this.#refusals.refused(
        "no credentials",
        `router connection without credentials: ${errorMessage(error)}`,
      );
      closeSocket(fd);
      return;
    }
    const count = this.#perUid.get(peer.uid) ?? 0;
    if (
      count >= MAX_ROUTER_CONNECTIONS_PER_UID ||
      this.#openCount >= this.#maxConnections
    ) {
      this.#refusals.refused(
        "too many router connections",
        `refused router connection of uid ${peer.uid}: too many connections (${count} of this user, ${this.#openCount} in all)`,
      );
      answer(fd, { ok: false, error: "too many connections" });
      closeSocket(fd);
      return;
    }
    try {
      setSendBuffer(fd, REGISTRATION_SEND_BUFFER_BYTES);
    } catch {
      // a dead connection: its request read finds out.
    }
    this.#perUid.set(peer.uid, count + 1);
    this.#openCount++;
    const done = this.#serve(fd, peer).finally(() => {
      this.#connections.delete(done);
      this.#openCount--;
      const left = (this.#perUid.get(peer.uid) ?? 1) - 1;
      if (left > 0) this.#perUid.set(peer.uid, left);
      else this.#perUid.delete(peer.uid);
      closeSocket(fd);
    });
    this.#connections.add(done);
  }

  /** One router connection, from its request to its close. Never throws. */
  async #serve(fd: number, peer: PeerCredentials) {
    const who = `uid ${peer.uid} pid ${peer.pid}`;
    let line: string | null;
    try {
      line = await this.#readRequest(fd);
    } catch (error) {
      this.#refusals.refused(
        "bad request",
        `refused router connection of ${who}: ${errorMessage(error)}`,
      );
      answer(fd, { ok: false, error: errorMessage(error) });
      return;
    }
    if (line === null) return; // closed, timed out or daemon closing
    const request = decodeRegisterRequest(line);
    if ("error" in request) {
      this.#refusals.refused(
        "malformed registration",
        `refused registration of ${who}: ${request.error}`,
      );
      answer(fd, { ok: false, error: request.error });
      return;
    }
    const start = processStart(peer.pid);
    if (start === null) return; // the registrant is gone already
    const owner: Owner = { uid: peer.uid, pid: peer.pid, start };
    const registration = new Registration(request.id, owner, fd);
    const tag = request.id.slice(0, 8);
    const refusal = this.#registry.claim(request.id, owner, registration);
    if (refusal !== null) {
      this.#refusals.refused(
        "registration refused",
        `refused registration of session ${tag} by ${who}: ${refusal}`,
      );
      answer(fd, { ok: false, error: refusal });
      return;
    }
    try {
      if (!answer(fd, { ok: true })) return;
      log.info(`registered session ${tag} of ${who}`);
      await this.#awaitEnd(fd);
    } finally {
      this.#registry.release(request.id, registration);
      log.info(`session ${tag} unregistered`);
    }
  }

  /**
   * Reads the request line into a buffer of at most ROUTER_LINE_LIMIT
   * bytes, within REQUEST_TIMEOUT_MS: the line, or null if the peer closed
   * or went quiet, or the daemon is closing. Throws if the line is too long
   * or more follows it.
   */
  async #readRequest(fd: number): Promise<string | null> {
    const buffer = new Uint8Array(ROUTER_LINE_LIMIT);
    const expired = new AbortController();
    const timer = setTimeout(() => expired.abort(), REQUEST_TIMEOUT_MS);
    const deadline = AbortSignal.any([this.#stop.signal, expired.signal]);
    try {
      return await this.#readLine(fd, buffer, deadline);
    } finally {
      clearTimeout(timer);
    }
  }

  async #readLine(
    fd: number,
    buffer: Uint8Array,
    deadline: AbortSignal,
  ): Promise<string | null> {
    let filled = 0;
    while (true) {
      const n = filled < buffer.length
        ? receive(fd, buffer.subarray(filled))
        : WOULD_BLOCK;
      if (n === 0) return null;
      if (n > 0) {
        const newline = buffer.subarray(filled, filled + n).indexOf(0x0a);
        filled += n;
        if (newline >= 0) {
          const end = filled - n + newline;
          if (end + 1 !== filled) {
            throw new Error("unexpected bytes after the request");
          }
          return new TextDecoder().decode(buffer.subarray(0, end));
        }
        continue;
      }
      if (filled === buffer.length) {
        throw new Error(`request longer than ${ROUTER_LINE_LIMIT} bytes`);
      }
      if (!(await reactor().readable(fd, deadline))) {
        if (!this.#stop.signal.aborted) {
          this.#refusals.refused(
            "request timeout",
            `router connection closed: no request within ${REQUEST_TIMEOUT_MS} ms`,
          );
        }
        return null;
      }
    }
  }

  /**
   * Waits until the terminal closes its registration (or the daemon
   * closes). The terminal sends nothing after its request: bytes from it
   * end the registration too, so a chatty peer costs nothing but its
   * registration.
   */
  async #awaitEnd(fd: number) {
    const scratch = new Uint8Array(64);
    while (await reactor().readable(fd, this.#stop.signal)) {
      let n;
      try {
        n = receive(fd, scratch);
      } catch {
        return; // reset
      }
      if (n === WOULD_BLOCK) continue;
      if (n > 0) {
        this.#refusals.refused(
          "chatter",
          "registration ended: the terminal sent bytes after its request",
        );
      }
      return;
    }
  }
}

/** Sends an answer line without waiting; false if it did not all go out. */
function answer(fd: number, value: RouterAnswer): boolean {
  const line = encoder.encode(encodeRouterAnswer(value));
  try {
    return sendSome(fd, line) === line.length;
  } catch {
    return false;
  }
}
