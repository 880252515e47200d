/**
 * The program's one binding to glibc through FFI, opened lazily on first
 * use: the pty layer (pseudo-terminals, termios) and the socket helpers
 * (listeners, peer credentials, descriptor passing, readiness) share it.
 * Callers outside `src/platform/` use the layer's own modules (`Pty`,
 * `termios.ts`, `socket.ts`, `reactor.ts`), not these raw calls, except the
 * pty layer, which is built directly on them.
 *
 * Constants are the Linux values shared by x86_64 and aarch64; the library
 * refuses to open on other systems rather than pass wrong numbers.
 *
 * @module
 */

/** `open` / `posix_openpt` flag: read and write. */
export const O_RDWR = 0o2;
/** `open` flag: do not make the tty our controlling terminal. */
export const O_NOCTTY = 0o400;
/** `open` flag: calls return EAGAIN instead of blocking. */
export const O_NONBLOCK = 0o4000;
/** `open` flag: close the fd in every program we exec. */
export const O_CLOEXEC = 0o2000000;

/** `fcntl` command: set the fd flags (FD_CLOEXEC). */
export const F_SETFD = 2;
/** `fcntl` command: get the file status flags. */
export const F_GETFL = 3;
/** `fcntl` command: set the file status flags. */
export const F_SETFL = 4;
/** `fcntl` fd flag: close on exec. */
export const FD_CLOEXEC = 1;

/** `poll` event: data to read. */
export const POLLIN = 0x1;
/** `poll` event: room to write. */
export const POLLOUT = 0x4;

/** `ioctl` request: set the terminal's window size (struct winsize). */
export const TIOCSWINSZ = 0x5414;

/** errno: operation not permitted. */
export const EPERM = 1;
/** errno: a signal interrupted the call. */
export const EINTR = 4;
/** errno: I/O error; on a pty master, the slave side is closed. */
export const EIO = 5;
/** errno: bad file descriptor. */
export const EBADF = 9;
/** errno: the call would block on a non-blocking fd. */
export const EAGAIN = 11;
/** errno: out of kernel memory. */
export const ENOMEM = 12;
/** errno: invalid argument (also: accept on a socket that stopped listening). */
export const EINVAL = 22;
/** errno: the system's table of open files is full. */
export const ENFILE = 23;
/** errno: this process has no descriptor left. */
export const EMFILE = 24;
/** errno: the peer is gone (write on a closed connection). */
export const EPIPE = 32;
/** errno: no buffer space for the socket operation. */
export const ENOBUFS = 105;
/** errno: a queued connection was aborted before accept took it. */
export const ECONNABORTED = 103;
/** errno: the peer reset the connection. */
export const ECONNRESET = 104;

const SYMBOLS = {
  posix_openpt: { parameters: ["i32"], result: "i32" },
  grantpt: { parameters: ["i32"], result: "i32" },
  unlockpt: { parameters: ["i32"], result: "i32" },
  ptsname_r: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // The only calls that may wait: they run on a worker thread so the event
  // loop stays free. Reads and writes happen synchronously after one says the
  // fd is ready, on an O_NONBLOCK fd, so they never wait either.
  poll: {
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  epoll_wait: {
    parameters: ["i32", "buffer", "i32", "i32"],
    result: "i32",
    nonblocking: true,
  },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  // ioctl and fcntl are variadic in C; on the Linux ABIs we run on, passing
  // the one extra integer or pointer as a fixed argument is equivalent.
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  // struct termios is passed by pointer; termios.ts owns its layout.
  tcgetattr: { parameters: ["i32", "buffer"], result: "i32" },
  tcsetattr: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  // Sockets; socket.ts owns the layouts of the structs passed here.
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: {
    parameters: ["i32", "buffer", "buffer", "i32"],
    result: "i32",
  },
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
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The bound libc functions, as `Deno.dlopen` types them. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let library: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;
let errnoView: Deno.UnsafePointerView | undefined;

/**
 * Opens libc on first use, so that importing a layer built on it costs
 * nothing (and needs no --allow-ffi) until it is actually used.
 */
export function libc(): Libc {
  if (library === undefined) {
    if (Deno.build.os !== "linux") {
      throw new Deno.errors.NotSupported(
        `only Linux is supported, not ${Deno.build.os}`,
      );
    }
    library = Deno.dlopen("libc.so.6", SYMBOLS);
  }
  return library.symbols;
}

/**
 * Reads errno of the JS thread. Call it right after the failing synchronous
 * call. The address is cached: errno is thread-local, and an isolate (main or
 * worker) always runs on the one thread whose module instance holds the cache.
 */
export function errno(): number {
  errnoView ??= new Deno.UnsafePointerView(libc().__errno_location()!);
  return errnoView.getInt32();
}

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  4: "EINTR",
  5: "EIO",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  22: "EINVAL",
  23: "ENFILE",
  24: "EMFILE",
  25: "ENOTTY",
  32: "EPIPE",
  36: "ENAMETOOLONG",
  98: "EADDRINUSE",
  99: "EADDRNOTAVAIL",
  103: "ECONNABORTED",
  104: "ECONNRESET",
  105: "ENOBUFS",
  107: "ENOTCONN",
  111: "ECONNREFUSED",
};

/** The symbolic name of an errno value, e.g. "EAGAIN". */
export function errnoName(code: number): string {
  return ERRNO_NAMES[code] ?? `errno ${code}`;
}

/** An error for a failed libc call, naming the call and its errno. */
export function errnoError(call: string, code: number): Error {
  return new Error(`${call} failed: ${errnoName(code)} (${code})`);
}

/** Closes `fd`, ignoring errors: used on cleanup paths only. */
export function closeQuietly(fd: number): void {
  if (fd >= 0) libc().close(fd);
}
