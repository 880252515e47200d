/**
 * ScreenResume: `--resume screen`, the terminal side's way to catch up a
 * client after a huge backlog. Every byte the program prints goes, as it
 * is read, into a headless terminal emulator (`@xterm/headless`) and into
 * a private log file. While the client is away the program is never
 * blocked: once more than {@link SCREEN_RESUME_THRESHOLD_BYTES} wait for
 * it, the waiting bytes leave memory (they are in the log and the
 * emulator). When a client is back and more than the threshold was
 * missed, the missed bytes are replaced by a snapshot of the screen (the
 * last {@link SNAPSHOT_SCROLLBACK_LINES} lines of scrollback, the screen
 * and all the state later output depends on: `screen_snapshot.ts`) and
 * one line saying where the whole stream is. Below the threshold the
 * bytes go as they are.
 *
 * The transport knows nothing of this: the decision is made on the
 * session's output backlog, on bytes the transport does not hold yet.
 * Bytes it holds (its window) are sent again as always, before the
 * snapshot, which begins by clearing the screen.
 *
 * The emulator's npm package loads lazily: only sessions with this option
 * pay for it.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";
import type { OutputBacklog } from "./backlog.ts";
import type { OutputSource } from "./program.ts";
import {
  createScreenEmulator,
  feedEmulator,
  neutralText,
  type ScreenEmulator,
  screenSnapshot,
  SNAPSHOT_SCROLLBACK_LINES,
} from "./screen_snapshot.ts";

export { SNAPSHOT_SCROLLBACK_LINES };

const log = logger("resume");

/**
 * Missed output past which a returning client gets a snapshot instead of
 * the bytes (and past which, while it is away, they leave memory). A
 * megabyte takes seconds on a slow link; a screen is tens of kilobytes.
 */
export const SCREEN_RESUME_THRESHOLD_BYTES = 1024 * 1024;

/**
 * Size at which the output log starts over: the full part becomes
 * `<id>.out.1` (replacing an older one) and a new `<id>.out` begins. So a
 * program printing for days keeps at most twice this on the remote disk
 * (the runtime directory is often a tmpfs, in memory), always the latest
 * of its output.
 */
export const SCREEN_LOG_PART_BYTES = 256 * 1024 * 1024;

/** Options of a new log part: owner-only, never an existing file or link. */
const NEW_LOG: Deno.OpenOptions = { write: true, createNew: true, mode: 0o600 };

const encoder = new TextEncoder();

/** What {@link ScreenResume.start} needs. */
export interface ScreenResumeOptions {
  /** The user's private runtime directory (0700, checked), for the log. */
  dir: string;
  /** The session id, hex: the log is `<dir>/<id>.out`. */
  idHex: string;
  /** The pty's size at the start. */
  cols: number;
  rows: number;
  /**
   * Where the log starts over (tests make it small).
   * @default {SCREEN_LOG_PART_BYTES}
   */
  logPartBytes?: number;
}

/** A session's emulator, log file and resume decision. */
export class ScreenResume {
  /** Where the whole output stream is written. */
  readonly logPath: string;
  #emulator: ScreenEmulator;
  #log: Deno.FsFile | null;
  #logBytes = 0;
  // Bytes in the current part, its cap, and whether an older part exists.
  #partBytes = 0;
  #partCap: number;
  #rotated = false;
  #logError: string | null = null;
  #backlog: OutputBacklog | null = null;
  // Bytes dropped since the client last caught up (folded while away).
  #missed = 0;
  #folded = false;
  // Once a client was told about the log, it outlives the session.
  #announced = false;
  #closed = false;
  // Logged once: the emulator threw on some output.
  #emulatorFailed = false;

  private constructor(
    logPath: string,
    logFile: Deno.FsFile,
    partCap: number,
    emulator: ScreenEmulator,
  ) {
    this.logPath = logPath;
    this.#partCap = partCap;
    this.#log = logFile;
    this.#emulator = emulator;
  }

  /**
   * Loads the emulator and creates the log file: owner-only (0600), new
   * (never an existing file or a link someone left there), in the user's
   * private runtime directory.
   *
   * @example
   * ```ts
   * const screen = await ScreenResume.start({ dir, idHex, cols: 80, rows: 24 });
   * const source = screen.tap(program.output, () => !present);
   * ```
   */
  static async start(options: ScreenResumeOptions): Promise<ScreenResume> {
    const emulator = await createScreenEmulator(options.cols, options.rows);
    const logPath = `${options.dir}/${options.idHex}.out`;
    const logFile = await Deno.open(logPath, NEW_LOG);
    return new ScreenResume(
      logPath,
      logFile,
      Math.max(1, options.logPartBytes ?? SCREEN_LOG_PART_BYTES),
      emulator,
    );
  }

  /**
   * {@link start} when `options` is given, else null; never throws: without
   * it the session resumes by bytes (the reason is logged).
   */
  static async startOrNull(
    options: ScreenResumeOptions | null,
  ): Promise<ScreenResume | null> {
    if (options === null) return null;
    try {
      const screen = await ScreenResume.start(options);
      log.info(
        `session ${options.idHex.slice(0, 8)}: output log ${screen.logPath}`,
      );
      return screen;
    } catch (error) {
      log.warn(`--resume screen unavailable: ${errorMessage(error)}`);
      return null;
    }
  }

  /**
   * Wraps the program's output: each chunk is recorded (emulator, log) as
   * it is read. Before each read, while `away()`, bytes piled up past the
   * threshold are dropped from `backlog` (see {@link bind}): the program
   * reads on, memory stays bounded.
   */
  tap(source: OutputSource, away: () => boolean): OutputSource {
    return {
      read: async () => {
        const backlog = this.#backlog;
        if (
          backlog !== null && away() &&
          backlog.bytes > SCREEN_RESUME_THRESHOLD_BYTES
        ) {
          this.#missed += backlog.replacePending([]);
          this.#folded = true;
        }
        const chunk = await source.read();
        if (chunk !== null && chunk.length > 0) this.#record(chunk);
        return chunk;
      },
    };
  }

  /** The backlog the tapped source feeds (where the decision is made). */
  bind(backlog: OutputBacklog): void {
    this.#backlog = backlog;
  }

  /** The program's terminal changed size: the emulator follows. */
  resize(cols: number, rows: number): void {
    if (this.#closed) return;
    this.#emulator.terminal.resize(cols, rows);
  }

  /**
   * A client is there (again): if it missed more than the threshold, the
   * bytes it has not been sent become a snapshot and a notice line.
   * Returns true when it did.
   */
  clientBack(): boolean {
    const backlog = this.#backlog;
    if (backlog === null || this.#closed) return false;
    if (!this.#folded && backlog.bytes <= SCREEN_RESUME_THRESHOLD_BYTES) {
      log.info(
        `client back: ${backlog.bytes} bytes not sent yet, at most the ` +
          `threshold: sent as they are`,
      );
      return false;
    }
    // Synchronous from here on: nothing is read between the two calls.
    const missed = this.#missed + backlog.replacePending([]);
    let snapshot: Uint8Array;
    try {
      snapshot = this.snapshot();
    } catch (error) {
      // A bug in the serializer must not cost the session: the notice
      // alone still says where the missed output is.
      log.warn(`snapshot failed: ${errorMessage(error)}`);
      snapshot = new Uint8Array(0);
    }
    // Readable whatever charset or pen the program left on.
    const notice = encoder.encode(
      neutralText(this.#emulator, this.#notice(missed)),
    );
    // The emulator is what the client's terminal shows: the notice too.
    feedEmulator(this.#emulator, notice);
    backlog.replacePending([snapshot, notice]);
    log.info(
      `${missed} bytes missed; a ${snapshot.length}-byte snapshot sent ` +
        `instead (the stream is in ${this.logPath})`,
    );
    this.#missed = 0;
    this.#folded = false;
    this.#announced = true;
    return true;
  }

  /**
   * The screen as bytes for a terminal ({@link screenSnapshot}): a reset
   * and full clear, the last lines of scrollback, the screen (the
   * alternate one after the main one when it is in use), each with its
   * state, the modes, the cursor, the pen.
   */
  snapshot(): Uint8Array {
    return encoder.encode(screenSnapshot(this.#emulator));
  }

  /** Where the log's previous part is, once it started over. */
  get olderLogPath(): string {
    return `${this.logPath}.1`;
  }

  /** Bytes written to the log so far. */
  get logBytes(): number {
    return this.#logBytes;
  }

  /**
   * Stops recording. The log stays when a client was told about it (it
   * holds output that client never saw), else it is removed.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#log?.close();
    } catch { /* closed */ }
    this.#log = null;
    this.#emulator.terminal.dispose();
    if (!this.#announced) {
      for (const path of [this.logPath, this.olderLogPath]) {
        try {
          Deno.removeSync(path);
        } catch { /* gone */ }
      }
    }
  }

  #record(chunk: Uint8Array) {
    if (this.#closed) return;
    // The program's output goes on whatever the emulator makes of it.
    const error = feedEmulator(this.#emulator, chunk);
    if (error !== null && !this.#emulatorFailed) {
      this.#emulatorFailed = true;
      log.warn(`emulator: ${errorMessage(error)} (the snapshot may be off)`);
    }
    if (this.#log === null) return;
    try {
      for (let at = 0; at < chunk.length;) {
        if (this.#partBytes >= this.#partCap) this.#startOver();
        const room = this.#partCap - this.#partBytes;
        const n = this.#log.writeSync(
          chunk.subarray(at, Math.min(chunk.length, at + room)),
        );
        at += n;
        this.#partBytes += n;
        this.#logBytes += n;
      }
    } catch (error) {
      // Disk full, say: the session goes on, the notice says the log is
      // incomplete.
      this.#logError = errorMessage(error);
      log.warn(`output log ${this.logPath}: ${this.#logError}; stopped`);
      try {
        this.#log.close();
      } catch { /* closed */ }
      this.#log = null;
    }
  }

  /**
   * The current part is full: it becomes the older part (replacing the
   * one before) and a new part begins. Both names are in the user's
   * private directory, ours alone, so nobody can swap in a link.
   */
  #startOver() {
    this.#log!.close();
    this.#log = null;
    Deno.renameSync(this.logPath, this.olderLogPath);
    this.#rotated = true;
    this.#log = Deno.openSync(this.logPath, NEW_LOG);
    this.#partBytes = 0;
  }

  #notice(missed: number): string {
    const kept = this.#rotated
      ? `the last ${
        formatBytes(this.#partCap + this.#partBytes)
      } of it are in ${this.olderLogPath} and ${this.logPath}`
      : `all of it is in ${this.logPath} (${formatBytes(this.#logBytes)})`;
    const where = this.#logError === null
      ? kept
      : `the log ${this.logPath} stopped at ${
        formatBytes(this.#logBytes)
      } (${this.#logError})`;
    return `\r\n[et: ${
      formatBytes(missed)
    } of output skipped while you were away; ${where}]\r\n`;
  }
}

/** 1536 → "1.5 KiB"; bytes for a person. */
export function formatBytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}
