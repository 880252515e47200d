/**
 * A pseudo-terminal with a child process attached: the server side of a
 * session. Built on libc through FFI; Linux only.
 *
 * @module
 */

import {
  callDoubtingErrno,
  closeQuietly,
  EAGAIN,
  EIO,
  errno,
  errnoError,
  F_GETFL,
  F_SETFD,
  F_SETFL,
  FD_CLOEXEC,
  libc,
  O_CLOEXEC,
  O_NOCTTY,
  O_NONBLOCK,
  O_RDWR,
  POLLIN,
  POLLOUT,
  requireLinux,
  setPollFd,
  timespec,
  TIOCSWINSZ,
  writeNonBlocking,
} from "../platform/libc.ts";
import {
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_MOD,
  EPOLL_EVENT_BYTES,
  EPOLLIN,
} from "../platform/reactor.ts";

/** How a child is started in a new pty. */
export interface PtySpawnOptions {
  /** Program to run, e.g. "/bin/bash"; a bare name is looked up in PATH. */
  command: string;
  /**
   * Arguments after the program name, e.g. ["-l"].
   * @default {[]}
   */
  args?: string[];
  /**
   * The child's whole environment; ours is not merged in when given.
   * @default {our own environment}
   */
  env?: Record<string, string>;
  /**
   * Working directory of the child.
   * @default {our own working directory}
   */
  cwd?: string;
  /** Initial width in columns (0..65535). */
  cols: number;
  /** Initial height in rows (0..65535). */
  rows: number;
  /**
   * Watch for the child's echo after each keystroke-sized write (see
   * {@linkcode ECHO_WATCH_MS}): for a remote session's pty, whose echo
   * has a network to cross, not for a terminal that shows it locally.
   * @default {false}
   */
  watchEcho?: boolean;
}

/**
 * How the child ended, shaped like `Deno.CommandStatus`: `code` is
 * 128 + n when signal n killed it.
 */
export interface PtyExitStatus {
  /** Exit code, or 128 + the signal number. */
  code: number;
  /** Name of the signal that killed the child, e.g. "SIGHUP", else null. */
  signal: string | null;
}

/** Largest chunk one `read()` returns. */
const READ_CHUNK_BYTES = 64 * 1024;
// size_t arguments are bigints in Deno's FFI; converted once.
const READ_CHUNK_SIZE_T = BigInt(READ_CHUNK_BYTES);

/**
 * Synchronous reads or writes in a row before we go through `poll` anyway.
 * Trying the fd synchronously first roughly doubles bulk throughput (no
 * thread hop per chunk), but a consumer that never awaits real I/O would
 * then run on microtasks alone and starve timers and sockets; the poll is a
 * macrotask.
 */
const SYNC_CALLS_BEFORE_YIELD = 16;

/**
 * Longest a write waits in `poll` before retrying. POLLOUT wakeups arrived
 * reliably in tests; the timeout is a safety net so that a lost one would
 * cost latency, not a stuck write.
 */
const WRITE_POLL_MS = 50;

/**
 * A write of at most this many bytes is a keystroke (or a few) whose echo
 * is worth watching for: see {@linkcode ECHO_WATCH_MS}.
 */
const ECHO_WATCH_MAX_BYTES = 64;

/**
 * How long, after a keystroke-sized write, the event loop's own thread waits
 * (in `ppoll`, asleep: no CPU) for the child's answer, its echo, before the
 * read is left to its `poll` on a worker thread. A shell echoes within
 * ~0.1–0.2 ms here; caught inside this window, the echo skips that worker's
 * wake-up and the event loop's (~0.05–0.2 ms, more under load). The price:
 * everything else in the process (other sessions of the same host) waits
 * too, at most this long, once per keystroke; nothing when nobody types.
 */
const ECHO_WATCH_MS = 0.5;

const ECHO_WATCH_TIMESPEC = timespec(ECHO_WATCH_MS);

/** How long a child may outlive `close()`'s hangup before it gets SIGKILL. */
const CLOSE_GRACE_MS = 3000;

/**
 * Starts the program as a session leader whose controlling tty is the slave:
 * `detached: true` makes Deno call setsid() in the child, and a session
 * leader without a controlling tty acquires the first tty it opens without
 * O_NOCTTY. sh opens the slave as stdin/stdout/stderr, then execs the
 * program in place, so the pid we get is the program's.
 */
const LAUNCH_SCRIPT = 'exec 0<>"$1" 1>&0 2>&0; shift; exec "$@"';

/** An 8-byte eventfd increment; any nonzero count wakes every poller. */
const WAKE_VALUE = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

/**
 * A child process running on its own pseudo-terminal. Bytes written go to the
 * child's input as if typed; `read()` yields what it prints.
 *
 * @example
 * ```ts
 * const pty = Pty.spawn({ command: "/bin/bash", args: ["-l"], cols: 80, rows: 24 });
 * await pty.write(new TextEncoder().encode("echo hi; exit\r"));
 * for (let chunk; (chunk = await pty.read()) !== null;) {
 *   await Deno.stdout.write(chunk);
 * }
 * console.log(await pty.exited); // { code: 0, signal: null }
 * await pty.close();
 * ```
 */
export class Pty {
  /** Pid of the child, the leader of its own session and process group. */
  readonly pid: number;
  /** Resolves when the child exits; never rejects. */
  readonly exited: Promise<PtyExitStatus>;

  #master: number;
  // Our own descriptor of the slave, held until the child exits. It makes
  // "every slave holder is gone" (EIO on the master) come after the child's
  // exit even if the child dies before opening the slave, which would
  // otherwise leave a read waiting forever. It must stay open until then:
  // the slave's last close marks the master's peer closed for good, so a
  // quick open-and-close here would make every read fail with EIO at once.
  #slave: number;
  // An eventfd that close() signals to wake every pending poll at once.
  #wake: number;
  // The epoll set a read waits in (on a worker thread): the master and the
  // eventfd. An echo watch takes the master out of it while it watches, so
  // the echo wakes one thread, not two (see #watchForEcho).
  #readEpoll: number;
  #readEvents = new Uint8Array(2 * EPOLL_EVENT_BYTES);
  #epollCtl = new Uint8Array(16);
  #epollCtlView = new DataView(this.#epollCtl.buffer);
  #watchEcho: boolean;
  #closed = false;
  #closing: Promise<void> | undefined;
  #eof = false;
  #childExited = false;
  #pendingPolls = new Set<Promise<number>>();
  #reads: Promise<unknown> = Promise.resolve();
  #writes: Promise<unknown> = Promise.resolve();
  #syncReads = 0;
  // The read's poll in flight (on a worker thread), kept across reads: a
  // read that an echo watch served leaves it pending, and the next read
  // waits on the same one instead of starting another.
  #readPoll: Promise<void> | null = null;
  // Wakes the read waiting on #readPoll early: an echo watch read output.
  #nudgeReader: (() => void) | null = null;
  // Output an echo watch read, for the next read() to return first.
  #early: Uint8Array<ArrayBuffer> | null = null;
  #echoesCaught = 0;
  // Reused for every call so the hot path allocates only the returned chunk.
  #readBuffer = new Uint8Array(READ_CHUNK_BYTES);
  #watchPollFds = new Uint8Array(8);
  #watchPollView = new DataView(this.#watchPollFds.buffer);
  #writePollFds = new Uint8Array(16);
  #writePollView = new DataView(this.#writePollFds.buffer);
  #winsize = new Uint8Array(8);

  private constructor(
    master: number,
    slave: number,
    wake: number,
    readEpoll: number,
    child: Deno.ChildProcess,
    watchEcho: boolean,
  ) {
    this.#watchEcho = watchEcho;
    this.#master = master;
    this.#slave = slave;
    this.#wake = wake;
    this.#readEpoll = readEpoll;
    this.pid = child.pid;
    this.exited = child.status.then((status) => {
      this.#childExited = true;
      // Drop our hold on the slave: once the child's descendants let go too,
      // the master reads the remaining output and then EIO.
      closeQuietly(this.#slave);
      this.#slave = -1;
      return { code: status.code, signal: status.signal };
    });
  }

  /**
   * Opens a new pty of the given size and starts `options.command` on it.
   * Throws if the pty cannot be set up or `cwd` is unusable; a program that
   * cannot be run shows up as exit code 127 (126) with sh's message on the
   * terminal, as it would in a shell.
   */
  static spawn(options: PtySpawnOptions): Pty {
    checkSize(options.cols, options.rows);
    // eventfd, ptsname_r and the variadic fcntl/ioctl are bound on Linux
    // only (see platform/libc.ts).
    requireLinux("pseudo-terminals");
    const c = libc();
    const master = c.posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) throw errnoError("posix_openpt", errno());
    let slave = -1;
    let wake = -1;
    let readEpoll = -1;
    try {
      // posix_openpt is only promised to honour O_RDWR and O_NOCTTY; without
      // CLOEXEC the child would hold the master open and never see a hangup.
      if (c.fcntl(master, F_SETFD, FD_CLOEXEC) < 0) {
        throw errnoError("fcntl(F_SETFD)", errno());
      }
      const flags = c.fcntl(master, F_GETFL, 0);
      if (flags < 0 || c.fcntl(master, F_SETFL, flags | O_NONBLOCK) < 0) {
        throw errnoError("fcntl(F_SETFL)", errno());
      }
      if (c.grantpt(master) < 0) throw errnoError("grantpt", errno());
      if (c.unlockpt(master) < 0) throw errnoError("unlockpt", errno());
      const name = new Uint8Array(128);
      const failed = c.ptsname_r(master, name, BigInt(name.length));
      if (failed !== 0) throw errnoError("ptsname_r", failed);
      const slavePath = new TextDecoder().decode(
        name.subarray(0, name.indexOf(0)),
      );
      setWinsize(master, new Uint8Array(8), options.cols, options.rows);
      slave = c.open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
      if (slave < 0) throw errnoError(`open(${slavePath})`, errno());
      wake = c.eventfd(0, O_CLOEXEC | O_NONBLOCK);
      if (wake < 0) throw errnoError("eventfd", errno());
      readEpoll = c.epoll_create1(EPOLL_CLOEXEC);
      if (readEpoll < 0) throw errnoError("epoll_create1", errno());
      const event = new Uint8Array(16);
      for (const fd of [master, wake]) {
        setEpollEvent(new DataView(event.buffer), EPOLLIN, fd);
        if (c.epoll_ctl(readEpoll, EPOLL_CTL_ADD, fd, event) < 0) {
          throw errnoError("epoll_ctl", errno());
        }
      }
      const child = new Deno.Command("/bin/sh", {
        args: [
          "-c",
          LAUNCH_SCRIPT,
          "sh",
          slavePath,
          options.command,
          ...(options.args ?? []),
        ],
        env: options.env,
        clearEnv: options.env !== undefined,
        cwd: options.cwd,
        detached: true,
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      return new Pty(
        master,
        slave,
        wake,
        readEpoll,
        child,
        options.watchEcho ?? false,
      );
    } catch (error) {
      closeQuietly(readEpoll);
      closeQuietly(wake);
      closeQuietly(slave);
      closeQuietly(master);
      throw error;
    }
  }

  /**
   * Resolves with the next chunk of output (at most 64 KiB, a fresh array),
   * or null once the child and everything else holding the terminal have
   * exited and all output was read, or once the pty is closed. Calls made
   * before an earlier one settles queue behind it. The chunk is backed by a
   * plain ArrayBuffer, so WebCrypto accepts it as is.
   */
  read(): Promise<Uint8Array<ArrayBuffer> | null> {
    const chunk = this.#reads.then(() => this.#readChunk());
    this.#reads = chunk.catch(() => {});
    return chunk;
  }

  /**
   * Writes all of `data` to the child's input, waiting for room without
   * blocking the event loop. Writes are applied in call order. Rejects with
   * `Deno.errors.BadResource` if the pty is closed first. Once nothing holds
   * the terminal any more, Linux discards the input (or the write rejects
   * with `Deno.errors.BrokenPipe`). `data` must not change until the promise
   * settles.
   */
  write(data: Uint8Array): Promise<void> {
    const done = this.#writes.then(() => this.#writeAll(data));
    this.#writes = done.catch(() => {});
    return done;
  }

  /**
   * How many writes an echo watch answered (output read right after the
   * write, without waiting in `poll`); 0 unless spawned with `watchEcho`.
   * For tests and debug dumps.
   */
  get echoesCaught(): number {
    return this.#echoesCaught;
  }

  /**
   * Sets the terminal size; the kernel sends SIGWINCH to the child's
   * foreground process group. Does nothing after `close()`: a resize that
   * races the end of a session is harmless and should not throw.
   */
  resize(cols: number, rows: number): void {
    checkSize(cols, rows);
    if (this.#closed) return;
    setWinsize(this.#master, this.#winsize, cols, rows);
  }

  /**
   * Sends `signal` to the child's process group (the child leads it). Does
   * nothing once the child has exited. Interactive shells ignore SIGTERM;
   * use SIGHUP or SIGKILL for them.
   */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    if (this.#childExited) return;
    try {
      Deno.kill(-this.pid, signal);
    } catch (error) {
      // The child exited but `exited` has not run its callback yet.
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  }

  /**
   * Stops reading and writing (pending `read()`s resolve null, pending
   * `write()`s reject), waits until no FFI call is in flight, and closes the
   * master, which hangs up the terminal: the child gets SIGHUP, and SIGKILL
   * if it is still running a few seconds later. Safe to call repeatedly;
   * every call returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    const c = libc();
    // Wakes every poll in flight; the loops then see #closed and stop. A
    // nonblocking FFI call still running when Deno exits crashes it, so the
    // fds are closed only after all of them have returned.
    c.write(this.#wake, WAKE_VALUE, BigInt(WAKE_VALUE.length));
    await Promise.allSettled([...this.#pendingPolls]);
    closeQuietly(this.#master);
    closeQuietly(this.#slave);
    closeQuietly(this.#wake);
    closeQuietly(this.#readEpoll);
    this.#master =
      this.#slave =
      this.#wake =
      this.#readEpoll =
        -1;
    if (!this.#childExited) {
      // Unref'd: this timer alone must not keep the process alive, while the
      // child's status (which does) still gets a bounded lifetime.
      const timer = setTimeout(() => this.kill("SIGKILL"), CLOSE_GRACE_MS);
      Deno.unrefTimer(timer);
      this.exited.finally(() => clearTimeout(timer));
    }
  }

  async #readChunk(): Promise<Uint8Array<ArrayBuffer> | null> {
    const c = libc();
    const buffer = this.#readBuffer;
    while (!this.#closed && !this.#eof) {
      const early = this.#early;
      if (early !== null) {
        this.#early = null;
        return early;
      }
      if (this.#syncReads < SYNC_CALLS_BEFORE_YIELD) {
        // errno read back through FFI may be clobbered: a failure counts
        // only once it repeats (callDoubtingErrno).
        const n = callDoubtingErrno(() =>
          Number(c.read(this.#master, buffer, READ_CHUNK_SIZE_T))
        );
        if (n > 0) {
          this.#syncReads++;
          return buffer.slice(0, this.#readMore(n));
        }
        const code = n < 0 ? -n : EIO;
        if (code === EIO) {
          // The last holder of the slave is gone and the queue is empty: the
          // kernel hands over buffered output before it reports EIO.
          this.#eof = true;
          break;
        }
        if (code !== EAGAIN) throw errnoError("read", code);
      }
      this.#syncReads = 0;
      await this.#readable();
    }
    return null;
  }

  /**
   * Resolves once the master may be readable: its poll returned, or an
   * echo watch read output meanwhile (then that poll stays in flight for
   * the next read to wait on).
   */
  #readable(): Promise<void> {
    return new Promise((resolve) => {
      this.#nudgeReader = resolve;
      // One callback per poll (not one per read waiting on it), so reads
      // served by echo watches never pile callbacks on a long poll.
      this.#readPoll ??= this.#waitReadable().finally(() => {
        this.#readPoll = null;
        const wake = this.#nudgeReader;
        this.#nudgeReader = null;
        wake?.();
      });
    });
  }

  /**
   * True when a write of `length` bytes is keystroke-sized and a read waits
   * in `epoll_wait`: its echo is worth watching for on this thread.
   */
  #echoWorthWatching(length: number): boolean {
    return this.#watchEcho && length <= ECHO_WATCH_MAX_BYTES &&
      this.#nudgeReader !== null && this.#early === null && !this.#closed;
  }

  /**
   * After a keystroke-sized write, while a read waits in `epoll_wait`:
   * waits up to {@linkcode ECHO_WATCH_MS} on this thread for the master to
   * become readable, reads what came and hands it to that read at once.
   * Anything else (the time ran out, a hangup, a failed read: no errno is
   * read here at all) ends the watch and is left to the waiting read, whose
   * wait wakes for it and whose own read meets it: the watch never ends a
   * read loop itself. The caller has taken the master out of the read's
   * epoll set before the write (see {@linkcode #writeAll}).
   */
  #watchForEcho() {
    const nudge = this.#nudgeReader;
    if (nudge === null || this.#early !== null || this.#closed) return;
    const c = libc();
    setPollFd(this.#watchPollView, 0, this.#master, POLLIN);
    if (c.ppoll(this.#watchPollFds, 1n, ECHO_WATCH_TIMESPEC, null) <= 0) {
      return;
    }
    const n = Number(c.read(this.#master, this.#readBuffer, READ_CHUNK_SIZE_T));
    if (n <= 0) return;
    this.#early = this.#readBuffer.slice(0, this.#readMore(n));
    this.#echoesCaught++;
    this.#nudgeReader = null;
    nudge();
  }

  /**
   * Tops up the read buffer, which holds `filled` bytes, with whatever else
   * is ready now. The kernel hands a pty master at most its 4 KiB line queue
   * per read; gathering gives callers bigger chunks (fewer frames and seals
   * downstream) without waiting for anything.
   */
  #readMore(filled: number): number {
    const c = libc();
    while (filled < this.#readBuffer.length) {
      const rest = this.#readBuffer.subarray(filled);
      const n = Number(c.read(this.#master, rest, BigInt(rest.length)));
      // Errors, EIO included, will come back on the next read() call.
      if (n <= 0) break;
      filled += n;
    }
    return filled;
  }

  async #writeAll(data: Uint8Array): Promise<void> {
    let offset = 0;
    let syncWrites = 0;
    while (offset < data.length) {
      if (this.#closed) throw new Deno.errors.BadResource("pty is closed");
      if (syncWrites < SYNC_CALLS_BEFORE_YIELD) {
        // A keystroke's echo is for the watch below alone: the read's epoll
        // stops watching the master from before the write (the echo can be
        // there before the write returns) until the watch is over, else the
        // echo wakes its worker thread too, whose wake-up, and the event
        // loop's turn to take it, compete with the echo's way out (on 2
        // cores, with the shell and the network also wanting one). Watched
        // again after, level-triggered: output still unread wakes it.
        const watch = offset === 0 && this.#echoWorthWatching(data.length);
        if (watch) this.#watchMasterForRead(0);
        let n: number;
        try {
          // As in #readChunk: a failure is believed once it repeats.
          n = writeNonBlocking(this.#master, data.subarray(offset));
          if (watch && n === data.length) this.#watchForEcho();
        } finally {
          if (watch) this.#watchMasterForRead(EPOLLIN);
        }
        if (n >= 0) {
          offset += n;
          syncWrites++;
          continue;
        }
        const code = -n;
        if (code === EIO) {
          throw new Deno.errors.BrokenPipe("pty: the terminal was hung up");
        }
        if (code !== EAGAIN) throw errnoError("write", code);
      }
      syncWrites = 0;
      await this.#poll(
        this.#writePollFds,
        this.#writePollView,
        POLLOUT,
        WRITE_POLL_MS,
      );
    }
  }

  /**
   * Waits on a worker thread until the master is readable (or hung up) or
   * close() is called. Like {@linkcode #poll}'s, its result is not trusted.
   */
  async #waitReadable(): Promise<void> {
    const call = libc().epoll_wait(this.#readEpoll, this.#readEvents, 2, -1);
    this.#pendingPolls.add(call);
    try {
      await call;
    } finally {
      this.#pendingPolls.delete(call);
    }
  }

  /**
   * What the read's epoll watches the master for: `EPOLLIN`, or 0 for
   * nothing but a hangup or an error (always reported). A failure is
   * ignored: at worst the read's worker wakes for an echo already taken.
   */
  #watchMasterForRead(events: number): void {
    setEpollEvent(this.#epollCtlView, events, this.#master);
    libc().epoll_ctl(
      this.#readEpoll,
      EPOLL_CTL_MOD,
      this.#master,
      this.#epollCtl,
    );
  }

  /**
   * Waits on a worker thread until the master has `events`, close() is
   * called, or `timeoutMs` passes. Its result is not trusted (errno of the
   * worker thread is out of reach): the caller retries its read or write,
   * which reports the real state.
   */
  async #poll(
    fds: Uint8Array,
    view: DataView,
    events: number,
    timeoutMs: number,
  ): Promise<void> {
    // The master, and the eventfd close() signals.
    setPollFd(view, 0, this.#master, events);
    setPollFd(view, 1, this.#wake, POLLIN);
    const call = libc().poll(fds, 2n, timeoutMs);
    this.#pendingPolls.add(call);
    try {
      await call;
    } finally {
      this.#pendingPolls.delete(call);
    }
  }
}

/** Fills a `struct epoll_event` whose data is the descriptor itself. */
function setEpollEvent(view: DataView, events: number, fd: number): void {
  view.setUint32(0, events, true);
  view.setBigUint64(EPOLL_EVENT_BYTES === 12 ? 4 : 8, BigInt(fd), true);
}

function checkSize(cols: number, rows: number): void {
  for (const [name, value] of [["cols", cols], ["rows", rows]] as const) {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) {
      throw new RangeError(`pty: ${name} must be an integer in 0..65535`);
    }
  }
}

function setWinsize(
  master: number,
  winsize: Uint8Array,
  cols: number,
  rows: number,
): void {
  // struct winsize { unsigned short ws_row, ws_col, ws_xpixel, ws_ypixel; }
  const view = new DataView(winsize.buffer);
  view.setUint16(0, rows, true);
  view.setUint16(2, cols, true);
  view.setUint32(4, 0, true);
  if (libc().ioctl(master, BigInt(TIOCSWINSZ), winsize) < 0) {
    throw errnoError("ioctl(TIOCSWINSZ)", errno());
  }
}
