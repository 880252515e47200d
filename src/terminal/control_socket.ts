/**
 * The owner-only control socket of a session process, and the calls the
 * launcher makes on it. Each session listens on `<runtime dir>/<id>.ctl`
 * (mode 0600 in the user's 0700 directory, so only that user and root can
 * connect). One JSON request line, one JSON answer line:
 *
 *     {"op":"status"}                          -> SessionInfo
 *     {"op":"attach","passkey":"<64 hex>",
 *      "cols":C,"rows":R[,"keepaliveMs":K]}    -> {"ok":true}
 *     {"op":"end"}                             -> {"ok":true}
 *     {"op":"relay"}                           -> {"ok":true}, then the
 *                                                 connection is a client's
 *                                                 pipe (HELLO first)
 *     {"op":"fault","kind":"pump"|"stray"}     -> {"ok":true}
 *         (tests only: answered only by a host started with
 *          ET_TEST_FAULTS=1; elsewhere a malformed request)
 *
 * The user's host process (`et terminal --host`) serves one such socket
 * per session it holds.
 *
 * `attach` is how a new client takes a living session over: the passkey
 * it carries was just made by that client and crossed only ssh and this
 * socket; the session retires its old keys for it.
 *
 * `relay` is how `et relay` (run by a client's ssh, `--over-ssh`) joins:
 * after the answer the same socket carries the client's sealed frames,
 * and the session runs the handshake on it as on any other connection.
 * The relay holds no key; only this user (or root) can connect here.
 *
 * @module
 */

import { withDeadline } from "../deadline.ts";
import { errorMessage, logger } from "../log.ts";
import { LineReader } from "../session/line_reader.ts";
import { type SessionInfo, validSize } from "../session/terminal_protocol.ts";
import { acceptEach } from "../transport/accept_loop.ts";
import { fromHex } from "../transport/session_secret.ts";

const log = logger("control");
const encoder = new TextEncoder();

/** Name of a session's control socket in the runtime directory. */
const CONTROL_NAME = /^([0-9a-f]{32})\.ctl$/;

/** Longest wait for a request or an answer on the control socket. */
const CONTROL_TIMEOUT_MS = 5000;

/** Path of the control socket of session `idHex` in `dir`. */
export function controlSocketPath(dir: string, idHex: string): string {
  return `${dir}/${idHex}.ctl`;
}

/**
 * What a session process (or a jump relay, whose `status` is its own)
 * does for its control socket.
 */
export interface ControlHandlers<S = SessionInfo> {
  /** The session as `--list` shows it. */
  status(): S;
  /**
   * Retires the current client's keys for `passkey`; `keepaliveMs` is the
   * new client's keepalive interval (`et -k`), if it chose one.
   */
  attach(
    passkey: Uint8Array,
    cols: number,
    rows: number,
    keepaliveMs?: number,
  ): Promise<void>;
  /** Ends the session. */
  end(): Promise<void>;
  /**
   * Takes `conn` (answered already) as a client connection: from now on
   * it is the handler's to close. Absent where there is no session to
   * join (a jump relay): the request is refused.
   */
  relay?(conn: Deno.Conn): void;
  /** Tests only: injects a fault into the session (absent: refused). */
  fault?(kind: "pump" | "stray"): void;
}

/**
 * Listens on the control socket until `signal` aborts; answers each
 * request with the handlers. Malformed requests get an error answer and a
 * log line, never an exception.
 */
export async function serveControl<S>(
  path: string,
  handlers: ControlHandlers<S>,
  signal: AbortSignal,
): Promise<void> {
  const listener = Deno.listen({ transport: "unix", path });
  await Deno.chmod(path, 0o600);
  signal.addEventListener("abort", () => {
    try {
      listener.close();
    } catch { /* closed */ }
  });
  try {
    await acceptEach(listener, (conn) => {
      answerRequest(conn, handlers).then((handedOver) => {
        if (handedOver) return;
        try {
          conn.close();
        } catch { /* closed */ }
      });
    });
  } finally {
    await Deno.remove(path).catch(() => {});
  }
}

/** Answers one request; true when `conn` went to `handlers.relay`. */
async function answerRequest<S>(
  conn: Deno.Conn,
  handlers: ControlHandlers<S>,
): Promise<boolean> {
  const reply = (value: unknown) =>
    conn.write(encoder.encode(JSON.stringify(value) + "\n")).catch(() => 0);
  try {
    // On expiry the answer below says so; the caller closes the conn.
    const line = await withDeadline(
      new LineReader(conn, 4096).next(),
      CONTROL_TIMEOUT_MS,
      "no complete request within 5 s",
    );
    if (line === null) return false;
    const request = JSON.parse(line);
    switch (request?.op) {
      case "status":
        await reply(handlers.status());
        return false;
      case "attach": {
        const { passkey, cols, rows, keepaliveMs } = request;
        if (
          typeof passkey !== "string" || !/^[0-9a-f]{64}$/.test(passkey) ||
          !validSize(cols) || !validSize(rows) ||
          (keepaliveMs !== undefined &&
            (!Number.isSafeInteger(keepaliveMs) || keepaliveMs <= 0))
        ) break;
        await handlers.attach(fromHex(passkey, 32), cols, rows, keepaliveMs);
        await reply({ ok: true });
        return false;
      }
      case "end":
        await handlers.end();
        await reply({ ok: true });
        return false;
      case "relay": {
        const take = handlers.relay?.bind(handlers);
        if (!take) break;
        // The relay sends nothing more until it has this answer, so the
        // line reader above holds no byte of the client's.
        if ((await reply({ ok: true })) === 0) return false;
        take(conn);
        return true;
      }
      case "fault":
        if (
          !handlers.fault ||
          (request.kind !== "pump" && request.kind !== "stray")
        ) break;
        handlers.fault(request.kind);
        await reply({ ok: true });
        return false;
    }
    log.warn("refused a malformed control request");
    await reply({ ok: false, error: "malformed request" });
  } catch (error) {
    log.warn(`control request failed: ${errorMessage(error)}`);
    await reply({ ok: false, error: errorMessage(error) });
  }
  return false;
}

/** Sends one request to a session's control socket; returns its answer. */
export async function controlRequest(
  path: string,
  request: Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    await conn.write(encoder.encode(JSON.stringify(request) + "\n"));
    const line = await withDeadline(
      new LineReader(conn, 64 * 1024).next(),
      CONTROL_TIMEOUT_MS,
      "the session did not answer",
      () => conn.close(),
    );
    if (line === null) throw new Error("the session closed the connection");
    return JSON.parse(line);
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

/** A session found in the runtime directory. */
export interface FoundSession {
  info: SessionInfo;
  /** Its control socket. */
  controlPath: string;
}

/**
 * Every live session of this user in `dir`, newest first. A control socket
 * nobody answers on belongs to a session process that died: it is removed.
 */
export async function findSessions(dir: string): Promise<FoundSession[]> {
  const found: FoundSession[] = [];
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (CONTROL_NAME.test(entry.name)) names.push(entry.name);
  }
  await Promise.all(names.map(async (name) => {
    const controlPath = `${dir}/${name}`;
    try {
      const info = await controlRequest(controlPath, { op: "status" });
      if (typeof info.id === "string") {
        found.push({ info: info as unknown as SessionInfo, controlPath });
      }
    } catch (error) {
      if (error instanceof Deno.errors.ConnectionRefused) {
        await Deno.remove(controlPath).catch(() => {});
      }
    }
  }));
  return found.sort((a, b) => b.info.startedAt - a.info.startedAt);
}

/**
 * Picks the session to attach to: the one whose id starts with `target`
 * (any state: a hung client is taken over), or with no target the most
 * recently seen detached one. Throws a one-line Error otherwise.
 */
export function chooseSession(
  sessions: FoundSession[],
  target: string,
): FoundSession {
  if (target) {
    const matches = sessions.filter((s) => s.info.id.startsWith(target));
    if (matches.length === 1) return matches[0];
    if (matches.length === 0) throw new Error(`no session ${target} here`);
    throw new Error(
      `${target} names ${matches.length} sessions; give more of the id`,
    );
  }
  const detached = sessions.filter((s) => s.info.state === "detached")
    .sort((a, b) => b.info.lastSeenAt - a.info.lastSeenAt);
  if (detached.length === 0) {
    throw new Error(
      sessions.length === 0
        ? "no et sessions here"
        : "no detached session here (name one of et --list to take it over)",
    );
  }
  return detached[0];
}
