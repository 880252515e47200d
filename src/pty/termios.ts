/**
 * Terminal attributes (`struct termios`) through libc: read them, set them,
 * and compute the raw mode that `cfmakeraw` would. The struct is handled as
 * the exact bytes libc returns, so a saved state can be put back byte for
 * byte; its layout and flag bits come from the platform's table
 * (`src/platform/termios_layout.ts`: Linux and macOS).
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
import {
  type TermiosPlatform,
  termiosPlatform,
} from "../platform/termios_layout.ts";

export {
  DARWIN_TERMIOS,
  LINUX_TERMIOS,
  type TermiosPlatform,
  termiosPlatform,
} from "../platform/termios_layout.ts";

/**
 * `tcsetattr` action: apply the change at once. The value is 0 on Linux and
 * on macOS alike (each table's `actions` says so, and a test checks it).
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
 * const translatesNewlines = (oflag & termiosPlatform().oflag.OPOST) !== 0;
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
 * Binds the C library now (~6 ms, once), so that the first
 * {@linkcode getTermios} does not pay it at a moment that counts (a
 * client entering raw mode once its session is ready). Throws nothing:
 * where it cannot bind, that first call says so.
 */
export function preloadTermios(): void {
  try {
    libc();
  } catch { /* reported by the first real call */ }
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
 *
 * `platform` says where the fields lie and what the bits are worth (the
 * running system's table by default), so the same change is made on a
 * macOS layout: there the flag words are 8 bytes wide and their high 32
 * bits, which none of these bits touch, are kept as they are.
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
