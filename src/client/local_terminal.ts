/**
 * The user's own terminal: raw mode while a session runs (always restored),
 * its size and size changes, and keystrokes.
 *
 * @module
 */

/** The local terminal as the client uses it. */
export class LocalTerminal {
  #raw = false;
  #isTty = Deno.stdin.isTerminal();

  /** True when stdin is a terminal (not a pipe or file). */
  get isTty(): boolean {
    return this.#isTty;
  }

  /** Switches the terminal to raw mode, if it is one. */
  enterRaw() {
    if (!this.#isTty || this.#raw) return;
    Deno.stdin.setRaw(true, { cbreak: false });
    this.#raw = true;
  }

  /** Restores cooked mode; safe to call any number of times. */
  restore() {
    if (!this.#raw) return;
    try {
      Deno.stdin.setRaw(false);
    } catch {
      // the terminal is gone; nothing to restore.
    }
    this.#raw = false;
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

const encoder = new TextEncoder();

/**
 * Writes a one-line notice to stderr, on a line of its own even in raw
 * mode, never to stdout (a captured stdout stays byte-exact).
 */
export function notice(text: string, raw: boolean) {
  const line = raw ? `\r\n[et: ${text}]\r\n` : `et: ${text}\n`;
  try {
    Deno.stderr.writeSync(encoder.encode(line));
  } catch {
    // stderr closed: nowhere to say it.
  }
}
