/**
 * The per-system libc numbers: macOS's table against the values XNU's
 * headers document (written out here, header by header, independently of
 * the table), Linux's against this system's own headers through a small C
 * program, and the binding's refusal of any other system.
 */

import assert from "node:assert/strict";
import {
  DARWIN_LIBC,
  libcConstants,
  LINUX_LIBC,
} from "../../src/platform/libc_constants.ts";
import { errnoName, openLibc, requireLinux } from "../../src/platform/libc.ts";

/**
 * `_IOW(g, n, t)` of XNU's bsd/sys/ioccom.h:
 * `IOC_IN | ((sizeof(t) & IOCPARM_MASK) << 16) | (g << 8) | n`, with
 * IOC_IN 0x80000000 and IOCPARM_MASK 0x1fff.
 */
function darwinIow(group: string, num: number, size: number): number {
  const IOC_IN = 0x80000000;
  const IOCPARM_MASK = 0x1fff;
  return (IOC_IN | ((size & IOCPARM_MASK) << 16) |
    (group.charCodeAt(0) << 8) | num) >>> 0;
}

Deno.test("the macOS table holds the values XNU's headers define", () => {
  assert.equal(libcConstants("darwin"), DARWIN_LIBC);
  // The library: libSystem, reached by its path in the shared cache.
  assert.equal(DARWIN_LIBC.library, "/usr/lib/libSystem.B.dylib");
  // bsd/sys/fcntl.h
  assert.equal(DARWIN_LIBC.O_RDWR, 0x0002);
  assert.equal(DARWIN_LIBC.O_NONBLOCK, 0x00000004);
  assert.equal(DARWIN_LIBC.O_NOCTTY, 0x00020000);
  assert.equal(DARWIN_LIBC.O_CLOEXEC, 0x01000000);
  assert.equal(DARWIN_LIBC.F_SETFD, 2);
  assert.equal(DARWIN_LIBC.F_GETFL, 3);
  assert.equal(DARWIN_LIBC.F_SETFL, 4);
  assert.equal(DARWIN_LIBC.FD_CLOEXEC, 1);
  // bsd/sys/poll.h
  assert.equal(DARWIN_LIBC.POLLIN, 0x0001);
  assert.equal(DARWIN_LIBC.POLLOUT, 0x0004);
  // bsd/sys/ttycom.h: TIOCSWINSZ _IOW('t', 103, struct winsize), where
  // struct winsize is four unsigned shorts (8 bytes).
  assert.equal(DARWIN_LIBC.TIOCSWINSZ, darwinIow("t", 103, 8));
  assert.equal(DARWIN_LIBC.TIOCSWINSZ, 0x80087467);
  // bsd/sys/errno.h
  assert.deepEqual({ ...DARWIN_LIBC.errno }, {
    EPERM: 1,
    ENOENT: 2,
    EINTR: 4,
    EIO: 5,
    EBADF: 9,
    EAGAIN: 35, // "11 was EAGAIN": EDEADLK is 11 on macOS
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
  });
});

Deno.test("the ioctl encoding reproduces other documented XNU requests", () => {
  // Cross-checks of darwinIow itself against numbers well known from
  // macOS: TIOCSETA _IOW('t', 20, struct termios) with sizeof 72, and
  // TIOCGWINSZ _IOR('t', 104, struct winsize) (IOC_OUT 0x40000000).
  assert.equal(darwinIow("t", 20, 72), 0x80487414);
  assert.equal(
    (0x40000000 | (8 << 16) | ("t".charCodeAt(0) << 8) | 104) >>> 0,
    0x40087468,
  );
});

Deno.test({
  name: "the Linux table matches this system's headers",
  ignore: Deno.build.os !== "linux",
}, async () => {
  assert.equal(libcConstants("linux"), LINUX_LIBC);
  const names = [
    "O_RDWR",
    "O_WRONLY",
    "O_NOCTTY",
    "O_NONBLOCK",
    "O_CLOEXEC",
    "F_SETFD",
    "F_GETFL",
    "F_SETFL",
    "FD_CLOEXEC",
    "POLLIN",
    "POLLOUT",
    "TIOCSWINSZ",
    ...Object.keys(LINUX_LIBC.errno),
  ];
  const dir = await Deno.makeTempDir({ prefix: "et-libc-constants-" });
  try {
    await Deno.writeTextFile(
      `${dir}/constants.c`,
      `#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/ioctl.h>
int main(void) {
${names.map((name) => `  printf("%ld\\n", (long)${name});`).join("\n")}
  return 0;
}
`,
    );
    let compiled;
    try {
      compiled = await new Deno.Command("cc", {
        args: ["-o", `${dir}/constants`, `${dir}/constants.c`],
      }).output();
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      console.warn("no C compiler (cc): Linux constants not checked");
      return;
    }
    assert.ok(compiled.success, new TextDecoder().decode(compiled.stderr));
    const out = await new Deno.Command(`${dir}/constants`).output();
    const values = new TextDecoder().decode(out.stdout).trim().split("\n")
      .map(Number);
    const table: Record<string, number> = {
      ...LINUX_LIBC,
      ...LINUX_LIBC.errno,
    } as unknown as Record<string, number>;
    assert.deepEqual(
      Object.fromEntries(names.map((name, i) => [name, values[i]])),
      Object.fromEntries(names.map((name) => [name, table[name]])),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("no table, and no C library, for other systems", () => {
  assert.equal(libcConstants("windows"), null);
  assert.equal(libcConstants("freebsd"), null);
  for (const os of ["windows", "freebsd", "android"] as const) {
    assert.throws(
      () => openLibc(os),
      (error: Error) => {
        assert.ok(error instanceof Deno.errors.NotSupported);
        assert.equal(
          error.message,
          `no C library binding for ${os}: et's native calls run on Linux and macOS`,
        );
        assert.ok(!error.message.includes("\n"));
        return true;
      },
    );
  }
});

Deno.test("errno names follow the running system's table", () => {
  const host = libcConstants() ?? LINUX_LIBC;
  assert.equal(errnoName(host.errno.EAGAIN), "EAGAIN");
  assert.equal(errnoName(host.errno.ECONNRESET), "ECONNRESET");
  assert.equal(errnoName(100_000), "errno 100000");
});

Deno.test("Linux-only callers stop with one line elsewhere", () => {
  requireLinux("sockets as descriptors", "linux");
  for (const os of ["darwin", "windows"] as const) {
    assert.throws(
      () => requireLinux("sockets as descriptors", os),
      (error: Error) =>
        error instanceof Deno.errors.NotSupported &&
        error.message === `sockets as descriptors: Linux only, not ${os}`,
    );
  }
});
