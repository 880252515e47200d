/**
 * Session sharing: a second `et` to the same place asks a running `et`
 * client for a new session instead of logging in with ssh again.
 *
 * The running client already holds an authenticated, encrypted connection
 * to the user's host process on that machine. It listens on an owner-only
 * Unix socket in the user's private runtime directory (`/tmp/et-<uid>`,
 * 0700), named after everything that decides where ssh would land
 * ({@link shareSocketPath}). A new client that would make the same ssh
 * login connects there and sends its `new` bootstrap line (the new
 * session's secret included: it travels only over this socket and the
 * encrypted connection, never argv, env or a log). The running client
 * checks the peer's uid (SO_PEERCRED), passes the line to the host as a
 * `session-new` control message, and hands back the host's answer, which is
 * exactly what the launcher would have printed. The new client then dials
 * the new session as usual. Anything else (no running client, a refusal, a
 * timeout) and the new client bootstraps over ssh as before.
 *
 * @module
 */

import { withDeadline } from "../deadline.ts";
import { errorMessage, logger } from "../log.ts";
import {
  CONTROL_LINE_LIMIT,
  decodeBootstrap,
  decodeReady,
  encodeControl,
  LineReader,
  type ReadyReport,
} from "../session/mod.ts";
import type { Channel, EternalConnection } from "../transport/mod.ts";
import type { Accepted } from "../platform/socket.ts";
import type { SocketPipe } from "../platform/socket_pipe.ts";

const log = logger("share");

/**
 * The sockets of platform/, loaded when a client may share: a client that
 * never shares does not pay for node:net.
 */
async function importPlatform() {
  const [accept, reactor, socket, pipe] = await Promise.all([
    import("../platform/accept_loop.ts"),
    import("../platform/reactor.ts"),
    import("../platform/socket.ts"),
    import("../platform/socket_pipe.ts"),
  ]);
  return { ...accept, ...reactor, ...socket, ...pipe };
}

type Platform = Awaited<ReturnType<typeof importPlatform>>;

let platformLoading: Promise<Platform> | undefined;

/** {@linkcode importPlatform}, once. */
function loadPlatform(): Promise<Platform> {
  return platformLoading ??= importPlatform();
}

/**
 * Loads what sharing needs (node:net, ~15-25 ms) without waiting: a client
 * that will share calls it while its ssh logs in (its main thread idle
 * then), so the load does not land between the handshake and the first
 * prompt.
 */
export function preloadSharing(): void {
  loadPlatform().catch(() => {}); // a failure shows when sharing starts
}

/** How long the asking client waits for the running one to answer. */
export const SHARE_ANSWER_TIMEOUT_MS = 5000;

/** How long a request on the socket may take to arrive whole. */
const REQUEST_TIMEOUT_MS = 2000;

/** Longest request line on the socket (a bootstrap line is far shorter). */
const REQUEST_LIMIT = 16 * 1024;

const encoder = new TextEncoder();

/**
 * The socket of the running client that shares its connection to the same
 * place: `<dir>/share-<16 hex>.sock`, the hex a SHA-256 of `place` (the
 * ssh command line, the destination and what `ssh -G` resolved it to, the
 * et port and the remote command), so a different user, host, port or ssh
 * configuration never shares.
 */
export async function shareSocketPath(
  dir: string,
  place: unknown[],
): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    encoder.encode(JSON.stringify(place)),
  );
  const hex = [...new Uint8Array(digest).slice(0, 8)]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${dir}/share-${hex}.sock`;
}

/**
 * Asks the client sharing at `path` for a new session from `bootstrap`
 * (a `new` bootstrap line). Resolves with the ready report, or null when
 * nobody shares there or the answer is anything but ready (the caller
 * then bootstraps over ssh). Never throws.
 */
export async function askSharedSession(
  path: string,
  bootstrap: string,
  timeoutMs = SHARE_ANSWER_TIMEOUT_MS,
): Promise<ReadyReport | null> {
  let conn: Deno.UnixConn;
  try {
    // Ours only: the secret goes nowhere else (the directory is 0700 too).
    const info = await Deno.lstat(path);
    if (!info.isSocket || info.uid !== Deno.uid()) return null;
    conn = await Deno.connect({ transport: "unix", path });
  } catch {
    return null; // nobody shares: the usual way
  }
  try {
    await conn.write(
      encoder.encode(JSON.stringify({ op: "new", bootstrap }) + "\n"),
    );
    const line = await withDeadline(
      new LineReader(conn, REQUEST_LIMIT).next(),
      timeoutMs,
      "no answer in time",
      () => conn.close(),
    );
    const ready = line === null ? null : decodeReady(line);
    if (ready && "id" in ready) return ready;
    log.info(
      `the shared connection did not start a session: ${
        (line ?? "closed").slice(0, 200)
      }`,
    );
    return null;
  } catch (error) {
    log.info(`the shared connection did not answer: ${errorMessage(error)}`);
    return null;
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

/** What a sharing client lends the socket: its session's control channel. */
export interface ShareLink {
  /** Whether the connection is up now (requests are refused while not). */
  connected(): boolean;
  /** Writes a control message to the host. */
  send(message: Uint8Array): Promise<void>;
}

/**
 * The running client's side: listens at the share socket and passes each
 * request to the host over its connection ({@link ShareLink}); the host's
 * answers come back through {@link SessionShare.answer}.
 */
export class SessionShare {
  readonly #path: string;
  readonly #fd: number;
  readonly #link: ShareLink;
  readonly #platform: Platform;
  readonly #stop = new AbortController();
  readonly #pending = new Map<number, (answer: string) => void>();
  #serving: Promise<void>;
  #nextTag = 1;

  private constructor(
    path: string,
    fd: number,
    link: ShareLink,
    platform: Platform,
  ) {
    this.#path = path;
    this.#fd = fd;
    this.#link = link;
    this.#platform = platform;
    this.#serving = platform.acceptEachFd(
      fd,
      (accepted) => this.#serve(accepted),
      {
        signal: this.#stop.signal,
        onError: (error) => log.warn(`share socket: ${errorMessage(error)}`),
      },
    );
  }

  /**
   * Starts sharing at `path`, unless another live client shares there
   * already (null then). A socket nobody answers on is a dead client's and
   * is replaced.
   */
  static async offer(
    path: string,
    link: ShareLink,
  ): Promise<SessionShare | null> {
    try {
      const conn = await Deno.connect({ transport: "unix", path });
      conn.close();
      return null; // someone shares already
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionRefused) {
        await Deno.remove(path).catch(() => {});
      } else if (!(error instanceof Deno.errors.NotFound)) {
        log.info(`not sharing: ${errorMessage(error)}`);
        return null;
      }
    }
    const platform = await loadPlatform();
    let fd: number;
    try {
      fd = platform.listenUnix(path, 16);
      Deno.chmodSync(path, 0o600);
    } catch (error) {
      // Another client won the race for the path, or it is unusable.
      log.info(`not sharing: ${errorMessage(error)}`);
      return null;
    }
    log.info(`sharing this connection at ${path}`);
    return new SessionShare(path, fd, link, platform);
  }

  /** The host's answer to request `tag` (a `session-answer`). */
  answer(tag: number, answer: string): void {
    const resolve = this.#pending.get(tag);
    this.#pending.delete(tag);
    resolve?.(answer);
  }

  /**
   * Stops sharing: removes the socket, ends the accept loop, answers
   * pending requests with an error, and waits until no FFI wait is left
   * (one pending at exit can crash Deno).
   */
  async close(): Promise<void> {
    if (this.#stop.signal.aborted) return;
    await Deno.remove(this.#path).catch(() => {});
    this.#stop.abort();
    for (const resolve of this.#pending.values()) {
      resolve("error: the sharing client ended");
    }
    this.#pending.clear();
    await this.#serving.catch(() => {});
    this.#platform.closeSocket(this.#fd);
    await this.#platform.reactor().idle();
  }

  #serve(accepted: Accepted) {
    const { closeSocket, peerCredentials, SocketPipe } = this.#platform;
    let uid: number;
    try {
      uid = peerCredentials(accepted.fd).uid;
    } catch (error) {
      log.warn(`share socket: no credentials: ${errorMessage(error)}`);
      closeSocket(accepted.fd);
      return;
    }
    if (uid !== Deno.uid()) {
      log.warn(`share socket: refused uid ${uid}`);
      closeSocket(accepted.fd);
      return;
    }
    const pipe = new SocketPipe(accepted.fd);
    this.#request(pipe)
      .then(async (answer) => {
        if (answer !== null) await pipe.write(encoder.encode(answer + "\n"));
      })
      .catch((error) => log.info(`share request: ${errorMessage(error)}`))
      .finally(() => pipe.close());
  }

  /**
   * One request: its answer line (never the request in a log), or null
   * for a connection that sent nothing (another client checking that
   * someone shares here).
   */
  async #request(pipe: SocketPipe): Promise<string | null> {
    const line = await withDeadline(
      new LineReader(pipe, REQUEST_LIMIT).next(),
      REQUEST_TIMEOUT_MS,
      "no complete request in time",
      () => pipe.close(),
    );
    if (line === null) return null;
    let bootstrap: string;
    try {
      const request = JSON.parse(line);
      if (request?.op !== "new" || typeof request.bootstrap !== "string") {
        return "error: malformed share request";
      }
      bootstrap = request.bootstrap;
      const decoded = decodeBootstrap(bootstrap);
      if (decoded.op !== "new" || decoded.killOthers) {
        return "error: only a plain new session is shared";
      }
    } catch (error) {
      return `error: ${errorMessage(error)}`;
    }
    if (!this.#link.connected()) return "error: not connected now";
    const tag = this.#nextTag++;
    const message = encodeControl({ type: "session-new", tag, bootstrap });
    if (message.length > CONTROL_LINE_LIMIT) {
      return "error: the request is too long to share";
    }
    const answered = new Promise<string>((resolve) =>
      this.#pending.set(tag, resolve)
    );
    try {
      await this.#link.send(message);
      return await withDeadline(
        answered,
        SHARE_ANSWER_TIMEOUT_MS,
        "the host did not answer in time",
      );
    } finally {
      this.#pending.delete(tag);
    }
  }
}

/** A running client's sharing, as {@link shareConnection} started it. */
export interface ConnectionSharing {
  /** The host's answer to a request (a `session-answer` message). */
  answer(tag: number, answer: string): void;
  /** Stops sharing (the client is leaving); safe to call more than once. */
  close(): Promise<void>;
}

/**
 * Shares `connection` at `path` from its first connect on, until
 * {@link ConnectionSharing.close}: requests go to the host on the control
 * channel `control`.
 */
export function shareConnection(
  connection: EternalConnection,
  control: Channel,
  path: string,
): ConnectionSharing {
  let closed = false;
  let offered: Promise<SessionShare | null> | null = null;
  const offer = () => {
    offered ??= SessionShare.offer(path, {
      connected: () => connection.connected,
      send: (message) => control.write(message).then(() => {}),
    });
  };
  if (connection.connected) offer();
  else {
    connection.onEvent((event) => {
      if (event.type !== "disconnected" && !closed) offer();
    });
  }
  return {
    answer: (tag, answer) => {
      offered?.then((share) => share?.answer(tag, answer));
    },
    close: async () => {
      closed = true;
      await (await offered)?.close();
    },
  };
}
