/**
 * The session's output on its way to the local terminal (or stdout and
 * stderr): one copy per channel, each counting the bytes its local output
 * really took, so that a client that leaves can tell the session exactly
 * where its terminal stopped (the `written` counts of a detach, see
 * docs/PROTOCOL.md section 8) and a later client gets the rest, byte for
 * byte.
 *
 * A copy ends on its own when its channel ends; it fails when a local
 * write fails for real (the terminal is gone: EIO on a hung-up pty, EBADF
 * on a closed stdout, EPIPE on a pipe whose reader left, unless the caller
 * takes that one as the reader's choice: see the constructor). A full
 * terminal is no failure: its writes just wait.
 *
 * @module
 */

import type { Channel } from "../transport/mod.ts";
import { sleep } from "../deadline.ts";

/** Where a copy is, for the debug dump. */
export interface CopyState {
  /** "reading", "writing", "stopped" or "ended: <why>". */
  step: string;
  /** `performance.now()` when it entered that step. */
  since: number;
  /** Bytes the local output took so far (of this channel, on this connection). */
  bytes: number;
}

/**
 * A local output: resolves with how many of `p` it took (callers loop).
 * One that honours `signal` writes nothing more once it is aborted and
 * resolves with what it took (0 when nothing), so a copy stopped while
 * its output was full still knows its exact count; one that ignores it is
 * waited for, then left out.
 */
export interface LocalOutput {
  write(p: Uint8Array, signal?: AbortSignal): Promise<number>;
}

/** A local write failed: the output behind a copy is gone. */
export class LocalOutputError extends Error {
  override name = "LocalOutputError";
  /** The channel whose copy failed. */
  readonly channel: number;
  /** What the write threw. */
  override readonly cause: unknown;

  /** The copy of `channel` failed with `cause`. */
  constructor(channel: number, cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
    this.channel = channel;
    this.cause = cause;
  }
}

/**
 * The output copies of one session.
 *
 * @example
 * ```ts ignore
 * const copies = new OutputCopies();
 * copies.add(connection.channel(TERMINAL_CHANNEL), local);
 * const outcome = await Promise.race([copies.ended, copies.failed]);
 * if (outcome instanceof LocalOutputError) {
 *   const written = await copies.stop(1000); // {1: 123456}
 * }
 * ```
 */
export class OutputCopies {
  #copies: Array<{ id: number; state: CopyState; done: Promise<void> }> = [];
  #stopped = false;
  #stopping = new AbortController();
  #onReaderGone?: (channel: number) => void;
  #fail!: (error: LocalOutputError) => void;
  /** Resolves with the first copy that failed (never rejects). */
  readonly failed: Promise<LocalOutputError> = new Promise((resolve) =>
    this.#fail = resolve
  );

  /**
   * With `onReaderGone`, a local write failing with EPIPE (a pipe's
   * reader left on purpose, as `head` does) is no failure: the copy calls
   * it with the channel's number and reads the rest of its channel into
   * nothing, so the session can end as the remote program does. Without
   * it (a session on a pty), EPIPE fails the copy like any other error.
   */
  constructor(options: { onReaderGone?: (channel: number) => void } = {}) {
    this.#onReaderGone = options.onReaderGone;
  }

  /** Starts copying `channel` to `out`; returns its state (for the dump). */
  add(channel: Channel, out: LocalOutput): CopyState {
    const state: CopyState = { step: "reading", since: 0, bytes: 0 };
    const done = this.#copy(channel, out, state);
    this.#copies.push({ id: channel.id, state, done });
    return state;
  }

  /** Resolves once every copy ended or stopped (never rejects). */
  get ended(): Promise<void> {
    return Promise.all(this.#copies.map((copy) => copy.done)).then(() => {});
  }

  /**
   * Stops every copy (no write starts after this), waits up to `timeoutMs`
   * for writes under way to settle, and returns, per channel, how many of
   * its bytes the local output took: exact, because nothing more is
   * written. A write waiting for room (a terminal stopped with Ctrl-S)
   * settles at once when its output honours the stop signal (the plain
   * terminal and stdout do); one still pending after the wait (the
   * predictive echo's) is left out: its count may still grow.
   */
  async stop(timeoutMs: number): Promise<Record<number, number>> {
    this.#stopped = true;
    this.#stopping.abort();
    const deadline = performance.now() + timeoutMs;
    const writing = () =>
      this.#copies.some((copy) => copy.state.step === "writing");
    while (writing() && performance.now() < deadline) await sleep(10);
    const written: Record<number, number> = {};
    for (const { id, state } of this.#copies) {
      if (state.step !== "writing") written[id] = state.bytes;
    }
    return written;
  }

  async #copy(channel: Channel, out: LocalOutput, state: CopyState) {
    const enter = (step: string) => {
      state.step = step;
      state.since = performance.now();
    };
    try {
      for (
        let data;
        (enter("reading"), data = await channel.read()) !== null;
      ) {
        // Read but not written: the count stays where the terminal stopped.
        if (this.#stopped) return enter("stopped");
        enter("writing");
        for (let offset = 0; offset < data.length;) {
          const n = await out.write(
            data.subarray(offset),
            this.#stopping.signal,
          );
          offset += n;
          state.bytes += n;
          if (this.#stopped && offset < data.length) return enter("stopped");
        }
      }
      enter(this.#stopped ? "stopped" : "ended");
    } catch (error) {
      // A closed channel reads null; only a failed local write lands here.
      if (
        error instanceof Deno.errors.BrokenPipe && this.#onReaderGone &&
        !this.#stopped
      ) {
        this.#onReaderGone(channel.id);
        enter("discarding: the reader left");
        while (await channel.read().catch(() => null) !== null) {
          // nobody to show it to; reading keeps the session's credit flowing
        }
        return enter("ended: the reader left");
      }
      enter(`ended: ${error instanceof Error ? error.message : error}`);
      this.#fail(new LocalOutputError(channel.id, error));
    }
  }
}
