/**
 * Where the fields of `struct termios` lie and which bits its flags use, per
 * system: the pty layer's `termios.ts` reads and changes the struct as raw
 * bytes through these tables. Pure data.
 *
 * @module
 */

/**
 * The layout of `struct termios` and the flag bits of one system. Only the
 * bits that raw mode (`cfmakeraw`) touches are listed.
 */
export interface TermiosPlatform {
  /** `sizeof(struct termios)`, padding included. */
  size: number;
  /**
   * Width of `tcflag_t` in bytes (4 on Linux, 8 on macOS). Flags are stored
   * little-endian on every system we run on, and every bit we use lies in
   * the low 32, so only the low four bytes of a flag field are ever touched.
   */
  flagBytes: 4 | 8;
  /** Width of `speed_t` in bytes (4 on Linux, 8 on macOS). */
  speedBytes: 4 | 8;
  /** Byte offsets of the fields. */
  offsets: {
    /** `c_iflag`: input modes. */
    iflag: number;
    /** `c_oflag`: output modes. */
    oflag: number;
    /** `c_cflag`: control modes. */
    cflag: number;
    /** `c_lflag`: local modes. */
    lflag: number;
    /** `c_cc`: the control characters. */
    cc: number;
    /** `c_ispeed`: input speed. */
    ispeed: number;
    /** `c_ospeed`: output speed. */
    ospeed: number;
  };
  /** Number of entries of `c_cc` (NCCS). */
  nccs: number;
  /** Indexes into `c_cc`. */
  cc: {
    /** Least number of bytes a non-canonical read waits for. */
    VMIN: number;
    /** Timeout of a non-canonical read, in tenths of a second. */
    VTIME: number;
  };
  /** `tcsetattr` actions. */
  actions: {
    /** Apply the change at once. */
    TCSANOW: number;
    /** Apply it once everything written so far has been sent. */
    TCSADRAIN: number;
    /** Like TCSADRAIN, and discard input not yet read. */
    TCSAFLUSH: number;
  };
  /** `c_iflag` bits. */
  iflag: {
    /** Ignore a break condition. */
    IGNBRK: number;
    /** A break flushes the queues and sends SIGINT. */
    BRKINT: number;
    /** Mark parity and framing errors with `\377 \0`. */
    PARMRK: number;
    /** Strip the eighth bit of every input byte. */
    ISTRIP: number;
    /** Translate NL to CR on input. */
    INLCR: number;
    /** Ignore CR on input. */
    IGNCR: number;
    /** Translate CR to NL on input. */
    ICRNL: number;
    /** XON/XOFF flow control on output (^S / ^Q are swallowed). */
    IXON: number;
  };
  /** `c_oflag` bits. */
  oflag: {
    /** Output processing; without it every byte leaves as written. */
    OPOST: number;
    /** With OPOST: translate NL to CR NL on output. */
    ONLCR: number;
  };
  /** `c_cflag` bits. */
  cflag: {
    /** Mask of the character size. */
    CSIZE: number;
    /** Eight-bit characters (a CSIZE value). */
    CS8: number;
    /** Generate and check parity. */
    PARENB: number;
  };
  /** `c_lflag` bits. */
  lflag: {
    /** Echo input. */
    ECHO: number;
    /** Echo NL even without ECHO. */
    ECHONL: number;
    /** Canonical (line by line, editable) input. */
    ICANON: number;
    /** INTR, QUIT and SUSP characters send signals. */
    ISIG: number;
    /** Implementation-defined input processing (^V, ^O). */
    IEXTEN: number;
  };
}

/**
 * glibc's `struct termios` on Linux x86_64 and aarch64 (checked with a C
 * program against glibc 2.36 on x86_64: sizeof 60, offsets below, three
 * bytes of padding after `c_cc` at 49..51):
 *
 * ```
 * 0 c_iflag u32 | 4 c_oflag u32 | 8 c_cflag u32 | 12 c_lflag u32
 * 16 c_line u8  | 17 c_cc[32]   | 52 c_ispeed u32 | 56 c_ospeed u32
 * ```
 */
export const LINUX_TERMIOS: TermiosPlatform = Object.freeze({
  size: 60,
  flagBytes: 4,
  speedBytes: 4,
  offsets: {
    iflag: 0,
    oflag: 4,
    cflag: 8,
    lflag: 12,
    cc: 17,
    ispeed: 52,
    ospeed: 56,
  },
  nccs: 32,
  cc: { VMIN: 6, VTIME: 5 },
  actions: { TCSANOW: 0, TCSADRAIN: 1, TCSAFLUSH: 2 },
  iflag: {
    IGNBRK: 0o1,
    BRKINT: 0o2,
    PARMRK: 0o10,
    ISTRIP: 0o40,
    INLCR: 0o100,
    IGNCR: 0o200,
    ICRNL: 0o400,
    IXON: 0o2000,
  },
  oflag: { OPOST: 0o1, ONLCR: 0o4 },
  cflag: { CSIZE: 0o60, CS8: 0o60, PARENB: 0o400 },
  lflag: {
    ECHO: 0o10,
    ECHONL: 0o100,
    ICANON: 0o2,
    ISIG: 0o1,
    IEXTEN: 0o100000,
  },
});

/**
 * The `struct termios` of macOS on x86_64 and arm64 (both LP64), from XNU's
 * `bsd/sys/termios.h` (github.com/apple/darwin-xnu):
 *
 * ```c
 * typedef unsigned long tcflag_t;   // 8 bytes on LP64
 * typedef unsigned char cc_t;
 * typedef long          speed_t;    // 8 bytes on LP64
 * #define NCCS 20
 * struct termios {
 *   tcflag_t c_iflag, c_oflag, c_cflag, c_lflag;
 *   cc_t     c_cc[NCCS];
 *   speed_t  c_ispeed, c_ospeed;
 * };
 * ```
 *
 * Natural alignment gives the offsets: four flags at 0, 8, 16, 24; `c_cc`
 * at 32..51; four bytes of padding (52..55) so the speeds sit 8-aligned at
 * 56 and 64; sizeof 72. The same header defines every value below: VMIN
 * 16, VTIME 17; TCSANOW 0, TCSADRAIN 1, TCSAFLUSH 2; the input flags
 * IGNBRK 0x1, BRKINT 0x2, PARMRK 0x8, ISTRIP 0x20, INLCR 0x40, IGNCR 0x80,
 * ICRNL 0x100, IXON 0x200; the output flags OPOST 0x1, ONLCR 0x2; the
 * control flags CSIZE 0x300, CS8 0x300, PARENB 0x1000; the local flags
 * ECHO 0x8, ECHONL 0x10, ISIG 0x80, ICANON 0x100, IEXTEN 0x400.
 */
export const DARWIN_TERMIOS: TermiosPlatform = Object.freeze({
  size: 72,
  flagBytes: 8,
  speedBytes: 8,
  offsets: {
    iflag: 0,
    oflag: 8,
    cflag: 16,
    lflag: 24,
    cc: 32,
    ispeed: 56,
    ospeed: 64,
  },
  nccs: 20,
  cc: { VMIN: 16, VTIME: 17 },
  actions: { TCSANOW: 0, TCSADRAIN: 1, TCSAFLUSH: 2 },
  iflag: {
    IGNBRK: 0x00000001,
    BRKINT: 0x00000002,
    PARMRK: 0x00000008,
    ISTRIP: 0x00000020,
    INLCR: 0x00000040,
    IGNCR: 0x00000080,
    ICRNL: 0x00000100,
    IXON: 0x00000200,
  },
  oflag: { OPOST: 0x00000001, ONLCR: 0x00000002 },
  cflag: { CSIZE: 0x00000300, CS8: 0x00000300, PARENB: 0x00001000 },
  lflag: {
    ECHO: 0x00000008,
    ECHONL: 0x00000010,
    ICANON: 0x00000100,
    ISIG: 0x00000080,
    IEXTEN: 0x00000400,
  },
});

const PLATFORMS: Partial<Record<typeof Deno.build.os, TermiosPlatform>> = {
  linux: LINUX_TERMIOS,
  darwin: DARWIN_TERMIOS,
};

/**
 * The termios table of `os`; throws `Deno.errors.NotSupported` for a system
 * without one (Windows has no termios; its console is set raw another way).
 *
 * @example
 * ```ts
 * termiosPlatform("darwin").size; // 72
 * ```
 */
export function termiosPlatform(
  os: typeof Deno.build.os = Deno.build.os,
): TermiosPlatform {
  const platform = PLATFORMS[os];
  if (platform === undefined) {
    throw new Deno.errors.NotSupported(`termios: no layout known for ${os}`);
  }
  return platform;
}
