/**
 * The user's own terminal: byte-transparent raw mode while a session runs
 * (always restored, exactly), its size and size changes, keystrokes, and
 * leaving cleanly when a signal ends the client.
 *
 * @module
 */

import { getTermios, makeRaw, setTermios, TCSADRAIN } from "../pty/mod.ts";

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

/** The signals {@linkcode LocalTerminal.guardSignals} handles. */
export type GuardedSignal = "SIGINT" | "SIGTERM" | "SIGHUP" | "SIGQUIT";

/** Their numbers (the same on Linux and macOS), for the 128 + n exit code. */
const GUARDED_SIGNALS: Readonly<Record<GuardedSignal, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGTERM: 15,
};

/** How long a signal's `onSignal` may run before the client leaves anyway. */
const ON_SIGNAL_BUDGET_MS = 300;

const encoder = new TextEncoder();

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
  /** The exact attributes of fd 0 before raw mode; set while raw. */
  #saved: Uint8Array | undefined;

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
    return this.#saved !== undefined;
  }

  /**
   * Saves the exact attributes of stdin's terminal and switches it to raw
   * mode as ssh does (`cfmakeraw`): keystrokes arrive unchanged, byte by
   * byte, and output leaves unchanged (no `\n` to `\r\n`). Does nothing when
   * stdin is not a terminal or already raw. Throws if the attributes cannot
   * be read or set (nothing is changed then).
   */
  enterRaw(): void {
    if (!this.#isTty || this.#saved !== undefined) return;
    const saved = getTermios(STDIN_FD);
    setTermios(STDIN_FD, makeRaw(saved), TCSADRAIN);
    this.#saved = saved;
  }

  /**
   * Puts back the attributes saved by {@linkcode enterRaw}, byte for byte,
   * once pending output is written. Synchronous, idempotent, never throws
   * (a terminal that is gone has nothing to restore).
   */
  restore(): void {
    const saved = this.#saved;
    if (saved === undefined) return;
    this.#saved = undefined;
    try {
      setTermios(STDIN_FD, saved, TCSADRAIN);
    } catch {
      // the terminal is gone; nothing to restore.
    }
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
   * in raw mode the keyboard does not generate them): runs `onSignal` (for
   * at most 300 ms, its errors ignored), then {@linkcode restore},
   * {@linkcode resetModes}, and exits with 128 + the signal's number. A
   * signal that arrives while the first is handled is ignored. Returns a
   * function that removes the listeners.
   */
  guardSignals(
    onSignal: (signal: Deno.Signal) => void | Promise<void>,
  ): () => void {
    let handling = false;
    const listeners = Object.entries(GUARDED_SIGNALS).map(
      ([signal, number]) => {
        const listener = () => {
          if (handling) return;
          handling = true;
          this.#leave(signal as GuardedSignal, number, onSignal);
        };
        Deno.addSignalListener(signal as GuardedSignal, listener);
        return [signal as GuardedSignal, listener] as const;
      },
    );
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

  /** Calls `listener` with the new size on every SIGWINCH. */
  onResize(listener: (size: { cols: number; rows: number }) => void) {
    if (!this.#isTty) return;
    Deno.addSignalListener("SIGWINCH", () => listener(this.size()));
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
