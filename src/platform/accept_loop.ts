/**
 * The accept loop of a descriptor listener (`socket.ts`), as hard to stop
 * as the transport's `acceptEach` for Deno listeners: only its signal ends
 * it. A connection that died in the queue is skipped; running out of
 * descriptors or memory pauses it briefly (the kernel keeps the queue) and
 * it carries on; nothing a peer does can end it.
 *
 * @module
 */

import { EBADF, EINVAL, EMFILE, ENFILE, ENOBUFS, ENOMEM } from "./libc.ts";
import { reactor } from "./reactor.ts";
import { accept, type Accepted, closeSocket, SocketError } from "./socket.ts";

/** Accepts in a row before letting the rest of the program run. */
const BURST = 64;

/** Pause after running out of descriptors or memory. */
const SHORTAGE_PAUSE_MS = 50;

/** Options of {@link acceptEachFd}. */
export interface AcceptEachFdOptions {
  /** Ends the loop (the caller closes the listener afterwards). */
  signal: AbortSignal;
  /** Hears of shortages (EMFILE, ENFILE, ENOBUFS, ENOMEM) and other errors. */
  onError?: (error: Error) => void;
}

/**
 * Calls `handle` with every connection accepted on listener `fd` until
 * `options.signal` aborts. `handle` owns the connection's descriptor; if
 * it throws, the descriptor is closed and the loop goes on. Throws only at
 * once, if the program's reactor cannot be made; never later.
 *
 * @example
 * ```ts
 * const stop = new AbortController();
 * const { fd } = listenTcp("0.0.0.0", 2022);
 * const serving = acceptEachFd(fd, ({ fd, peer }) => serve(fd, peer), { signal: stop.signal });
 * ```
 */
export async function acceptEachFd(
  fd: number,
  handle: (connection: Accepted) => void,
  options: AcceptEachFdOptions,
): Promise<void> {
  const { signal, onError } = options;
  // Made now, while descriptors are plentiful: the loop must not need a new
  // one (epoll's) at a moment when they have run out.
  const readiness = reactor();
  let burst = 0;
  while (!signal.aborted) {
    let accepted: Accepted | null;
    try {
      accepted = accept(fd);
    } catch (error) {
      const code = error instanceof SocketError ? error.code : -1;
      if (code === EBADF || code === EINVAL) return; // the listener is gone
      const shortage = code === EMFILE || code === ENFILE ||
        code === ENOBUFS || code === ENOMEM || code === -1;
      if (shortage) {
        onError?.(error as Error);
        await pause(SHORTAGE_PAUSE_MS, signal);
      }
      // Anything else concerns one connection (ECONNABORTED, EPROTO,
      // EPERM from a firewall...): take the next.
      continue;
    }
    if (accepted === null) {
      burst = 0;
      await readiness.readable(fd, signal);
      continue;
    }
    try {
      handle(accepted);
    } catch (error) {
      closeSocket(accepted.fd);
      onError?.(error as Error);
    }
    if (++burst >= BURST) {
      burst = 0;
      await pause(0, signal);
    }
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}
