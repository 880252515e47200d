/**
 * Terminal attributes (`struct termios`) through libc: read them, set them,
 * and compute the raw mode that `cfmakeraw` would. The struct is handled as
 * the exact bytes libc returns, so a saved state can be put back byte for
 * byte; its layout and flag bits come from one platform table.
 *
 * @example Raw mode, always restored
 * ```ts
 * import { getTermios, makeRaw, setTermios, TCSADRAIN } from "./termios.ts";
 *
 * const saved = getTermios(0);
 * setTermios(0, makeRaw(saved), TCSADRAIN);
 * try {
 *   // ... every byte typed arrives as is; every byte written leaves as is
 * } finally {
 *   setTermios(0, saved, TCSADRAIN);
 * }
 * ```
 *
 * @module
 */

import { EINTR, errno, errnoError, libc } from "../platform/libc.ts";

/**
 * `tcsetattr` action: apply the change at once. The value is 0 on Linux and
 * on macOS alike.
 */
export const TCSANOW = 0;
/**
 * `tcsetattr` action: apply the change once everything written so far has
 * been sent to the terminal (what ssh uses to enter and leave raw mode).
 * The value is 1 on Linux and on macOS alike.
 */
export const TCSADRAIN = 1;
/**
 * `tcsetattr` action: like {@linkcode TCSADRAIN}, and discard input not yet
 * read. The value is 2 on Linux and on macOS alike.
 */
export const TCSAFLUSH = 2;

/** When `tcsetattr` applies a change: {@linkcode TCSANOW}, {@linkcode TCSADRAIN} or {@linkcode TCSAFLUSH}. */
export type TermiosWhen = typeof TCSANOW | typeof TCSADRAIN | typeof TCSAFLUSH;

/**
 * Where the fields of `struct termios` lie and which bits its flags use on
 * one platform. Only the bits that {@linkcode makeRaw} touches are listed.
 */
export interface TermiosPlatform {
  /** `sizeof(struct termios)`, padding included. */
  size: number;
  /**
   * Width of `tcflag_t` in bytes (4 on Linux, 8 on macOS). Flags are stored
   * little-endian on every platform we run on, and every bit we use lies in
   * the low 32, so only the low four bytes of a flag field are ever touched.
   */
  flagBytes: 4 | 8;
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
  offsets: { iflag: 0, oflag: 4, cflag: 8, lflag: 12, cc: 17 },
  nccs: 32,
  cc: { VMIN: 6, VTIME: 5 },
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

const PLATFORMS: Partial<Record<typeof Deno.build.os, TermiosPlatform>> = {
  linux: LINUX_TERMIOS,
};

/**
 * The termios table of `os`; throws `Deno.errors.NotSupported` for a system
 * without one (rather than pass wrong offsets to libc).
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

/** The flag words and control characters of a termios, decoded. */
export interface TermiosFields {
  /** `c_iflag` (its low 32 bits). */
  iflag: number;
  /** `c_oflag` (its low 32 bits). */
  oflag: number;
  /** `c_cflag` (its low 32 bits). */
  cflag: number;
  /** `c_lflag` (its low 32 bits). */
  lflag: number;
  /** A copy of `c_cc`. */
  cc: Uint8Array;
}

/**
 * Decodes the flags and control characters of termios `bytes` (as
 * {@linkcode getTermios} returns them), e.g. to check a mode bit.
 *
 * @example
 * ```ts
 * const { oflag } = termiosFields(getTermios(0));
 * const translatesNewlines = (oflag & LINUX_TERMIOS.oflag.OPOST) !== 0;
 * ```
 */
export function termiosFields(
  bytes: Uint8Array,
  platform: TermiosPlatform = termiosPlatform(),
): TermiosFields {
  checkLength(bytes, platform);
  const view = viewOf(bytes);
  const { offsets } = platform;
  return {
    iflag: view.getUint32(offsets.iflag, true),
    oflag: view.getUint32(offsets.oflag, true),
    cflag: view.getUint32(offsets.cflag, true),
    lflag: view.getUint32(offsets.lflag, true),
    cc: bytes.slice(offsets.cc, offsets.cc + platform.nccs),
  };
}

/**
 * The terminal attributes of `fd` as the exact bytes of `struct termios`
 * (`tcgetattr`), padding zeroed. Throws if `fd` is not a terminal (ENOTTY)
 * or not open (EBADF). On Linux a pty master answers with its slave's
 * attributes.
 */
export function getTermios(fd: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(termiosPlatform().size);
  if (libc().tcgetattr(fd, bytes) < 0) {
    throw errnoError(`tcgetattr(${fd})`, errno());
  }
  return bytes;
}

/**
 * Sets the terminal attributes of `fd` (`tcsetattr`) from `bytes` as
 * {@linkcode getTermios} or {@linkcode makeRaw} returned them. `when` is
 * {@linkcode TCSANOW} (default), {@linkcode TCSADRAIN} or
 * {@linkcode TCSAFLUSH}; a drain interrupted by a signal is retried. Throws
 * on failure. As in C, success means that at least one of the requested
 * changes was applied.
 */
export function setTermios(
  fd: number,
  bytes: Uint8Array,
  when: TermiosWhen = TCSANOW,
): void {
  checkLength(bytes, termiosPlatform());
  while (libc().tcsetattr(fd, when, bytes) < 0) {
    const code = errno();
    if (code !== EINTR) throw errnoError(`tcsetattr(${fd})`, code);
  }
}

/**
 * A copy of termios `bytes` changed exactly as glibc's `cfmakeraw` changes
 * a `struct termios`: no input translation, no flow control, no output
 * processing (so `\n` leaves as `\n`), no echo, no line editing, no signal
 * keys, eight-bit characters, reads return after one byte.
 *
 * ```
 * iflag &= ~(IGNBRK|BRKINT|PARMRK|ISTRIP|INLCR|IGNCR|ICRNL|IXON)
 * oflag &= ~OPOST
 * lflag &= ~(ECHO|ECHONL|ICANON|ISIG|IEXTEN)
 * cflag &= ~(CSIZE|PARENB); cflag |= CS8
 * cc[VMIN] = 1; cc[VTIME] = 0
 * ```
 */
export function makeRaw(
  bytes: Uint8Array,
  platform: TermiosPlatform = termiosPlatform(),
): Uint8Array<ArrayBuffer> {
  checkLength(bytes, platform);
  const raw = bytes.slice();
  const view = viewOf(raw);
  const { offsets, iflag, oflag, cflag, lflag, cc } = platform;
  const clear = (offset: number, mask: number, set = 0) =>
    view.setUint32(
      offset,
      ((view.getUint32(offset, true) & ~mask) | set) >>> 0,
      true,
    );
  clear(
    offsets.iflag,
    iflag.IGNBRK | iflag.BRKINT | iflag.PARMRK | iflag.ISTRIP | iflag.INLCR |
      iflag.IGNCR | iflag.ICRNL | iflag.IXON,
  );
  clear(offsets.oflag, oflag.OPOST);
  clear(
    offsets.lflag,
    lflag.ECHO | lflag.ECHONL | lflag.ICANON | lflag.ISIG | lflag.IEXTEN,
  );
  clear(offsets.cflag, cflag.CSIZE | cflag.PARENB, cflag.CS8);
  raw[offsets.cc + cc.VMIN] = 1;
  raw[offsets.cc + cc.VTIME] = 0;
  return raw;
}

function checkLength(bytes: Uint8Array, platform: TermiosPlatform): void {
  if (bytes.length !== platform.size) {
    throw new RangeError(
      `termios: expected ${platform.size} bytes, got ${bytes.length}`,
    );
  }
}

function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
