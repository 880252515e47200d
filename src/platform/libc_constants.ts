/**
 * The numbers our libc calls pass and compare, per system: file flags,
 * `fcntl` commands, `poll` events, the one `ioctl` request the pty layer
 * uses, errno values, and where the C library lives. Pure data: `libc.ts`
 * picks the table of the system it runs on, tests check every value
 * against the system's documented headers.
 *
 * Sources:
 * - Linux (x86_64 and aarch64 share them): glibc's `<bits/fcntl-linux.h>`,
 *   `<bits/poll.h>`, the kernel's `asm-generic/ioctls.h`,
 *   `asm-generic/errno-base.h` and `asm-generic/errno.h`; checked against
 *   this system's headers by `tests/platform/libc_constants_test.ts`.
 * - macOS (x86_64 and arm64 share them): XNU's `bsd/sys/fcntl.h`,
 *   `bsd/sys/poll.h`, `bsd/sys/ttycom.h` with `bsd/sys/ioccom.h`, and
 *   `bsd/sys/errno.h` (github.com/apple-oss-distributions/xnu and
 *   github.com/apple/darwin-xnu); each value below names its header.
 *
 * @module
 */

/** The errno values we test for or name in messages. */
export interface ErrnoValues {
  /** Operation not permitted. */
  EPERM: number;
  /** No such file or directory. */
  ENOENT: number;
  /** A signal interrupted the call. */
  EINTR: number;
  /** I/O error; on a pty master, the slave side is closed. */
  EIO: number;
  /** Bad file descriptor. */
  EBADF: number;
  /** The call would block on a non-blocking descriptor. */
  EAGAIN: number;
  /** Out of kernel memory. */
  ENOMEM: number;
  /** Permission denied. */
  EACCES: number;
  /** Invalid argument (also: accept on a socket that stopped listening). */
  EINVAL: number;
  /** The system's table of open files is full. */
  ENFILE: number;
  /** This process has no descriptor left. */
  EMFILE: number;
  /** Not a terminal. */
  ENOTTY: number;
  /** The peer is gone (write on a closed connection). */
  EPIPE: number;
  /** A path is too long. */
  ENAMETOOLONG: number;
  /** The address is in use. */
  EADDRINUSE: number;
  /** The address is not one of ours. */
  EADDRNOTAVAIL: number;
  /** A queued connection was aborted before accept took it. */
  ECONNABORTED: number;
  /** The peer reset the connection. */
  ECONNRESET: number;
  /** No buffer space for the socket operation. */
  ENOBUFS: number;
  /** The socket is not connected. */
  ENOTCONN: number;
  /** Nobody listens there. */
  ECONNREFUSED: number;
}

/** One system's libc numbers. */
export interface LibcConstants {
  /** What `Deno.dlopen` opens: the C library's name or path. */
  library: string;
  /** `open` / `posix_openpt` flag: read and write. */
  O_RDWR: number;
  /** `open` flag: write only. */
  O_WRONLY: number;
  /** `open` flag: do not make the tty our controlling terminal. */
  O_NOCTTY: number;
  /** `open` flag: calls return EAGAIN instead of blocking. */
  O_NONBLOCK: number;
  /** `open` flag: close the descriptor in every program we exec. */
  O_CLOEXEC: number;
  /** `fcntl` command: set the descriptor flags (FD_CLOEXEC). */
  F_SETFD: number;
  /** `fcntl` command: get the file status flags. */
  F_GETFL: number;
  /** `fcntl` command: set the file status flags. */
  F_SETFL: number;
  /** `fcntl` descriptor flag: close on exec. */
  FD_CLOEXEC: number;
  /** `poll` event: data to read. */
  POLLIN: number;
  /** `poll` event: room to write. */
  POLLOUT: number;
  /** `ioctl` request: set a terminal's window size (`struct winsize`). */
  TIOCSWINSZ: number;
  /** The errno values. */
  errno: ErrnoValues;
}

/** glibc on Linux, x86_64 and aarch64. */
export const LINUX_LIBC: LibcConstants = Object.freeze({
  library: "libc.so.6",
  O_RDWR: 0o2,
  O_WRONLY: 0o1,
  O_NOCTTY: 0o400,
  O_NONBLOCK: 0o4000,
  O_CLOEXEC: 0o2000000,
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  FD_CLOEXEC: 1,
  POLLIN: 0x1,
  POLLOUT: 0x4,
  TIOCSWINSZ: 0x5414,
  errno: Object.freeze({
    EPERM: 1,
    ENOENT: 2,
    EINTR: 4,
    EIO: 5,
    EBADF: 9,
    EAGAIN: 11,
    ENOMEM: 12,
    EACCES: 13,
    EINVAL: 22,
    ENFILE: 23,
    EMFILE: 24,
    ENOTTY: 25,
    EPIPE: 32,
    ENAMETOOLONG: 36,
    EADDRINUSE: 98,
    EADDRNOTAVAIL: 99,
    ECONNABORTED: 103,
    ECONNRESET: 104,
    ENOBUFS: 105,
    ENOTCONN: 107,
    ECONNREFUSED: 111,
  }),
});

/**
 * libSystem on macOS, x86_64 and arm64. Since macOS 11 the library is no
 * file on disk but part of the dynamic linker's shared cache, and opening
 * it by its usual path is the documented way to reach it (macOS Big Sur
 * 11.0.1 release notes, "system-provided libraries ... check for library
 * presence by attempting to dlopen() the path").
 */
export const DARWIN_LIBC: LibcConstants = Object.freeze({
  library: "/usr/lib/libSystem.B.dylib",
  // bsd/sys/fcntl.h: O_RDWR 0x0002, O_WRONLY 0x0001, O_NONBLOCK 0x00000004,
  // O_NOCTTY 0x00020000, O_CLOEXEC 0x01000000.
  O_RDWR: 0x0002,
  O_WRONLY: 0x0001,
  O_NOCTTY: 0x00020000,
  O_NONBLOCK: 0x00000004,
  O_CLOEXEC: 0x01000000,
  // bsd/sys/fcntl.h: F_SETFD 2, F_GETFL 3, F_SETFL 4, FD_CLOEXEC 1.
  F_SETFD: 2,
  F_GETFL: 3,
  F_SETFL: 4,
  FD_CLOEXEC: 1,
  // bsd/sys/poll.h: POLLIN 0x0001, POLLOUT 0x0004.
  POLLIN: 0x0001,
  POLLOUT: 0x0004,
  // bsd/sys/ttycom.h: TIOCSWINSZ _IOW('t', 103, struct winsize); with
  // bsd/sys/ioccom.h's _IOC: IOC_IN 0x80000000 | sizeof(struct winsize) 8
  // << 16 | 't' 0x74 << 8 | 103 (0x67).
  TIOCSWINSZ: 0x80087467,
  // bsd/sys/errno.h.
  errno: Object.freeze({
    EPERM: 1,
    ENOENT: 2,
    EINTR: 4,
    EIO: 5,
    EBADF: 9,
    EAGAIN: 35,
    ENOMEM: 12,
    EACCES: 13,
    EINVAL: 22,
    ENFILE: 23,
    EMFILE: 24,
    ENOTTY: 25,
    EPIPE: 32,
    ENAMETOOLONG: 63,
    EADDRINUSE: 48,
    EADDRNOTAVAIL: 49,
    ECONNABORTED: 53,
    ECONNRESET: 54,
    ENOBUFS: 55,
    ENOTCONN: 57,
    ECONNREFUSED: 61,
  }),
});

const TABLES: Partial<Record<typeof Deno.build.os, LibcConstants>> = {
  linux: LINUX_LIBC,
  darwin: DARWIN_LIBC,
};

/**
 * The libc numbers of `os`, or null for a system we have no binding for
 * (Windows among them).
 *
 * @example
 * ```ts
 * const eagain = libcConstants("darwin")?.errno.EAGAIN; // 35
 * ```
 */
export function libcConstants(
  os: typeof Deno.build.os = Deno.build.os,
): LibcConstants | null {
  return TABLES[os] ?? null;
}
