/**
 * The protocol between a terminal process and the daemon's router socket.
 * The terminal sends one request line and gets one answer line; the
 * registration then lives as long as the connection, and the daemon hands
 * each client connection for the session over on it: one notice line per
 * connection, sent together with the connection's socket descriptor
 * (SCM_RIGHTS). The daemon never connects anywhere.
 *
 *     terminal -> {"op":"register","id":"<32 hex>"}
 *     router   -> {"ok":true} | {"ok":false,"error":"..."}
 *     router   -> {"op":"connection","peer":"<address:port>","hello":"<hex>"}
 *                 + the client's TCP socket, once per client connection
 *
 * Who registers is not part of the request: the router asks the kernel
 * (the socket's peer credentials).
 *
 * @module
 */

/** Default path of the router socket for a daemon run as root. */
export const DEFAULT_ROUTER_PATH = "/run/et/router.sock";

/** Longest router request, answer or notice line, newline included. */
export const ROUTER_LINE_LIMIT = 4096;

/** The router socket path: $ET_ROUTER_SOCKET, else the default. */
export function routerPathFromEnv(): string {
  return Deno.env.get("ET_ROUTER_SOCKET") ?? DEFAULT_ROUTER_PATH;
}

/** A registration request, as the router receives it. */
export interface RegisterRequest {
  /** Session id, 32 lowercase hex digits. */
  id: string;
}

/** A client connection handed to the terminal (the socket comes apart). */
export interface ConnectionNotice {
  /** The client's address and port, for logs. */
  peer: string;
  /**
   * The frame the daemon read to route the connection (the client's
   * HELLO, length prefix included): the stream continues after it.
   */
  hello: Uint8Array;
}

/** The router's answer to a request. */
export type RouterAnswer = { ok: true } | { ok: false; error: string };

/** The request line (newline included) registering session `id`. */
export function encodeRegisterRequest(id: string): string {
  return JSON.stringify({ op: "register", id }) + "\n";
}

/**
 * Parses a request line (without its newline): the request, or the reason
 * it is refused.
 */
export function decodeRegisterRequest(
  line: string,
): RegisterRequest | { error: string } {
  let value;
  try {
    value = JSON.parse(line);
  } catch {
    return { error: "malformed registration" };
  }
  if (
    value?.op !== "register" || typeof value.id !== "string" ||
    !/^[0-9a-f]{32}$/.test(value.id)
  ) return { error: "malformed registration" };
  if ("socket" in value) {
    // A terminal from before connections were handed over: it waits on a
    // socket of its own that this daemon will never connect to.
    return {
      error:
        "outdated et terminal: this et server hands connections over instead of connecting to a socket",
    };
  }
  return { id: value.id };
}

/** The answer line (newline included). */
export function encodeRouterAnswer(answer: RouterAnswer): string {
  return JSON.stringify(answer) + "\n";
}

/** Parses an answer line; a line that is not one is a refusal. */
export function decodeRouterAnswer(line: string): RouterAnswer {
  try {
    const value = JSON.parse(line);
    if (value?.ok === true) return { ok: true };
    if (value?.ok === false && typeof value.error === "string") {
      return { ok: false, error: value.error };
    }
  } catch {
    // falls through
  }
  return { ok: false, error: "unintelligible answer" };
}

const HEX = /^(?:[0-9a-f]{2})+$/;

/** The notice line (newline included) for one handed-over connection. */
export function encodeConnectionNotice(notice: ConnectionNotice): string {
  const hello = Array.from(
    notice.hello,
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  return JSON.stringify({ op: "connection", peer: notice.peer, hello }) +
    "\n";
}

/** Parses a notice line (without its newline); null if it is not one. */
export function decodeConnectionNotice(line: string): ConnectionNotice | null {
  let value;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (
    value?.op !== "connection" || typeof value.peer !== "string" ||
    typeof value.hello !== "string" || !HEX.test(value.hello)
  ) return null;
  const hello = new Uint8Array(value.hello.length / 2);
  for (let i = 0; i < hello.length; i++) {
    hello[i] = parseInt(value.hello.slice(2 * i, 2 * i + 2), 16);
  }
  return { peer: value.peer, hello };
}
