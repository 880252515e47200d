/**
 * The small protocol between a terminal process and the daemon's router
 * socket: one JSON request line, one JSON answer line, and a registration
 * that lives as long as the connection.
 *
 *     terminal -> {"op":"register","id":"<32 hex>","socket":"/abs/path"}
 *     router   -> {"ok":true} | {"ok":false,"error":"..."}
 *
 * @module
 */

import { errorMessage } from "../log.ts";
import { withDeadline } from "../deadline.ts";
import { readLine } from "./line_reader.ts";

/** Default path of the router socket for a daemon run as root. */
export const DEFAULT_ROUTER_PATH = "/run/et/router.sock";

/** Longest router request or answer line. */
export const ROUTER_LINE_LIMIT = 4096;

/** The router socket path: $ET_ROUTER_SOCKET, else the default. */
export function routerPathFromEnv(): string {
  return Deno.env.get("ET_ROUTER_SOCKET") ?? DEFAULT_ROUTER_PATH;
}

/** A registration request, as the router receives it. */
export interface RegisterRequest {
  /** Session id, 32 lowercase hex digits. */
  id: string;
  /** Absolute path of the terminal's relay socket. */
  socket: string;
}

/** Parses a request line; null when it is not a well-formed registration. */
export function decodeRegisterRequest(line: string): RegisterRequest | null {
  let value;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (
    value?.op !== "register" || typeof value.id !== "string" ||
    !/^[0-9a-f]{32}$/.test(value.id) || typeof value.socket !== "string" ||
    !value.socket.startsWith("/")
  ) return null;
  return { id: value.id, socket: value.socket };
}

const encoder = new TextEncoder();

/**
 * Registers a session with the daemon's router; resolves with the open
 * registration connection (closing it unregisters), or throws a one-line
 * Error saying why not.
 */
export async function registerSession(
  routerPath: string,
  idHex: string,
  socketPath: string,
  timeoutMs = 5000,
): Promise<Deno.Conn> {
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ transport: "unix", path: routerPath });
  } catch (error) {
    throw new Error(
      `cannot reach the et server's router at ${routerPath} (is \`et server\` running?): ${
        errorMessage(error)
      }`,
    );
  }
  let answer;
  try {
    await conn.write(
      encoder.encode(
        JSON.stringify({ op: "register", id: idHex, socket: socketPath }) +
          "\n",
      ),
    );
    const line = await withDeadline(
      readLine(conn, ROUTER_LINE_LIMIT),
      timeoutMs,
      "the et server's router did not answer",
      () => conn.close(),
    );
    answer = line ? JSON.parse(line) : null;
  } catch (error) {
    try {
      conn.close();
    } catch { /* closed */ }
    throw new Error(
      `registering with the et server failed: ${errorMessage(error)}`,
    );
  }
  if (!answer?.ok) {
    conn.close();
    throw new Error(
      `the et server refused the session: ${answer?.error ?? "no answer"}`,
    );
  }
  return conn;
}
