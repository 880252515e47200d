/**
 * The user's own terminal: byte-transparent raw mode while a session runs
 * (always restored), its size and size changes, keystrokes, and leaving
 * cleanly when a signal ends the client.
 *
 * On Linux and macOS raw mode is termios through libc (`cfmakeraw`, output
 * processing off, the exact attributes put back). On Windows it is the
 * console's modes through `Deno.stdin.setRaw` (line input, echo and Ctrl-C
 * processing off, virtual-terminal input on; a console has no output
 * processing to turn off): no termios, and libc is never opened there.
 *
 * @module
 */

import {
  getTermios,
  makeRaw,
  preloadTermios,
  setTermios,
  TCSADRAIN,
} from "../pty/mod.ts";
import { StdOutput } from "../platform/std_output.ts";

const STDIN_FD = 0;

/**
 * Undoes terminal modes a remote program may have left on when a session
 * ends abnormally (as mosh's `Display::close()` does on exit). Each mode is
 * reset on its own, so a terminal that lacks one ignores only that one.
 *
 * Leaving the alternate screen (1049) also restores the cursor saved when
 * it was entered; xterm keeps one saved cursor per screen, so saving the
 * cursor just before makes the restore a no-op when the normal screen was
 * already showing. Resetting the scroll region homes the cursor, hence the
 * save and restore around it.
 */
export const RESET_MODES: string = [
  "\x1b7\x1b[?1049l", // leave the alternate screen
  "\x1b7\x1b[r\x1b8", // scroll region: the whole screen; cursor unmoved
  "\x1b[?1000l", // mouse: press and release reports off
  "\x1b[?1001l", // mouse: highlight tracking off
  "\x1b[?1002l", // mouse: button-event tracking off
  "\x1b[?1003l", // mouse: any-event tracking off
  "\x1b[?1005l", // mouse: UTF-8 coordinates off
  "\x1b[?1006l", // mouse: SGR coordinates off
  "\x1b[?1015l", // mouse: urxvt coordinates off
  "\x1b[?1004l", // focus in/out reports off
  "\x1b[?2004l", // bracketed paste off
  "\x1b[?1l", // cursor keys: normal, not application
  "\x1b>", // keypad: numeric, not application
  "\x1b[?25h", // show the cursor
  "\x1b[0m", // default colors and attributes
].join("");

/** The signals {@linkcode LocalTerminal.guardSignals} may handle. */
export type GuardedSignal =
  | "SIGINT"
  | "SIGTERM"
  | "SIGHUP"
  | "SIGQUIT"
  | "SIGBREAK";

/**
 * The signals {@linkcode LocalTerminal.guardSignals} handles on `os`, with
 * their numbers for the 128 + n exit code. SIGHUP, SIGINT, SIGQUIT and
 * SIGTERM are 1, 2, 3 and 15 on Linux and macOS alike. On Windows there
 * is also SIGBREAK (Ctrl-Break, 21 in the C runtime's `signal.h`); Deno
 * 2.9.6 documents SIGINT, SIGBREAK, SIGTERM, SIGQUIT, SIGHUP and SIGWINCH
 * there, older releases only the first two, so ones the runtime refuses
 * are skipped.
 */
export function guardedSignals(
  os: typeof Deno.build.os,
): ReadonlyArray<readonly [GuardedSignal, number]> {
  const unix = [
    ["SIGHUP", 1],
    ["SIGINT", 2],
    ["SIGQUIT", 3],
    ["SIGTERM", 15],
  ] as const;
  return os === "windows" ? [...unix, ["SIGBREAK", 21]] : unix;
}

/**
 * How often the console size is read on Windows, where no SIGWINCH can be
 * relied on.
 */
const RESIZE_POLL_MS = 250;

/** How long a signal's `onSignal` may run before the client leaves anyway. */
const ON_SIGNAL_BUDGET_MS = 300;

const encoder = new TextEncoder();

/** How stdin's terminal is switched to raw mode and back on one system. */
interface RawMode {
  /** Switches to raw mode; throws, having changed nothing, if it cannot. */
  enter(): void;
  /** Switches back to what was there before `enter`; never throws. */
  restore(): void;
}

/**
 * Linux and macOS: `cfmakeraw` through termios; the exact attributes are
 * saved and put back byte for byte, once pending output is written.
 */
function termiosRawMode(): RawMode {
  let saved: Uint8Array | undefined;
  return {
    enter() {
      const before = getTermios(STDIN_FD);
      setTermios(STDIN_FD, makeRaw(before), TCSADRAIN);
      saved = before;
    },
    restore() {
      if (saved === undefined) return;
      const before = saved;
      saved = undefined;
      try {
        setTermios(STDIN_FD, before, TCSADRAIN);
      } catch {
        // the terminal is gone; nothing to restore.
      }
    },
  };
}

/**
 * Windows: the console's input modes through Deno (`SetConsoleMode`, which
 * needs no FFI of ours). Leaving raw mode turns line input, echo and Ctrl-C
 * processing back on; Deno keeps no copy of the modes before, so a console
 * that had them off gets them on.
 */
function consoleRawMode(): RawMode {
  return {
    enter() {
      Deno.stdin.setRaw(true);
    },
    restore() {
      try {
        Deno.stdin.setRaw(false);
      } catch {
        // the console is gone; nothing to restore.
      }
    },
  };
}

/** Options of {@linkcode LocalTerminal}. */
export interface LocalTerminalOptions {
  /**
   * The system whose way of going raw, signals and resize notices to use;
   * only tests pass another (the Windows path runs on Linux as well, and
   * with FFI denied shows that it opens no libc).
   * @default {Deno.build.os}
   */
  os?: typeof Deno.build.os;
}

/**
 * The local terminal as the client uses it.
 *
 * @example
 * ```ts
 * const local = new LocalTerminal();
 * local.guardSignals(() => sayDetaching());
 * local.enterRaw();
 * try {
 *   // ... relay keystrokes and output ...
 * } finally {
 *   local.restore();
 * }
 * ```
 */
export class LocalTerminal {
  #isTty = Deno.stdin.isTerminal();
  #isOutputTty = Deno.stdout.isTerminal();
  #os: typeof Deno.build.os;
  #rawMode: RawMode;
  #raw = false;
  // Opened on the first write.
  #output: StdOutput | undefined;
  // The write under way (one that waits for room, by the time anything
  // else looks), and since when.
  #slow: Promise<unknown> | null = null;
  #slowSince = 0;

  /** The local terminal of this process; see {@linkcode LocalTerminalOptions}. */
  constructor(options: LocalTerminalOptions = {}) {
    this.#os = options.os ?? Deno.build.os;
    this.#rawMode = this.#os === "windows"
      ? consoleRawMode()
      : termiosRawMode();
  }

  /** True when stdin is a terminal (not a pipe or file). */
  get isTty(): boolean {
    return this.#isTty;
  }

  /** True when stdout is a terminal (not a pipe or file). */
  get isOutputTty(): boolean {
    return this.#isOutputTty;
  }

  /** True between {@linkcode enterRaw} and {@linkcode restore}. */
  get isRaw(): boolean {
    return this.#raw;
  }

  /**
   * Readies {@linkcode enterRaw} ahead of time where stdin is a terminal
   * (on Linux and macOS it binds the C library, ~6 ms once): a client
   * calls it while ssh logs in, so raw mode costs nothing once the
   * session is ready.
   */
  prepareRaw(): void {
    if (this.#isTty && this.#os !== "windows") preloadTermios();
  }

  /**
   * Switches stdin's terminal to raw mode as ssh does: keystrokes arrive
   * unchanged, byte by byte, and output leaves unchanged (on Linux and
   * macOS `cfmakeraw`, which also stops `\n` becoming `\r\n`, after saving
   * the exact attributes; on Windows the console's raw input mode). Does
   * nothing when stdin is not a terminal or already raw. Throws if the
   * mode cannot be read or set (nothing is changed then).
   */
  enterRaw(): void {
    if (!this.#isTty || this.#raw) return;
    this.#rawMode.enter();
    this.#raw = true;
  }

  /**
   * Leaves raw mode: on Linux and macOS puts back the attributes saved by
   * {@linkcode enterRaw}, byte for byte, once pending output is written; on
   * Windows turns the console's line input, echo and Ctrl-C processing back
   * on. Synchronous, idempotent, never throws (a terminal that is gone has
   * nothing to restore).
   */
  restore(): void {
    if (!this.#raw) return;
    this.#raw = false;
    this.#rawMode.restore();
  }

  /**
   * When stdout is a terminal, writes {@linkcode RESET_MODES} to it,
   * synchronously: back to the normal screen, cursor visible, mouse and
   * paste reports off, default keys and colors. For the end of a session
   * that did not end on its own. Never throws.
   */
  resetModes(): void {
    if (!this.#isOutputTty) return;
    writeAllSync(Deno.stdout, encoder.encode(RESET_MODES));
  }

  /**
   * Leaves cleanly on SIGINT, SIGTERM, SIGHUP or SIGQUIT (sent with `kill`:
   * in raw mode the keyboard does not generate them; on Windows also
   * SIGBREAK, and only those the runtime can deliver there): runs
   * `onSignal` (for at most 300 ms, its errors ignored), then
   * {@linkcode restore}, {@linkcode resetModes}, and exits with 128 + the
   * signal's number. A signal that arrives while the first is handled is
   * ignored. Returns a function that removes the listeners.
   */
  guardSignals(
    onSignal: (signal: Deno.Signal) => void | Promise<void>,
  ): () => void {
    let handling = false;
    const listeners: Array<readonly [GuardedSignal, () => void]> = [];
    for (const [signal, number] of guardedSignals(this.#os)) {
      const listener = () => {
        if (handling) return;
        handling = true;
        this.#leave(signal, number, onSignal);
      };
      try {
        Deno.addSignalListener(signal, listener);
      } catch (error) {
        // Windows: this Deno does not deliver that one there.
        if (this.#os !== "windows") throw error;
        continue;
      }
      listeners.push([signal, listener]);
    }
    return () => {
      for (const [signal, listener] of listeners) {
        Deno.removeSignalListener(signal, listener);
      }
    };
  }

  async #leave(
    signal: GuardedSignal,
    number: number,
    onSignal: (signal: Deno.Signal) => void | Promise<void>,
  ): Promise<never> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        (async () => await onSignal(signal))(),
        new Promise((resolve) =>
          timer = setTimeout(resolve, ON_SIGNAL_BUDGET_MS)
        ),
      ]);
    } catch {
      // leaving matters more than saying goodbye.
    } finally {
      clearTimeout(timer);
    }
    this.restore();
    this.resetModes();
    Deno.exit(128 + number);
  }

  /** Columns and rows, or 80x24 when not a terminal. */
  size(): { cols: number; rows: number } {
    try {
      const { columns, rows } = Deno.consoleSize();
      if (columns > 0 && rows > 0) return { cols: columns, rows };
    } catch {
      // not a terminal
    }
    return { cols: 80, rows: 24 };
  }

  /**
   * Calls `listener` with the new size whenever the terminal is resized:
   * on every SIGWINCH on Linux and macOS; on Windows when a poll of the
   * console size (every 250 ms, not keeping the process alive) sees it
   * change. Returns a function that stops it.
   */
  onResize(
    listener: (size: { cols: number; rows: number }) => void,
  ): () => void {
    if (!this.#isTty) return () => {};
    if (this.#os === "windows") {
      let last = this.size();
      const timer = setInterval(() => {
        const now = this.size();
        if (now.cols === last.cols && now.rows === last.rows) return;
        last = now;
        listener(now);
      }, RESIZE_POLL_MS);
      Deno.unrefTimer(timer);
      return () => clearInterval(timer);
    }
    const onSignal = () => listener(this.size());
    Deno.addSignalListener("SIGWINCH", onSignal);
    return () => Deno.removeSignalListener("SIGWINCH", onSignal);
  }

  /**
   * Writes some of `bytes` to stdout and resolves with how many (callers
   * loop, as with `Deno.stdout.write`), each byte exactly once. On Linux
   * the bytes go out synchronously when the output has room: no thread hop
   * on a keystroke's echo ({@linkcode StdOutput}). What it does not take at
   * once (its buffer is full: a slow terminal or reader, or output stopped
   * with Ctrl-S) waits for room, past a brief wait on a worker thread, so
   * the event loop, and with it the network side of the session, never
   * waits long for the terminal. Writes never overtake one another. Once
   * `signal` is aborted it writes nothing more and resolves with what it
   * wrote (see {@linkcode StdOutput.write}).
   */
  async write(bytes: Uint8Array, signal?: AbortSignal): Promise<number> {
    this.#output ??= StdOutput.open(1);
    if (this.#slow !== null) await this.#slow;
    // Settled by the time anything else runs when the output had room; a
    // debug dump sees it only while it waits.
    const slow = this.#output.write(bytes, signal);
    this.#slow = slow;
    this.#slowSince = performance.now();
    try {
      return await slow;
    } finally {
      if (this.#slow === slow) this.#slow = null;
    }
  }

  /**
   * For a debug dump: whether a write to a full terminal is waiting for
   * room, and for how long.
   */
  describe(): string {
    if (this.#slow === null) return "terminal: no slow write";
    const ms = (performance.now() - this.#slowSince).toFixed(0);
    return `terminal: slow write pending for ${ms} ms`;
  }

  /** Reads keystrokes (or piped input); null at end of input. */
  async read(buffer: Uint8Array): Promise<number | null> {
    return await Deno.stdin.read(buffer);
  }
}

/**
 * Writes a one-line notice to stderr, on a line of its own even in raw
 * mode, never to stdout (a captured stdout stays byte-exact). In raw mode
 * output processing is off, so the line ends are written as `\r\n` here.
 */
export function notice(text: string, raw: boolean) {
  const line = raw ? `\r\n[et: ${text}]\r\n` : `et: ${text}\n`;
  writeAllSync(Deno.stderr, encoder.encode(line));
}

/** Writes all of `bytes`; gives up quietly if the stream is closed. */
function writeAllSync(
  stream: { writeSync(p: Uint8Array): number },
  bytes: Uint8Array,
): void {
  try {
    for (let at = 0; at < bytes.length;) {
      const n = stream.writeSync(bytes.subarray(at));
      if (n <= 0) return;
      at += n;
    }
  } catch {
    // closed: nowhere to write it.
  }
}
