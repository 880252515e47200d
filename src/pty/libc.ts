/**
 * Private FFI bindings to the few glibc calls the pty layer needs. Nothing
 * outside `src/pty/` should import this file: the `Pty` class and the
 * functions of `termios.ts` are the public surface.
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

/** errno: a signal interrupted the call. */
export const EINTR = 4;
/** errno: I/O error; on a pty master, the slave side is closed. */
export const EIO = 5;
/** errno: the call would block on a non-blocking fd. */
export const EAGAIN = 11;

const SYMBOLS = {
  posix_openpt: { parameters: ["i32"], result: "i32" },
  grantpt: { parameters: ["i32"], result: "i32" },
  unlockpt: { parameters: ["i32"], result: "i32" },
  ptsname_r: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // The only call that may wait: it runs on a worker thread so the event loop
  // stays free. Reads and writes happen synchronously after it says the fd is
  // ready, on an O_NONBLOCK fd, so they never wait either.
  poll: {
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  // ioctl and fcntl are variadic in C; on the Linux ABIs we run on, passing
  // the one extra integer or pointer as a fixed argument is equivalent.
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  // struct termios is passed by pointer; termios.ts owns its layout.
  tcgetattr: { parameters: ["i32", "buffer"], result: "i32" },
  tcsetattr: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The bound libc functions, as `Deno.dlopen` types them. */
export type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let library: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;
let errnoView: Deno.UnsafePointerView | undefined;

/**
 * Opens libc on first use, so that importing the pty layer costs nothing
 * (and needs no --allow-ffi) until a pty is actually spawned.
 */
export function libc(): Libc {
  if (library === undefined) {
    if (Deno.build.os !== "linux") {
      throw new Deno.errors.NotSupported(
        `pty: only Linux is supported, not ${Deno.build.os}`,
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
  13: "EACCES",
  22: "EINVAL",
  24: "EMFILE",
  25: "ENOTTY",
};

/** An error for a failed libc call, naming the call and its errno. */
export function errnoError(call: string, code: number): Error {
  const name = ERRNO_NAMES[code] ?? `errno ${code}`;
  return new Error(`pty: ${call} failed: ${name} (${code})`);
}

/** Closes `fd`, ignoring errors: used on cleanup paths only. */
export function closeQuietly(fd: number): void {
  if (fd >= 0) libc().close(fd);
}
