/**
 * Readiness of many file descriptors, waited for on one worker thread: the
 * daemon watches its listeners, every not-yet-identified connection and
 * every registration at once without a thread (or a pending FFI call) per
 * descriptor, and the terminal watches its registration. Built on epoll
 * through libc; Linux only.
 *
 * One `epoll_wait` is in flight while anyone waits and none while nobody
 * does, so an idle program has no FFI call pending (a nonblocking FFI call
 * still running when Deno exits can crash it, and one keeps the event loop
 * alive).
 *
 * @module
 */

import { callDoubtingErrno, errno, errnoError, libc } from "./libc.ts";

/** epoll event: data to read. */
export const EPOLLIN = 0x001;
const EPOLLRDHUP = 0x2000;
const EPOLLONESHOT = 1 << 30;
/** `epoll_ctl` operation: add a descriptor. */
export const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
/** `epoll_ctl` operation: change the events watched for a descriptor. */
export const EPOLL_CTL_MOD = 3;
/** `epoll_create1` flag: close on exec. */
export const EPOLL_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
const EEXIST = 17;
const ENOENT = 2;

/**
 * Size of `struct epoll_event { uint32_t events; epoll_data_t data; }`:
 * packed on x86_64 (12 bytes), naturally aligned elsewhere (16 bytes).
 */
export const EPOLL_EVENT_BYTES = Deno.build.arch === "x86_64" ? 12 : 16;
const EVENT_BYTES = EPOLL_EVENT_BYTES;
const DATA_OFFSET = Deno.build.arch === "x86_64" ? 4 : 8;
const MAX_EVENTS = 256;

/** Descriptors watched for reading, one waiter each. */
export class Reactor {
  #epoll: number;
  #wake: number;
  #waiters = new Map<number, (ready: boolean) => void>();
  // Descriptors epoll knows (armed or fired once and disabled).
  #known = new Set<number>();
  #loop: Promise<void> | null = null;
  #events = new Uint8Array(MAX_EVENTS * EVENT_BYTES);
  #eventsView = new DataView(this.#events.buffer);
  #ctl = new Uint8Array(16);
  #ctlView = new DataView(this.#ctl.buffer);
  #wakeValue = new Uint8Array(8);
  #drain = new Uint8Array(8);
  #dispatching = false;

  constructor() {
    const c = libc();
    this.#epoll = c.epoll_create1(EPOLL_CLOEXEC);
    if (this.#epoll < 0) throw errnoError("epoll_create1", errno());
    this.#wake = c.eventfd(0, EPOLL_CLOEXEC | EFD_NONBLOCK);
    new DataView(this.#wakeValue.buffer).setBigUint64(0, 1n, true);
    // Level-triggered: it wakes every wait until drained.
    const added = this.#wake < 0
      ? -errno()
      : this.#control(EPOLL_CTL_ADD, this.#wake, EPOLLIN);
    if (added < 0) {
      const error = errnoError(
        this.#wake < 0 ? "eventfd" : "epoll_ctl",
        -added,
      );
      if (this.#wake >= 0) c.close(this.#wake);
      c.close(this.#epoll);
      throw error;
    }
  }

  /** How many descriptors are being waited for. */
  get waiting(): number {
    return this.#waiters.size;
  }

  /**
   * Resolves true once `fd` is readable, hung up or in error (the next
   * `recv` tells which), or false once `signal` aborts or {@link forget} is
   * called for it. It may resolve true spuriously: callers read and wait
   * again on EAGAIN. One waiter per descriptor.
   */
  readable(fd: number, signal?: AbortSignal): Promise<boolean> {
    if (signal?.aborted) return Promise.resolve(false);
    if (this.#waiters.has(fd)) {
      return Promise.reject(new Error(`fd ${fd} already has a waiter`));
    }
    const events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
    // Our idea of what epoll knows can be wrong (a descriptor closed and
    // its number reused): the errno says which operation to use instead,
    // once it is believed (see callDoubtingErrno).
    let result = this.#control(
      this.#known.has(fd) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
      fd,
      events,
    );
    if (result === -EEXIST) result = this.#control(EPOLL_CTL_MOD, fd, events);
    else if (result === -ENOENT) {
      result = this.#control(EPOLL_CTL_ADD, fd, events);
    }
    // A descriptor epoll cannot watch (closed, say): let the caller's next
    // read report what is wrong with it.
    if (result < 0) return Promise.resolve(true);
    this.#known.add(fd);
    return new Promise((resolve) => {
      const onAbort = () => this.#settle(fd, false);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.set(fd, (ready) => {
        signal?.removeEventListener("abort", onAbort);
        resolve(ready);
      });
      this.#start();
    });
  }

  /**
   * Stops watching `fd` (a pending waiter resolves false). Call it before
   * closing a descriptor another process may still hold (one passed with
   * SCM_RIGHTS): epoll keeps watching the open file, not the number.
   */
  forget(fd: number): void {
    this.#settle(fd, false);
    if (this.#known.delete(fd)) {
      this.#control(EPOLL_CTL_DEL, fd, 0);
    }
  }

  /** Resolves once no wait is in flight (after the last waiter settled). */
  async idle(): Promise<void> {
    while (this.#loop) await this.#loop;
  }

  #settle(fd: number, ready: boolean) {
    const waiter = this.#waiters.get(fd);
    if (!waiter) return;
    this.#waiters.delete(fd);
    waiter(ready);
    if (this.#waiters.size === 0 && this.#loop && !this.#dispatching) {
      // Nobody waits any more: end the wait in flight.
      libc().write(this.#wake, this.#wakeValue, 8n);
    }
  }

  #start() {
    this.#loop ??= this.#run().finally(() => {
      this.#loop = null;
      if (this.#waiters.size > 0) this.#start();
    });
  }

  async #run() {
    const c = libc();
    let failures = 0;
    while (this.#waiters.size > 0) {
      const n = await c.epoll_wait(this.#epoll, this.#events, MAX_EVENTS, -1);
      if (n < 0) {
        // EINTR, in practice (errno of the worker thread is out of reach).
        // Never spin if something else is wrong.
        if (++failures > 3) await new Promise((r) => setTimeout(r, 10));
        continue;
      }
      failures = 0;
      this.#dispatching = true;
      for (let i = 0; i < n; i++) {
        const fd = Number(
          this.#eventsView.getBigUint64(i * EVENT_BYTES + DATA_OFFSET, true),
        );
        if (fd === this.#wake) {
          c.read(this.#wake, this.#drain, 8n);
        } else {
          this.#settle(fd, true);
        }
      }
      this.#dispatching = false;
    }
  }

  /** One epoll_ctl: 0, or the negated errno (believed, not just read). */
  #control(op: number, fd: number, events: number): number {
    this.#ctlView.setUint32(0, events, true);
    this.#ctlView.setBigUint64(DATA_OFFSET, BigInt(fd), true);
    const c = libc();
    return callDoubtingErrno(() => c.epoll_ctl(this.#epoll, op, fd, this.#ctl));
  }
}

let shared: Reactor | undefined;

/** The program's one reactor, made on first use. */
export function reactor(): Reactor {
  shared ??= new Reactor();
  return shared;
}
