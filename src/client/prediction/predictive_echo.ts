/**
 * Predictive local echo for one session: the model of the local terminal,
 * the predictor, and the one ordered stream of bytes to the local terminal
 * (the remote's output, unchanged, with the overlay's sequences between
 * chunks).
 *
 * The local terminal always shows the model plus the overlay last drawn.
 * Before each chunk of remote output the overlay is taken away (its cells
 * repainted from the model, the cursor and the pen put back), so the
 * remote's bytes land exactly as they would without prediction; after it,
 * the model has parsed the chunk, the predictor has judged its guesses,
 * and what is still predicted is drawn again. Keystrokes change the
 * overlay at once, by difference.
 *
 * @module
 */

import {
  EchoPredictor,
  type Overlay,
  type OverlayCell,
  type PredictMode,
} from "./echo_predictor.ts";
import {
  drawCells,
  repaintCells,
  restoreCursor,
  showCursorAt,
} from "./painter.ts";
import { ScreenModel } from "./screen_model.ts";
import { unref } from "./screen_view.ts";
import { logger } from "../../log.ts";
import { AbortLinks } from "../../abort_links.ts";

const log = logger("predict");

/** Chunks up to this size are judged piece by piece while guesses wait. */
const SPLIT_LIMIT = 4096;

/** Longest wait for the terminal's cursor position report. */
export const ORIGIN_TIMEOUT_MS = 2000;
/** How long after that a late report is still taken out of the keys. */
const LATE_REPORT_MS = 30_000;

const encoder = new TextEncoder();
const latin1 = new TextDecoder("latin1");

/** The bytes of a string of char codes 0..255. */
function latin1Bytes(text: string): Uint8Array {
  return Uint8Array.from(text, (ch) => ch.charCodeAt(0));
}
const EMPTY: Overlay = { cells: [], cursor: null };
const EMPTY_BYTES = new Uint8Array(0);

/** True when an overlay shows nothing. */
function isEmpty(overlay: Overlay): boolean {
  return overlay.cells.length === 0 && overlay.cursor === null;
}

/** What a {@linkcode LocalWrite} is given besides the bytes. */
export interface LocalWriteOptions {
  /**
   * Once aborted, the write writes nothing more and resolves (a write
   * waiting for room included): the client is leaving.
   */
  signal: AbortSignal;
  /** Called with each count of these bytes the terminal took (for the remote's output only). */
  taken?: (count: number) => void;
}

/** Where the bytes for the local terminal go, in order: all of them. */
export type LocalWrite = (
  bytes: Uint8Array,
  options: LocalWriteOptions,
) => Promise<void>;

/**
 * Predictive echo between the session and the local terminal.
 *
 * @example
 * ```ts
 * const echo = await PredictiveEcho.create("adaptive", 80, 24, write);
 * echo.keys(keystrokes);        // before sending them
 * await echo.output(remoteBytes); // instead of writing them yourself
 * ```
 */
export class PredictiveEcho {
  #model: ScreenModel;
  #predictor: EchoPredictor;
  #write: LocalWrite;
  #shown: Overlay = EMPTY;
  #tail: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerDue = Infinity;
  #now: () => number;
  #awaitingReport = false;
  #lateReportUntil = 0;
  /** Writes handed to {@linkcode LocalWrite} or queued, not yet done. */
  #writing = 0;
  #wasShowing = false;
  #partialReport = "";
  // Stopped by the sink's signal: no write starts after it.
  #stopping = new AbortController();
  // The sink's callers' signals: each stops the writes once it aborts.
  #stopLinks = new AbortLinks(() => this.#stopping.abort());
  // The remote's chunk being written through the sink, and how many of
  // the remote's bytes the terminal took through it, in all.
  #counted: Uint8Array | null = null;
  #remoteTaken = 0;
  #countRemote = (count: number) => {
    this.#remoteTaken += count;
  };
  #reportTimer: ReturnType<typeof setTimeout> | undefined;

  private constructor(
    model: ScreenModel,
    predictor: EchoPredictor,
    write: LocalWrite,
    now: () => number,
  ) {
    this.#model = model;
    this.#predictor = predictor;
    this.#write = write;
    this.#now = now;
  }

  /** Predictive echo for a `cols` x `rows` terminal written by `write`. */
  static async create(
    mode: Exclude<PredictMode, "never">,
    cols: number,
    rows: number,
    write: LocalWrite,
    now: () => number = () => performance.now(),
  ): Promise<PredictiveEcho> {
    const model = await ScreenModel.create(cols, rows, now);
    return new PredictiveEcho(model, new EchoPredictor(mode), write, now);
  }

  /** The model (for tests and the benchmark). */
  get model(): ScreenModel {
    return this.#model;
  }

  /** The predictor (for tests and the benchmark). */
  get predictor(): EchoPredictor {
    return this.#predictor;
  }

  /**
   * The remote's output goes here instead of to the terminal. Resolves
   * with `p.length` once the terminal took it all. Once `signal` is
   * aborted (the client is leaving) the echo writes nothing more, a write
   * waiting for room included, and this resolves with how many of `p`'s
   * bytes the terminal took: exact, so the session can send the rest to
   * the next client.
   */
  readonly sink: {
    write(p: Uint8Array, signal?: AbortSignal): Promise<number>;
  } = {
    write: async (p, signal) => {
      if (signal !== undefined) this.#stopLinks.link(signal);
      if (this.#stopping.signal.aborted) return 0;
      const before = this.#remoteTaken;
      this.#counted = p;
      try {
        await this.output(p);
      } finally {
        this.#counted = null;
      }
      return this.#stopping.signal.aborted
        ? this.#remoteTaken - before
        : p.length;
    },
  };

  /**
   * Asks the local terminal where its cursor is (`CSI 6 n`): the remote's
   * output lands there, and the model must start there too. The model sets
   * output aside until the answer comes in on the keyboard's side (see
   * {@linkcode input}), or for {@linkcode ORIGIN_TIMEOUT_MS} at most (then
   * it stays untrusted until a full clear: no predictions). Called at the
   * start and after anything else wrote to the terminal (a notice).
   */
  locate(): Promise<void> {
    const erase = this.#erase();
    this.#predictor.reset();
    this.#model.hold();
    this.#awaitingReport = true;
    clearTimeout(this.#reportTimer);
    this.#reportTimer = unref(setTimeout(() => {
      if (!this.#awaitingReport) return;
      this.#awaitingReport = false;
      // A report that still comes is not the remote's to read: keep taking
      // it out for a while (a remote program asking meanwhile is unlikely).
      this.#lateReportUntil = this.#now() + LATE_REPORT_MS;
      log.info(
        "the terminal did not say where its cursor is: no prediction until the screen is cleared",
      );
      this.#model.placeAt(null);
    }, ORIGIN_TIMEOUT_MS));
    return this.#enqueue(encoder.encode(erase + "\x1b[6n"));
  }

  /**
   * Keystrokes the user typed: predicts them (drawing at once) and returns
   * what to send, which is all of them except the terminal's answer to
   * {@linkcode locate}.
   */
  input(bytes: Uint8Array): Uint8Array {
    const forward = this.takeInput(bytes);
    this.predict(forward);
    return forward;
  }

  /**
   * The part of {@linkcode input} that must come before keystrokes are
   * sent: returns them without the terminal's answer to
   * {@linkcode locate}. {@linkcode predict} must follow, with what it
   * returned, before any later keystrokes are taken.
   */
  takeInput(bytes: Uint8Array): Uint8Array {
    const taking = this.#awaitingReport ||
      this.#now() < this.#lateReportUntil;
    return taking ? this.#takeReport(bytes) : bytes;
  }

  /**
   * The rest of {@linkcode input}: predicts keystrokes that
   * {@linkcode takeInput} returned, drawn at once where shown. The client
   * calls it once the keystrokes are handed to the network: the
   * predictor's ~0.1 ms per key after an idle spell is then off the
   * echo's path. Their echo cannot overtake it (it needs a round trip,
   * and this runs before the event loop takes any output).
   */
  predict(forward: Uint8Array): void {
    if (forward.length === 0) return;
    this.#model.keysTyped();
    this.#predictor.keys(forward, this.#model, this.#now());
    this.#redraw().catch(() => {});
  }

  /** Keystrokes, for tests: {@linkcode input} then the drawing written. */
  keys(bytes: Uint8Array): Promise<void> {
    this.input(bytes);
    return this.#tail;
  }

  /** Takes the cursor position report out of `bytes`; returns the rest. */
  #takeReport(bytes: Uint8Array): Uint8Array {
    // Every report starts with ESC: keys without one, and no report begun
    // in an earlier read, hold none (the regular expressions below cost
    // ~0.05 ms a keystroke after an idle spell, for 30 s after a
    // terminal that never answered).
    if (this.#partialReport === "" && !bytes.includes(0x1b)) return bytes;
    const text = this.#partialReport + latin1.decode(bytes);
    this.#partialReport = "";
    // deno-lint-ignore no-control-regex
    const report = /\x1b\[(\d{1,4});(\d{1,4})R/.exec(text);
    if (report !== null) {
      this.#awaitingReport = false;
      this.#lateReportUntil = 0;
      clearTimeout(this.#reportTimer);
      log.debug(`local cursor at ${report[1]};${report[2]}`);
      this.#model.placeAt({
        row: Number(report[1]) - 1,
        col: Number(report[2]) - 1,
      });
      return latin1Bytes(
        text.slice(0, report.index) +
          text.slice(report.index + report[0].length),
      );
    }
    // A report cut between two reads: keep its start for the next one.
    // deno-lint-ignore no-control-regex
    const start = /\x1b(\[(\d{1,4}(;\d{0,4})?)?)?$/.exec(text);
    if (start !== null) {
      this.#partialReport = start[0];
      return latin1Bytes(text.slice(0, start.index));
    }
    return latin1Bytes(text);
  }

  /** A chunk of the remote's output: resolves once the terminal took it. */
  output(bytes: Uint8Array): Promise<void> {
    if (
      isEmpty(this.#shown) && !this.#predictor.pending &&
      !this.#awaitingReport
    ) {
      // Nothing shown, nothing to judge: the bytes go out as they are,
      // before the model spends any time on them.
      const written = this.#enqueue(bytes);
      this.#model.feed(bytes);
      return written;
    }
    const parts: string[] = [];
    const erase = this.#erase();
    // Nothing shown (adaptive mode on a fast link, the keystroke's echo
    // itself): the bytes go out first, and the model and the predictor,
    // ~0.05 ms after an idle spell, judge them after; what is drawn then
    // follows them, as it would have in one write.
    const written = erase === "" ? this.#enqueue(bytes) : null;
    const model = this.#model;
    const predictor = this.#predictor;
    if (predictor.pending && bytes.length <= SPLIT_LIMIT && model.current) {
      // Judge the guesses before each line feed or escape sequence moves
      // or scrolls what they stand on.
      let from = 0;
      for (let at = 1; at <= bytes.length; at++) {
        if (at < bytes.length && bytes[at] !== 0x0a && bytes[at] !== 0x1b) {
          continue;
        }
        model.feed(bytes.subarray(from, at));
        predictor.update(model, this.#now(), at === bytes.length);
        from = at;
      }
    } else {
      model.feed(bytes);
      predictor.update(model, this.#now());
    }
    this.#logShowing();
    const next = predictor.overlay(model);
    parts.push(this.#draw(next));
    this.#shown = next;
    this.#schedule();
    const after = parts.join("");
    if (written !== null) {
      return after === "" ? written : this.#enqueue(encoder.encode(after));
    }
    return this.#enqueue(
      erase === "" ? EMPTY_BYTES : encoder.encode(erase),
      bytes,
      after === "" ? EMPTY_BYTES : encoder.encode(after),
    );
  }

  /** For a debug dump: terminal writes in flight or queued. */
  describe(): string {
    return `echo: ${this.#writing} writes in flight` +
      (this.#awaitingReport ? ", awaiting cursor report" : "");
  }

  /** The local terminal changed size: the model follows, guesses end. */
  resize(cols: number, rows: number): Promise<void> {
    const erase = this.#erase();
    this.#model.resize(cols, rows);
    this.#predictor.reset();
    return this.#enqueue(encoder.encode(erase));
  }

  /** Takes the overlay away and stops; resolves once the terminal has it all. */
  finish(): Promise<void> {
    clearTimeout(this.#timer);
    clearTimeout(this.#reportTimer);
    this.#model.close();
    this.#predictor.reset();
    return this.#enqueue(encoder.encode(this.#erase()));
  }

  /** The overlay taken away: cells as the model has them, cursor and pen back. */
  #erase(): string {
    const shown = this.#shown;
    this.#shown = EMPTY;
    if (shown.cells.length === 0 && shown.cursor === null) return "";
    return repaintCells(shown.cells, this.#model) + restoreCursor(this.#model);
  }

  /** An overlay drawn over the model as it is. */
  #draw(overlay: Overlay): string {
    if (overlay.cells.length === 0 && overlay.cursor === null) return "";
    return drawCells(overlay.cells, this.#model) +
      (overlay.cursor === null
        ? restoreCursor(this.#model)
        : showCursorAt(overlay.cursor));
  }

  /** Brings the overlay from what is shown to what the predictor wants. */
  #redraw(): Promise<void> {
    const next = this.#predictor.overlay(this.#model);
    const before = this.#shown;
    this.#shown = next;
    this.#schedule();
    const same = (a: OverlayCell, b: OverlayCell) =>
      a.row === b.row && a.col === b.col && a.glyph === b.glyph &&
      a.underline === b.underline;
    const gone = before.cells.filter((cell) =>
      !next.cells.some((other) =>
        other.row === cell.row && other.col === cell.col
      )
    );
    const drawn = next.cells.filter((cell) =>
      !before.cells.some((other) => same(cell, other))
    );
    const cursorSame = before.cursor?.row === next.cursor?.row &&
      before.cursor?.col === next.cursor?.col;
    if (gone.length === 0 && drawn.length === 0 && cursorSame) {
      return this.#tail;
    }
    let out = repaintCells(gone, this.#model) + drawCells(drawn, this.#model);
    out += next.cursor === null
      ? restoreCursor(this.#model)
      : showCursorAt(next.cursor);
    return this.#enqueue(encoder.encode(out));
  }

  /** Logs when predictions start or stop showing (adaptive). */
  #logShowing(): void {
    const refutations = this.#predictor.refutations;
    if (refutations.length > 0) {
      log.debug(`refuted ${refutations.join("; ")}`);
      refutations.length = 0;
    }
    const showing = this.#predictor.showing;
    if (showing === this.#wasShowing) return;
    this.#wasShowing = showing;
    log.info(
      `predictions ${showing ? "shown" : "hidden"} (echo round trip ${
        this.#predictor.srtt?.toFixed(0)
      } ms)`,
    );
  }

  /** Wakes up at the predictor's next deadline (an expiry, a glitch). */
  #schedule(): void {
    const due = this.#predictor.nextDeadline();
    if (due === null || due >= this.#timerDue) return;
    clearTimeout(this.#timer);
    this.#timerDue = due;
    this.#timer = unref(setTimeout(() => {
      this.#timerDue = Infinity;
      this.#timer = undefined;
      this.#predictor.update(this.#model, this.#now());
      this.#redraw().catch(() => {});
    }, Math.max(0, due - this.#now()) + 1));
  }

  /** Writes in call order (keystrokes and output share one terminal). */
  #enqueue(...parts: Uint8Array[]): Promise<void> {
    const signal = this.#stopping.signal;
    const write = (part: Uint8Array) =>
      signal.aborted ? Promise.resolve() : this.#write(part, {
        signal,
        taken: part === this.#counted ? this.#countRemote : undefined,
      });
    const nonEmpty = parts.filter((part) => part.length > 0);
    if (this.#writing === 0 && nonEmpty.length === 1) {
      // Nothing in flight: write at once (a bulk stream's common case).
      this.#writing++;
      this.#tail = write(nonEmpty[0]).finally(() => this.#writing--);
      return this.#tail;
    }
    this.#writing++;
    this.#tail = this.#tail.then(async () => {
      for (const part of nonEmpty) await write(part);
    }).finally(() => this.#writing--);
    return this.#tail;
  }
}
