/**
 * The program's one binding to the C library through FFI, opened lazily on
 * first use: glibc on Linux, libSystem on macOS, nothing anywhere else (on
 * Windows only the client runs, and it needs no libc). The pty layer
 * (pseudo-terminals, termios) and the socket helpers (listeners, peer
 * credentials, descriptor passing, readiness) share it. Callers outside
 * `src/platform/` use the layer's own modules (`Pty`, `termios.ts`,
 * `socket.ts`, `reactor.ts`), not these raw calls, except the pty layer,
 * which is built directly on them.
 *
 * The numbers come from `libc_constants.ts`, one table per system. On a
 * system without one the constants below hold Linux's values, and
 * {@linkcode libc} refuses to open, so they are never passed to anything.
 *
 * @module
 */

import {
  DARWIN_LIBC,
  type LibcConstants,
  libcConstants,
  LINUX_LIBC,
} from "./libc_constants.ts";

const HOST: LibcConstants = libcConstants(Deno.build.os) ?? LINUX_LIBC;

/** `open` / `posix_openpt` flag: read and write. */
export const O_RDWR: number = HOST.O_RDWR;
/** `open` flag: write only. */
export const O_WRONLY: number = HOST.O_WRONLY;
/** `open` flag: do not make the tty our controlling terminal. */
export const O_NOCTTY: number = HOST.O_NOCTTY;
/** `open` flag: calls return EAGAIN instead of blocking. */
export const O_NONBLOCK: number = HOST.O_NONBLOCK;
/** `open` flag: close the fd in every program we exec. */
export const O_CLOEXEC: number = HOST.O_CLOEXEC;

/** `fcntl` command: set the fd flags (FD_CLOEXEC). */
export const F_SETFD: number = HOST.F_SETFD;
/** `fcntl` command: get the file status flags. */
export const F_GETFL: number = HOST.F_GETFL;
/** `fcntl` command: set the file status flags. */
export const F_SETFL: number = HOST.F_SETFL;
/** `fcntl` fd flag: close on exec. */
export const FD_CLOEXEC: number = HOST.FD_CLOEXEC;

/** `poll` event: data to read. */
export const POLLIN: number = HOST.POLLIN;
/** `poll` event: room to write. */
export const POLLOUT: number = HOST.POLLOUT;

/** `ioctl` request: set the terminal's window size (struct winsize). */
export const TIOCSWINSZ: number = HOST.TIOCSWINSZ;

/** errno: operation not permitted. */
export const EPERM: number = HOST.errno.EPERM;
/** errno: a signal interrupted the call. */
export const EINTR: number = HOST.errno.EINTR;
/** errno: I/O error; on a pty master, the slave side is closed. */
export const EIO: number = HOST.errno.EIO;
/** errno: bad file descriptor. */
export const EBADF: number = HOST.errno.EBADF;
/** errno: the call would block on a non-blocking fd. */
export const EAGAIN: number = HOST.errno.EAGAIN;
/** errno: out of kernel memory. */
export const ENOMEM: number = HOST.errno.ENOMEM;
/** errno: invalid argument (also: accept on a socket that stopped listening). */
export const EINVAL: number = HOST.errno.EINVAL;
/** errno: the system's table of open files is full. */
export const ENFILE: number = HOST.errno.ENFILE;
/** errno: this process has no descriptor left. */
export const EMFILE: number = HOST.errno.EMFILE;
/** errno: the peer is gone (write on a closed connection). */
export const EPIPE: number = HOST.errno.EPIPE;
/** errno: no buffer space for the socket operation. */
export const ENOBUFS: number = HOST.errno.ENOBUFS;
/** errno: a queued connection was aborted before accept took it. */
export const ECONNABORTED: number = HOST.errno.ECONNABORTED;
/** errno: the peer reset the connection. */
export const ECONNRESET: number = HOST.errno.ECONNRESET;

/**
 * Calls with the same fixed (not variadic) C signature in glibc and
 * libSystem, bound on both. `poll`'s `nfds_t` is an unsigned long on Linux
 * and an unsigned int on macOS; passed in a register as a u64, the callee
 * reads the same low half either way.
 */
const PORTABLE_SYMBOLS = {
  posix_openpt: { parameters: ["i32"], result: "i32" },
  grantpt: { parameters: ["i32"], result: "i32" },
  unlockpt: { parameters: ["i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  dup2: { parameters: ["i32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // The only call here that may wait (with epoll_wait below): it runs on a
  // worker thread so the event loop stays free. Reads and writes happen
  // synchronously after one says the fd is ready, on an O_NONBLOCK fd, so
  // they never wait either.
  poll: {
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  // struct termios is passed by pointer; termios.ts owns its layout.
  tcgetattr: { parameters: ["i32", "buffer"], result: "i32" },
  tcsetattr: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  // Sockets; socket.ts owns the layouts of the structs passed here.
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "buffer"],
    result: "i32",
  },
  setsockopt: {
    parameters: ["i32", "i32", "i32", "buffer", "u32"],
    result: "i32",
  },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recvmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "isize" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  setrlimit: { parameters: ["i32", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * Calls bound on Linux only. epoll, eventfd and accept4 do not exist on
 * macOS, nor ptsname_r before macOS 13.4 (a missing symbol fails the whole
 * dlopen). open, fcntl and ioctl are variadic in C: on the Linux ABIs we
 * run on, passing the one extra integer or pointer as a fixed argument is
 * equivalent, but Apple's arm64 ABI passes variadic arguments on the stack
 * ("Writing ARM64 code for Apple platforms"), so binding them as fixed
 * would hand the callee garbage there. On macOS each throws NotSupported.
 */
const LINUX_ONLY_SYMBOLS = {
  ptsname_r: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  prctl: { parameters: ["i32", "buffer"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  epoll_wait: {
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  // Synchronous, with a timeout finer than poll's milliseconds: short
  // waits on the event loop's own thread (a pty's for an echo, pty.ts; a
  // full stdout's for room, std_output.ts).
  ppoll: {
    parameters: ["buffer", "u64", "buffer", "pointer"],
    result: "i32",
  },
  accept4: {
    parameters: ["i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** Where errno lives: glibc's `__errno_location`, libSystem's `__error`. */
const ERRNO_SYMBOLS = {
  linux: { __errno_location: { parameters: [], result: "pointer" } },
  darwin: { __error: { parameters: [], result: "pointer" } },
} as const satisfies Record<string, Deno.ForeignLibraryInterface>;

const LIBC_SYMBOLS = { ...PORTABLE_SYMBOLS, ...LINUX_ONLY_SYMBOLS };

/** The bound libc functions, as `Deno.dlopen` types them. */
export type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

/** An opened C library: its calls, and where errno lives. */
export interface OpenLibc {
  /** The bound calls; on macOS the Linux-only ones throw NotSupported. */
  symbols: Libc;
  /** The address of the calling thread's errno. */
  errnoLocation: () => Deno.PointerValue;
}

let library: OpenLibc | undefined;
let errnoView: Deno.UnsafePointerView | undefined;

/**
 * Opens the C library on first use, so that importing a layer built on it
 * costs nothing (and needs no --allow-ffi) until it is actually used.
 * Throws `Deno.errors.NotSupported` on a system other than Linux or macOS.
 */
export function libc(): Libc {
  return opened().symbols;
}

function opened(): OpenLibc {
  library ??= openLibc(Deno.build.os);
  return library;
}

/**
 * Opens the C library of `os`: the program's only `Deno.dlopen` of it, one
 * arm per system we have a table for, and for every other a one-line
 * `Deno.errors.NotSupported`. Use {@linkcode libc}, which calls this once
 * with the running system; it takes the system's name so that the refusal
 * can be tested anywhere.
 */
export function openLibc(os: typeof Deno.build.os): OpenLibc {
  switch (os) {
    case "linux": {
      const bound = Deno.dlopen(LINUX_LIBC.library, {
        ...LIBC_SYMBOLS,
        ...ERRNO_SYMBOLS.linux,
      }).symbols;
      return {
        symbols: pick(bound, Object.keys(LIBC_SYMBOLS), [], os),
        errnoLocation: bound.__errno_location,
      };
    }
    case "darwin": {
      const bound = Deno.dlopen(DARWIN_LIBC.library, {
        ...PORTABLE_SYMBOLS,
        ...ERRNO_SYMBOLS.darwin,
      }).symbols;
      return {
        symbols: pick(
          bound,
          Object.keys(PORTABLE_SYMBOLS),
          Object.keys(LINUX_ONLY_SYMBOLS),
          os,
        ),
        errnoLocation: bound.__error,
      };
    }
    default:
      throw new Deno.errors.NotSupported(
        `no C library binding for ${os}: et's native calls run on Linux and macOS`,
      );
  }
}

/**
 * The `Libc` of one system: the `bound` functions named in `present`, and
 * for each name in `absent` one that throws NotSupported when called.
 * Linux goes through here too, so its tests exercise this assembly.
 */
function pick(
  bound: object,
  present: string[],
  absent: string[],
  os: string,
): Libc {
  const symbols: Record<string, unknown> = {};
  for (const name of present) {
    symbols[name] = (bound as Record<string, unknown>)[name];
  }
  for (const name of absent) {
    symbols[name] = () => {
      throw new Deno.errors.NotSupported(`${name}() is not available on ${os}`);
    };
  }
  return symbols as Libc;
}

/**
 * Reads errno of the JS thread. Call it right after the failing synchronous
 * call. The address is cached: errno is thread-local, and an isolate (main or
 * worker) always runs on the one thread whose module instance holds the cache.
 */
export function errno(): number {
  const faked = errnoFault?.();
  if (faked !== undefined) return faked;
  errnoView ??= new Deno.UnsafePointerView(opened().errnoLocation()!);
  return errnoView.getInt32();
}

let errnoFault: (() => number | undefined) | null = null;

/**
 * @internal For tests: while set, {@linkcode errno} answers what `fault`
 * returns (when a number) instead of the real errno, as happens for real
 * when the runtime clobbers errno between a call and its read (seen: a
 * failed non-blocking write to a full terminal read back as ENOENT). Null
 * removes it.
 */
export function injectErrnoFault(fault: (() => number | undefined) | null) {
  errnoFault = fault;
}

const ERRNO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(HOST.errno).map(([name, code]) => [code, name]),
);

/** The symbolic name of an errno value, e.g. "EAGAIN". */
export function errnoName(code: number): string {
  return ERRNO_NAMES[code] ?? `errno ${code}`;
}

/** An error for a failed libc call, naming the call and its errno. */
export function errnoError(call: string, code: number): Error {
  return new Error(`${call} failed: ${errnoName(code)} (${code})`);
}

/**
 * One `write()` on a non-blocking descriptor, retried on EINTR: the bytes
 * taken (0 to all of `data`), or the negated errno of a failure (`-EAGAIN`:
 * no room now). Never waits.
 *
 * @example
 * ```ts
 * const n = writeNonBlocking(fd, bytes);
 * if (n === -EAGAIN) {} // full: try later
 * ```
 */
export function writeNonBlocking(fd: number, data: Uint8Array): number {
  const c = libc();
  return callDoubtingErrno(() =>
    Number(c.write(fd, data, BigInt(data.length)))
  );
}

/**
 * Runs `call`, one libc call that returns -1 and sets errno when it fails
 * and then has done nothing (a non-blocking read, write, send, recv,
 * accept, epoll_ctl...), until its answer can be believed: the result when
 * it is not negative, else the negated errno (`-EAGAIN`: not now). EINTR
 * is retried.
 *
 * errno read back through FFI is not trustworthy: the runtime may clobber
 * it between the call and the read (a full terminal's EAGAIN came back as
 * ENOENT under load). So a failure other than EAGAIN is believed only once
 * the call, made again at once, fails again other than with EAGAIN (then
 * with the second errno); a clobbered errno costs one more call instead of
 * a dropped connection or a listener that stops. EAGAIN itself is taken at
 * its word: a caller waits for readiness and calls again, which is harmless
 * if it was wrong. A real failure that does not repeat (ECONNRESET is
 * reported once; the next recv sees the end of the stream) shows as what
 * the second call says.
 *
 * @example
 * ```ts ignore
 * const n = callDoubtingErrno(() => Number(c.recv(fd, buf, len, flags)));
 * if (n === -EAGAIN) {} // nothing there now
 * else if (n < 0) throw errnoError("recv", -n);
 * ```
 */
export function callDoubtingErrno(call: () => number): number {
  let doubted = false;
  while (true) {
    const n = call();
    if (n >= 0) return n;
    const code = errno();
    if (code === EINTR) continue;
    if (code === EAGAIN || doubted) return -code;
    doubted = true;
  }
}

/**
 * Throws `Deno.errors.NotSupported` unless this is Linux: for callers whose
 * own numbers (socket flags, resource limits, struct layouts) are Linux's
 * only, so that on macOS they stop with one line instead of passing wrong
 * values to libc.
 */
export function requireLinux(
  what: string,
  os: typeof Deno.build.os = Deno.build.os,
): void {
  if (os !== "linux") {
    throw new Deno.errors.NotSupported(`${what}: Linux only, not ${os}`);
  }
}

/**
 * A `struct timespec` of `ms` milliseconds (less than a second), for
 * `ppoll`'s timeout: `{ time_t tv_sec; long tv_nsec; }` on 64-bit Linux.
 */
export function timespec(ms: number): Uint8Array {
  return new Uint8Array(new BigInt64Array([0n, BigInt(ms * 1e6)]).buffer);
}

/**
 * Fills entry `index` of a `struct pollfd` array seen through `view`
 * (`{ int fd; short events; short revents; }`, 8 bytes each): watch `fd`
 * for `events`, no events returned yet.
 */
export function setPollFd(
  view: DataView,
  index: number,
  fd: number,
  events: number,
): void {
  view.setInt32(index * 8, fd, true);
  view.setInt16(index * 8 + 4, events, true);
  view.setInt16(index * 8 + 6, 0, true);
}

/**
 * Points stdin, stdout and stderr at /dev/null: a process that stays on
 * after the ssh session that started it lets go of that session's pipes
 * (ssh and sshd see them end; nothing it prints later goes anywhere).
 * Linux only (`open` is bound there only); throws elsewhere or on failure.
 */
export function detachStandardStreams(): void {
  const lib = libc();
  const devNull = lib.open(
    new TextEncoder().encode("/dev/null\0"),
    O_RDWR | O_CLOEXEC,
  );
  if (devNull < 0) throw errnoError("open /dev/null", errno());
  try {
    for (const fd of [0, 1, 2]) {
      if (lib.dup2(devNull, fd) < 0) throw errnoError("dup2", errno());
    }
  } finally {
    lib.close(devNull);
  }
}

/**
 * Names this process (its main thread) `name`, at most 15 bytes, as `ps
 * -e`, `top` and `pgrep` show it (`/proc/<pid>/comm`); its command line
 * stays. Linux only (`prctl(PR_SET_NAME)`); elsewhere it does nothing.
 */
export function setProcessName(name: string): void {
  if (Deno.build.os !== "linux") return;
  const PR_SET_NAME = 15;
  libc().prctl(PR_SET_NAME, new TextEncoder().encode(`${name.slice(0, 15)}\0`));
}

/** Closes `fd`, ignoring errors: used on cleanup paths only. */
export function closeQuietly(fd: number): void {
  if (fd >= 0) libc().close(fd);
}
