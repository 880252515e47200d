/**
 * Drives a program in a real terminal, the way a person would: through tmux,
 * typing keys and reading the screen.
 *
 * @module
 */

/** Options of {@linkcode TmuxTerminal.start}. */
export interface TmuxTerminalOptions {
  /**
   * Terminal width in columns.
   * @default {100}
   */
  cols?: number;
  /**
   * Terminal height in rows.
   * @default {30}
   */
  rows?: number;
  /** Extra environment variables for the program. */
  env?: Record<string, string>;
  /**
   * Working directory of the program.
   * @default {Deno.cwd()}
   */
  cwd?: string;
}

const SESSION = "et";
const POLL_MS = 50;

/**
 * The pane runs `sh -c WRAPPER <status file> <command...>`. The wrapper runs
 * the command, writes its exit status to the status file, and then keeps the
 * pane open.
 *
 * Why not the command alone with remain-on-exit and #{pane_dead_status}:
 * tmux 3.3a (Debian 12) races there. When the pty closes before tmux reaps
 * the child, the pane is dead but its status stays empty for good; when tmux
 * reaps first, it drops output not yet read from the pty, so the last lines
 * a quickly exiting program printed never reach the screen. Here the pane
 * outlives the command, so all of its output is read, and the status comes
 * from the file. remain-on-exit stays on as a fallback if the wrapper itself
 * is killed.
 *
 * The traps keep the wrapper alive when C-c, C-\ or C-z reach the whole
 * foreground process group; they are handlers, not ignores, so the command
 * still gets the default actions (exec resets caught signals, but would
 * pass on ignored ones).
 */
const WRAPPER = [
  "status_file=$1",
  "shift",
  "trap : INT QUIT TSTP",
  '"$@"',
  "status=$?",
  'printf %s "$status" > "$status_file.tmp" && mv "$status_file.tmp" "$status_file"',
  "exec sleep infinity",
].join("\n");

/**
 * A program running in its own tmux server (a private socket per instance),
 * with a fixed-size terminal and no status line, so the pane is exactly
 * `cols` x `rows`.
 *
 * @example
 * ```ts
 * const term = await TmuxTerminal.start(["bash", "--norc", "--noprofile"]);
 * try {
 *   await term.type("echo hi");
 *   await term.sendKeys("Enter");
 *   await term.waitFor(/^hi$/m);
 * } finally {
 *   await term.kill();
 * }
 * ```
 */
export class TmuxTerminal {
  #dir: string;
  #socket: string;
  #statusFile: string;
  #killed: Promise<void> | undefined;

  private constructor(dir: string) {
    this.#dir = dir;
    this.#socket = `${dir}/sock`;
    this.#statusFile = `${dir}/status`;
  }

  /** Starts `command` (argv, run without a shell) in a new terminal. */
  static async start(
    command: string[],
    options: TmuxTerminalOptions = {},
  ): Promise<TmuxTerminal> {
    if (command.length === 0) throw new Error("empty command");
    const dir = await Deno.makeTempDir({ prefix: "et-tmux-" });
    const term = new TmuxTerminal(dir);
    try {
      // Options come from a file read at server start: set later, they
      // would race with a command that exits at once.
      await Deno.writeTextFile(
        `${dir}/tmux.conf`,
        [
          "set -g remain-on-exit on",
          // The status line would take a row from the pane.
          "set -g status off",
          // Escape-prefixed keys (Alt-x) arrive without tmux's default
          // 500 ms wait for more.
          "set -g escape-time 0",
          "set -g history-limit 10000",
          "",
        ].join("\n"),
      );
      const env = Object.entries(options.env ?? {}).flatMap((
        [k, v],
      ) => ["-e", `${k}=${v}`]);
      await term.#tmux(
        "-f",
        `${dir}/tmux.conf`,
        "new-session",
        "-d",
        "-s",
        SESSION,
        "-x",
        String(options.cols ?? 100),
        "-y",
        String(options.rows ?? 30),
        "-c",
        options.cwd ?? Deno.cwd(),
        ...env,
        "--",
        "sh",
        "-c",
        WRAPPER,
        "sh",
        term.#statusFile,
        ...command,
      );
      return term;
    } catch (error) {
      await term.kill();
      throw error;
    }
  }

  /** Sends tmux key names, e.g. `"C-c"`, `"Enter"`, `"Up"`, `"M-x"`. */
  async sendKeys(...keys: string[]): Promise<void> {
    await this.#tmux("send-keys", "-t", SESSION, ...keys);
  }

  /** Types `text` literally (no key names; a newline is a line feed, not Enter). */
  async type(text: string): Promise<void> {
    // tmux takes an argument ending in ";" as the end of a command.
    const literal = text.endsWith(";") ? `${text.slice(0, -1)}\\;` : text;
    await this.#tmux("send-keys", "-t", SESSION, "-l", "--", literal);
  }

  /** The visible screen: one line per row, trailing spaces trimmed. */
  async capture(): Promise<string> {
    return await this.#tmux("capture-pane", "-p", "-t", SESSION);
  }

  /**
   * The visible screen with its attributes as SGR sequences (`capture-pane
   * -e`): an underline or a color left behind shows here, not in
   * {@linkcode capture}.
   */
  async captureStyled(): Promise<string> {
    return await this.#tmux("capture-pane", "-p", "-e", "-t", SESSION);
  }

  /** The cursor position, 0-based, as tmux has it. */
  async cursor(): Promise<{ row: number; col: number }> {
    const [col, row] = (await this.#tmux(
      "display-message",
      "-p",
      "-t",
      SESSION,
      "#{cursor_x} #{cursor_y}",
    )).trim().split(" ").map(Number);
    return { row, col };
  }

  /**
   * Polls the screen every ~50 ms until it contains `pattern` (a substring,
   * or a RegExp tested against the whole screen) and returns that screen.
   * On timeout, throws an Error that shows the last screen.
   */
  async waitFor(pattern: string | RegExp, timeoutMs = 10_000): Promise<string> {
    const matches = (screen: string) =>
      typeof pattern === "string"
        ? screen.includes(pattern)
        : pattern.test(screen);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const screen = await this.capture();
      if (matches(screen)) return screen;
      if (Date.now() >= deadline) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for ${
            String(pattern)
          }; last screen:\n${frame(screen)}`,
        );
      }
      await sleep(POLL_MS);
    }
  }

  /**
   * Resizes the terminal; the program gets SIGWINCH. (resize-window also
   * switches the window to window-size manual, so the size sticks. Setting
   * that option in the config instead crashes tmux 3.3a's server.)
   */
  async resize(cols: number, rows: number): Promise<void> {
    await this.#tmux(
      "resize-window",
      "-t",
      SESSION,
      "-x",
      String(cols),
      "-y",
      String(rows),
    );
  }

  /**
   * The program's exit status, or null while it runs. Killed by a signal,
   * it is 128 + the signal number, as a shell reports it.
   */
  async exitStatus(): Promise<number | null> {
    try {
      return Number(await Deno.readTextFile(this.#statusFile));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    // Fallback: the wrapper itself died (e.g. killed), tmux may know.
    const [dead, status, signal] = (await this.#tmux(
      "display-message",
      "-p",
      "-t",
      SESSION,
      "#{pane_dead} #{pane_dead_status} #{pane_dead_signal}",
    )).trim().split(" ");
    if (dead !== "1") return null;
    if (status) return Number(status);
    if (signal) return 128 + Number(signal);
    return null; // Dead, but tmux has not reaped it yet.
  }

  /** Waits until the program exits and returns its exit status. */
  async waitExit(timeoutMs = 10_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = await this.exitStatus();
      if (status !== null) return status;
      if (Date.now() >= deadline) {
        throw new Error(
          `program still running after ${timeoutMs} ms; last screen:\n${
            frame(await this.capture())
          }`,
        );
      }
      await sleep(POLL_MS);
    }
  }

  /** Kills the tmux server (and so the program) and removes the temp dir. */
  kill(): Promise<void> {
    return this.#killed ??= (async () => {
      // Fails when the server never started or is gone already: fine.
      await this.#tmux("kill-server").catch(() => {});
      await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
    })();
  }

  async #tmux(...args: string[]): Promise<string> {
    const env = Deno.env.toObject();
    // Run inside tmux, a test would otherwise hand the outer session's
    // variables to the program.
    delete env.TMUX;
    delete env.TMUX_PANE;
    const out = await new Deno.Command("tmux", {
      args: ["-S", this.#socket, ...args],
      env,
      clearEnv: true,
      stdin: "null",
    }).output().catch((error) => {
      if (error instanceof Deno.errors.NotFound) {
        throw new Error("tmux not found: run `apt-get install -y tmux`");
      }
      throw error;
    });
    const text = (b: Uint8Array) => new TextDecoder().decode(b);
    if (!out.success) {
      throw new Error(
        `tmux ${args[0]} failed (${out.code}): ${text(out.stderr).trim()}`,
      );
    }
    return text(out.stdout);
  }
}

/** A screen with a border, so its blank rows and edges show in messages. */
function frame(screen: string): string {
  const lines = screen.replace(/\n$/, "").split("\n");
  const width = Math.max(0, ...lines.map((line) => line.length));
  const bar = "+" + "-".repeat(width) + "+";
  return [bar, ...lines.map((line) => "|" + line.padEnd(width) + "|"), bar]
    .join("\n");
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
