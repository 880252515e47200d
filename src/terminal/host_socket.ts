/**
 * The per-user host's socket, and the launcher's way to it. One host
 * process (`et terminal --host`) holds all of a user's sessions; it
 * listens on `<runtime dir>/host-<key>.sock` (mode 0600 in the user's 0700
 * directory), where `<key>` names the daemon router the host registers
 * with (8 hex of its path's SHA-256: one host per user and daemon). One
 * JSON request line, one answer line:
 *
 *     {"op":"new","bootstrap":"<the client's line>","env":{…}}
 *         -> the session's ready line (`ET_TERMINAL_READY {…}`),
 *            a refusal (`ET_TERMINAL_REFUSED …`), `error: <why>`,
 *            or `ET_HOST_CLOSING` (this host is on its way out: retry)
 *     {"op":"status"} -> {"pid":P,"sessions":[{"id":"<32 hex>","pid":Q}]}
 *
 * `env` is the launcher's login environment (`SHELL`, `HOME`, `PATH`,
 * `LANG`…, and `SSH_CONNECTION`): the session's program starts in it, and
 * in no-root mode the host listens on the address ssh reached.
 *
 * Starting the host is race-free: a launcher that finds no host takes an
 * exclusive lock on `host-<key>.lock`, tries the socket again (another
 * launcher may just have started one), and only then removes a stale
 * socket and starts the host, releasing the lock once the host listens.
 * Two launchers at once end with one host.
 *
 * @module
 */

import { sleep, withDeadline, withEarlyDeadline } from "../deadline.ts";
import { errorMessage } from "../log.ts";
import { LineReader } from "../session/line_reader.ts";
import { spawnDetachedRole } from "./local_io.ts";

const encoder = new TextEncoder();

/**
 * The host process's name (`/proc/<pid>/comm`, as `ps -e` and `pgrep`
 * show it): its command line is the launcher's when a launcher became it.
 */
export const HOST_PROCESS_NAME = "et-host";

/** The host's first stdout line once it listens. */
export const HOST_READY = "ET_HOST_READY";

/** The host's answer to a `new` it will not serve because it is closing. */
export const HOST_CLOSING = "ET_HOST_CLOSING";

/** The host closed the connection without an answer (it was closing). */
class HostGoneError extends Error {}

/** Longest a request line may be (a bootstrap line is at most 16 KiB). */
export const HOST_REQUEST_LIMIT = 64 * 1024;

/** How long a launcher tries to reach (or start) a host. */
const HOST_START_TIMEOUT_MS = 20_000;

/**
 * How long a `new` request may take: the session registers with the daemon
 * (bounded by 5 s) or opens its port.
 */
const NEW_SESSION_TIMEOUT_MS = 20_000;

/** The 8-hex key that names the host of the daemon router `routerPath`. */
export async function hostKey(routerPath: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    encoder.encode(routerPath),
  );
  return [...new Uint8Array(digest).subarray(0, 4)]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** Paths of the host of `routerPath` in the runtime directory `dir`. */
export async function hostPaths(
  dir: string,
  routerPath: string,
): Promise<{ socket: string; lock: string; log: string }> {
  const key = await hostKey(routerPath);
  return {
    socket: `${dir}/host-${key}.sock`,
    lock: `${dir}/host-${key}.lock`,
    log: `${dir}/terminal-${key}.log`,
  };
}

/**
 * Sends one request line to the host at `socketPath`; resolves with its
 * answer line. Throws `Deno.errors.NotFound` / `ConnectionRefused` when no
 * host listens there.
 */
export async function hostRequest(
  socketPath: string,
  request: Record<string, unknown>,
  timeoutMs = NEW_SESSION_TIMEOUT_MS,
): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path: socketPath });
  try {
    await conn.write(encoder.encode(JSON.stringify(request) + "\n"));
    const line = await withDeadline(
      new LineReader(conn, HOST_REQUEST_LIMIT).next(),
      timeoutMs,
      "the session host did not answer in time",
      () => conn.close(),
    );
    if (line === null) {
      throw new HostGoneError("the session host closed the socket");
    }
    return line;
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

/** True for the errors of a connect where nobody listens. */
function noListener(error: unknown): boolean {
  return error instanceof Deno.errors.NotFound ||
    error instanceof Deno.errors.ConnectionRefused;
}

/**
 * True when the host went away under a request (it closed its listener
 * with ours still in the queue): a fresh host gets the request.
 */
function hostWentAway(error: unknown): boolean {
  return error instanceof HostGoneError ||
    error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe;
}

/**
 * The launcher's `new`: sends `request` to the user's host of
 * `routerPath`, starting that host first if none runs. Resolves with the
 * host's answer line (never {@link HOST_CLOSING}: a closing host's answer
 * is retried on a fresh one).
 */
export async function requestFromHost(
  dir: string,
  routerPath: string,
  request: Record<string, unknown>,
): Promise<string> {
  const paths = await hostPaths(dir, routerPath);
  const deadline = performance.now() + HOST_START_TIMEOUT_MS;
  let lastError: unknown = null;
  while (performance.now() < deadline) {
    try {
      const answer = await hostRequest(paths.socket, request);
      if (answer !== HOST_CLOSING) return answer;
      await sleep(20); // it unlinks its socket at once; then we start one
      continue;
    } catch (error) {
      lastError = error;
      if (hostWentAway(error)) continue;
      if (!noListener(error)) throw error;
    }
    try {
      await startHost(paths, deadline);
    } catch (error) {
      lastError = error;
      await sleep(50);
    }
  }
  throw new Error(
    `could not start the session host: ${
      lastError ? errorMessage(lastError) : "timed out"
    }`,
  );
}

/**
 * Starts the user's host of `routerPath` if none listens, and resolves once
 * one does, or once starting it failed (never rejects: {@link
 * requestFromHost}, which follows, starts it again and says why not). The
 * launcher calls it as soon as it knows a `new` is asked, so that the
 * host's start-up overlaps the launcher's own work before its request.
 *
 * With `becomeHost`, the host is this process instead of a new one
 * (called under the lock, once no host answers): resolves with what it
 * returned; null when a host runs elsewhere (or `becomeHost` failed).
 */
export async function startHostIfNone<T>(
  dir: string,
  routerPath: string,
  becomeHost?: () => Promise<T>,
): Promise<T | null> {
  try {
    const paths = await hostPaths(dir, routerPath);
    try {
      (await Deno.connect({ transport: "unix", path: paths.socket })).close();
      return null; // one runs
    } catch (error) {
      if (!noListener(error)) return null;
    }
    return await startHost(
      paths,
      performance.now() + HOST_START_TIMEOUT_MS,
      becomeHost,
    );
  } catch {
    return null; // requestFromHost tries again
  }
}

/**
 * Under the host lock: if still no host answers, removes a stale socket and
 * starts `et terminal --host` detached (or becomes the host, with
 * `becomeHost`), and waits until it listens.
 */
async function startHost<T>(
  paths: { socket: string; lock: string },
  deadline: number,
  becomeHost?: () => Promise<T>,
): Promise<T | null> {
  const lock = await Deno.open(paths.lock, {
    create: true,
    write: true,
    mode: 0o600,
  });
  try {
    // No node timers loaded for it before the host starts (~5 ms; the
    // launcher loads them in its wait for the host's line, while the host
    // starts).
    await withEarlyDeadline(
      lock.lock(true),
      Math.max(0, deadline - performance.now()),
      "another launcher held the host lock too long",
    );
    // Someone may have started a host while we waited for the lock.
    try {
      const conn = await Deno.connect({
        transport: "unix",
        path: paths.socket,
      });
      conn.close();
      return null;
    } catch (error) {
      if (!noListener(error)) throw error;
    }
    // A socket nobody listens on is a dead host's: the new host replaces it.
    if (becomeHost) return await becomeHost();
    await spawnHost(deadline);
    return null;
  } finally {
    lock.close(); // releases the lock
  }
}

/** Starts the host detached from ssh; resolves once it says it listens. */
async function spawnHost(deadline: number): Promise<void> {
  const line = await spawnDetachedRole(
    "--host",
    null,
    Math.max(0, deadline - performance.now()),
    "the session host did not start in time",
  );
  if (line !== HOST_READY) {
    throw new Error(line?.replace(/^error: /, "") || "the host exited");
  }
}
