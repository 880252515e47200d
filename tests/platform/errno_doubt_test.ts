/**
 * Sockets and the reactor with errno read back wrong (the runtime
 * clobbering it between a libc call and the read, as was seen for a full
 * terminal's EAGAIN read back as ENOENT): a failure is believed only once
 * it repeats (`callDoubtingErrno`), so an odd errno neither drops a
 * connection, nor stops a listener, nor wakes a waiter for nothing; a
 * real failure still comes through with its real errno. Real sockets,
 * real epoll; only errno's read-back is faked (`injectErrnoFault`).
 */

import assert from "node:assert/strict";
import { injectErrnoFault, libc } from "../../src/platform/libc.ts";
import {
  accept,
  type Accepted,
  closeSocket,
  connectUnix,
  listenUnix,
  receive,
  receiveWithDescriptors,
  sendSome,
  SocketError,
  WOULD_BLOCK,
} from "../../src/platform/socket.ts";
import { Reactor, reactor } from "../../src/platform/reactor.ts";
import { acceptEachFd } from "../../src/platform/accept_loop.ts";

const EBADF = 9;
const ECONNRESET = 104;
const EPIPE = 32;
const ENOENT = 2;
const LINUX = Deno.build.os === "linux";

/** The next errno read says `code`; the ones after it are the real ones. */
function firstReadSays(code: number): () => number | undefined {
  let reads = 0;
  return () => reads++ === 0 ? code : undefined;
}

/** Runs `body` with errno's read-back faked by `fault`, then removes it. */
async function withFault<T>(
  fault: () => number | undefined,
  body: () => T | Promise<T>,
): Promise<T> {
  injectErrnoFault(fault);
  try {
    return await body();
  } finally {
    injectErrnoFault(null);
  }
}

/** A connected pair of Unix stream sockets, as descriptors. */
async function unixPair(): Promise<[number, number]> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/pair.sock`;
  const listener = listenUnix(path);
  try {
    const a = connectUnix(path);
    let b: Accepted | null;
    while ((b = accept(listener)) === null) {
      await reactor().readable(listener);
    }
    return [a, b.fd];
  } finally {
    closeSocket(listener);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name:
    "errno doubt: recv, recvmsg and send on a live connection read an odd errno and carry on",
  ignore: !LINUX,
  async fn() {
    const [a, b] = await unixPair();
    try {
      const buffer = new Uint8Array(64 * 1024);
      // Nothing waiting: the real answer is EAGAIN; read back as a reset,
      // believed, it dropped the connection.
      assert.equal(
        await withFault(firstReadSays(ECONNRESET), () => receive(b, buffer)),
        WOULD_BLOCK,
      );
      assert.deepEqual(
        await withFault(
          firstReadSays(ECONNRESET),
          () => receiveWithDescriptors(b, buffer, []),
        ),
        { count: WOULD_BLOCK, truncated: false },
      );
      // A full send buffer: EAGAIN, read back as EPIPE.
      let sent = 0;
      for (let n; (n = sendSome(a, buffer)) !== WOULD_BLOCK;) sent += n;
      assert.equal(
        await withFault(firstReadSays(EPIPE), () => sendSome(a, buffer)),
        WOULD_BLOCK,
      );
      // The connection is whole: every byte sent arrives.
      let got = 0;
      while (got < sent) {
        const n = receive(b, buffer);
        if (n === WOULD_BLOCK) await reactor().readable(b);
        else got += n;
      }
      assert.equal(got, sent);
    } finally {
      closeSocket(a);
      closeSocket(b);
    }
  },
});

Deno.test({
  name:
    "errno doubt: a real failure is still reported, with its real errno, when the first read-back is odd",
  ignore: !LINUX,
  async fn() {
    const [a, b] = await unixPair();
    closeSocket(b);
    try {
      const error = await withFault(firstReadSays(ENOENT), () => {
        try {
          for (let i = 0; i < 100; i++) sendSome(a, new Uint8Array(1024));
        } catch (error) {
          return error;
        }
        return null;
      });
      assert.ok(error instanceof SocketError, `threw: ${error}`);
      assert.equal(error.code, EPIPE, error.message);
    } finally {
      closeSocket(a);
    }
  },
});

Deno.test({
  name:
    "errno doubt: an accept loop that reads EBADF for an empty queue keeps its listener and takes the next connection",
  ignore: !LINUX,
  async fn() {
    const dir = await Deno.makeTempDir();
    const path = `${dir}/listener.sock`;
    const listener = listenUnix(path);
    const stop = new AbortController();
    const taken: number[] = [];
    let ended = false;
    try {
      // Believed, EBADF meant "the listener is gone": the loop returned and
      // no connection was ever taken again.
      injectErrnoFault(firstReadSays(EBADF));
      const loop = acceptEachFd(listener, (c) => taken.push(c.fd), {
        signal: stop.signal,
      }).finally(() => ended = true);
      await new Promise((resolve) => setTimeout(resolve, 50));
      injectErrnoFault(null);
      assert.equal(ended, false, "the accept loop is still running");
      const client = connectUnix(path);
      const deadline = performance.now() + 5000;
      while (taken.length === 0 && performance.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.equal(taken.length, 1, "the next connection was taken");
      closeSocket(client);
      stop.abort();
      await loop;
    } finally {
      injectErrnoFault(null);
      stop.abort();
      for (const fd of taken) closeSocket(fd);
      closeSocket(listener);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "errno doubt: the reactor re-arms a reused descriptor number when ENOENT reads back odd, instead of waking its waiter for nothing",
  ignore: !LINUX,
  async fn() {
    const c = libc();
    const EFD_NONBLOCK = 0o4000;
    const EFD_CLOEXEC = 0o2000000;
    const one = new Uint8Array(8);
    new DataView(one.buffer).setBigUint64(0, 1n, true);
    const drain = new Uint8Array(8);
    const events = new Reactor();
    // An eventfd the reactor has seen, closed, and its number taken by a
    // new one: epoll forgot it, the reactor did not (MOD fails ENOENT).
    const first = c.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c.write(first, one, 8n);
    assert.equal(await events.readable(first), true);
    c.read(first, drain, 8n);
    c.close(first);
    const second = c.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    try {
      assert.equal(second, first, "the lowest free number is reused");
      let settled = false;
      injectErrnoFault(firstReadSays(EBADF));
      const ready = events.readable(second).then((value) => {
        settled = true;
        return value;
      });
      injectErrnoFault(null);
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.equal(settled, false, "nothing to read: still waiting");
      c.write(second, one, 8n);
      assert.equal(await ready, true);
    } finally {
      injectErrnoFault(null);
      events.forget(second);
      await events.idle();
      c.close(second);
    }
  },
});
