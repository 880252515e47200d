/**
 * The daemon's session registry and its local Unix socket. A terminal
 * process registers `(session id, its own socket path)` and keeps the
 * registration connection open: when the process dies the connection closes
 * and the entry goes with it, so ids never go stale. A second registration
 * of a live id is refused, so no local user can take over another's session.
 *
 * Requests and answers are single JSON lines.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";
import { acceptEach } from "../transport/mod.ts";
import { withDeadline } from "../deadline.ts";
import {
  decodeRegisterRequest,
  readLine,
  ROUTER_LINE_LIMIT,
} from "../session/mod.ts";
import { checkTerminalSocket } from "./socket_check.ts";

const log = logger("router");

/** Where a session's terminal process listens. */
export interface Registration {
  socketPath: string;
}

const encoder = new TextEncoder();

/**
 * Session ids → terminal sockets, fed by the router socket.
 *
 * @example
 * ```ts
 * const router = await SessionRouter.listen("/run/et/router.sock");
 * router.lookup("0f1e...")?.socketPath;
 * ```
 */
export class SessionRouter {
  #sessions = new Map<string, Registration>();
  #listener: Deno.UnixListener;
  #path: string;
  #conns = new Set<Deno.Conn>();
  #serving: Promise<void>;

  private constructor(listener: Deno.UnixListener, path: string) {
    this.#listener = listener;
    this.#path = path;
    this.#serving = this.#serve();
  }

  /**
   * Listens on `path` (replacing a stale socket file), readable and
   * writable by everyone so any user's terminal can register; what it can
   * register is only its own fresh id.
   */
  static async listen(path: string): Promise<SessionRouter> {
    const dir = path.slice(0, path.lastIndexOf("/")) || "/";
    await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
    try {
      const info = await Deno.lstat(path);
      if (!info.isSocket) throw new Error(`${path} exists and is not a socket`);
      await Deno.remove(path);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const listener = Deno.listen({ transport: "unix", path });
    await Deno.chmod(path, 0o666);
    return new SessionRouter(listener, path);
  }

  /** Path of the router socket. */
  get path(): string {
    return this.#path;
  }

  /** The registration for a session id (hex), if it is live. */
  lookup(idHex: string): Registration | undefined {
    return this.#sessions.get(idHex);
  }

  /** How many sessions are registered. */
  get size(): number {
    return this.#sessions.size;
  }

  #serve(): Promise<void> {
    return acceptEach(this.#listener, (conn) => this.#handle(conn));
  }

  async #handle(conn: Deno.Conn) {
    this.#conns.add(conn);
    let registered: string | null = null;
    const answer = (value: unknown) =>
      conn.write(encoder.encode(JSON.stringify(value) + "\n"));
    try {
      // A registrant that never finishes its line must not hold a
      // connection (and its buffer) forever.
      const line = await withDeadline(
        readLine(conn, ROUTER_LINE_LIMIT),
        5000,
        "no registration line within 5 s",
        () => conn.close(),
      );
      if (line === null) return;
      const request = decodeRegisterRequest(line);
      if (!request) {
        log.warn("refused malformed registration");
        await answer({ ok: false, error: "malformed registration" });
        return;
      }
      const { id, socket: socketPath } = request;
      try {
        await checkTerminalSocket(socketPath);
      } catch (error) {
        log.warn(
          `refused registration of ${socketPath}: ${errorMessage(error)}`,
        );
        await answer({
          ok: false,
          error: `refused socket: ${errorMessage(error)}`,
        });
        return;
      }
      if (this.#sessions.has(id)) {
        log.warn(
          `refused second registration of live session ${id.slice(0, 8)}`,
        );
        await answer({ ok: false, error: "session id already registered" });
        return;
      }
      this.#sessions.set(id, { socketPath });
      registered = id;
      log.info(`registered session ${id.slice(0, 8)}`);
      await answer({ ok: true });
      // The registration lives as long as this connection.
      const sink = new Uint8Array(64);
      while ((await conn.read(sink)) !== null) { /* ignore chatter */ }
    } catch (error) {
      log.warn(`registration connection failed: ${errorMessage(error)}`);
    } finally {
      if (registered) {
        this.#sessions.delete(registered);
        log.info(`session ${registered.slice(0, 8)} unregistered`);
      }
      this.#conns.delete(conn);
      try {
        conn.close();
      } catch { /* already closed */ }
    }
  }

  /** Stops listening, drops every registration and removes the socket. */
  async close() {
    this.#listener.close();
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch { /* already closed */ }
    }
    await this.#serving;
    try {
      await Deno.remove(this.#path);
    } catch { /* gone */ }
  }
}
