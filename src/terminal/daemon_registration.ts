/**
 * The terminal process's side of the daemon's router socket: register the
 * session id, then take the client connections the daemon hands over, each
 * one a notice line with the client's TCP socket attached (SCM_RIGHTS).
 * The terminal then talks to the client over that socket directly; the
 * daemon is out of the path.
 *
 * @module
 */

import { errorMessage } from "../log.ts";
import {
  decodeConnectionNotice,
  decodeRouterAnswer,
  encodeRegisterRequest,
  ROUTER_LINE_LIMIT,
} from "../session/mod.ts";
import { reactor } from "../platform/reactor.ts";
import {
  closeSocket,
  connectUnix,
  receiveWithDescriptors,
  sendSome,
  WOULD_BLOCK,
} from "../platform/socket.ts";
import type { SocketPipe } from "../platform/socket_pipe.ts";

// node:net (under SocketPipe) takes ~12 ms to load: not on the way of a
// new session's program, which starts before its registration.
let socketPipeModule:
  | Promise<typeof import("../platform/socket_pipe.ts")>
  | undefined;

function loadSocketPipe() {
  return socketPipeModule ??= import("../platform/socket_pipe.ts");
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A client connection the daemon handed over. */
export interface HandedConnection {
  /**
   * The client's connection as a byte pipe, starting with the HELLO the
   * daemon read from it; ready for `serverHandshake`.
   */
  pipe: SocketPipe;
  /** The client's address and port, for logs. */
  peer: string;
}

/**
 * A live registration with the daemon: it lasts until {@link close} or
 * until the daemon goes away (then {@link accept} returns null).
 *
 * @example
 * ```ts
 * const registration = await DaemonRegistration.register(routerPath, idHex);
 * for (let c; (c = await registration.accept()) !== null;) {
 *   serverHandshake(c.pipe, lookup, { peer: c.peer });
 * }
 * ```
 */
export class DaemonRegistration {
  #fd: number;
  #pending = new Uint8Array(0);
  #descriptors: number[] = [];
  #scratch = new Uint8Array(ROUTER_LINE_LIMIT);
  #closed = new AbortController();

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /**
   * Registers session `idHex` on the router socket at `routerPath`;
   * resolves once the daemon accepted, or throws a one-line Error saying
   * why not (unreachable, refused, no answer within `timeoutMs`).
   */
  static async register(
    routerPath: string,
    idHex: string,
    timeoutMs = 5000,
  ): Promise<DaemonRegistration> {
    let fd: number;
    try {
      fd = connectUnix(routerPath);
    } catch (error) {
      throw new Error(
        `cannot reach the et server's router at ${routerPath} (is \`et server\` running?): ${
          errorMessage(error)
        }`,
      );
    }
    const registration = new DaemonRegistration(fd);
    let answer;
    const expired = new AbortController();
    const timer = setTimeout(() => expired.abort(), timeoutMs);
    try {
      const request = encoder.encode(encodeRegisterRequest(idHex));
      if (sendSome(fd, request) !== request.length) {
        throw new Error("the router socket took only part of the request");
      }
      const line = await registration.#nextLine(expired.signal);
      if (line === null) {
        throw new Error(
          expired.signal.aborted
            ? "the et server's router did not answer"
            : "the et server's router closed the connection",
        );
      }
      answer = decodeRouterAnswer(line);
    } catch (error) {
      registration.close();
      throw new Error(
        `registering with the et server failed: ${errorMessage(error)}`,
      );
    } finally {
      clearTimeout(timer);
    }
    if (!answer.ok) {
      registration.close();
      throw new Error(`the et server refused the session: ${answer.error}`);
    }
    // Loads while the client is on its way, not before the program starts.
    loadSocketPipe().catch(() => {});
    return registration;
  }

  /**
   * The next connection the daemon hands over, or null once the
   * registration is over (the daemon went away, spoke out of turn, or
   * {@link close} was called). One caller at a time.
   */
  async accept(): Promise<HandedConnection | null> {
    while (true) {
      const line = await this.#nextLine(this.#closed.signal);
      if (line === null) {
        this.close();
        return null;
      }
      const notice = decodeConnectionNotice(line);
      const fd = this.#descriptors.shift();
      if (fd === undefined) {
        // A notice without its socket: out of step with the daemon.
        this.close();
        return null;
      }
      if (!notice) {
        closeSocket(fd);
        continue;
      }
      const { SocketPipe } = await loadSocketPipe();
      return { pipe: new SocketPipe(fd, notice.hello), peer: notice.peer };
    }
  }

  /** Ends the registration; a pending {@link accept} returns null. */
  close(): void {
    if (this.#closed.signal.aborted) return;
    this.#closed.abort();
    closeSocket(this.#fd);
    for (const fd of this.#descriptors.splice(0)) closeSocket(fd);
  }

  /** The next line from the daemon, or null (end, error, or `signal`). */
  async #nextLine(signal: AbortSignal): Promise<string | null> {
    while (!this.#closed.signal.aborted) {
      const newline = this.#pending.indexOf(0x0a);
      if (newline >= 0) {
        const line = decoder.decode(this.#pending.subarray(0, newline));
        this.#pending = this.#pending.slice(newline + 1);
        return line;
      }
      if (this.#pending.length >= ROUTER_LINE_LIMIT) return null;
      let received;
      try {
        received = receiveWithDescriptors(
          this.#fd,
          this.#scratch,
          this.#descriptors,
        );
      } catch {
        return null; // reset
      }
      // Descriptors were dropped: notices and sockets would pair wrongly.
      if (received.truncated || received.count === 0) return null;
      if (received.count === WOULD_BLOCK) {
        if (!(await reactor().readable(this.#fd, signal))) return null;
        continue;
      }
      const joined = new Uint8Array(this.#pending.length + received.count);
      joined.set(this.#pending);
      joined.set(
        this.#scratch.subarray(0, received.count),
        this.#pending.length,
      );
      this.#pending = joined;
    }
    return null;
  }
}
