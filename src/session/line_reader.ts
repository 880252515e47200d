/**
 * The one line reader: newline-delimited text from any byte source (a Unix
 * socket, stdin, a child's pipe), read in chunks, bounded in length so a
 * peer that never sends a newline cannot make us buffer without end.
 *
 * @module
 */

/** Anything with a `read` like `Deno.Conn` or `Deno.stdin`. */
export interface ByteSource {
  /** Reads into `buffer`; resolves with the count, or null at end. */
  read(buffer: Uint8Array): Promise<number | null>;
}

/** A line exceeded the reader's limit. */
export class LineTooLongError extends Error {
  override name = "LineTooLongError";
}

/**
 * Splits a byte source into lines (without the `\n`; a trailing `\r` is
 * kept). Bytes after a line stay buffered for the next call.
 *
 * @example
 * ```ts
 * const lines = new LineReader(conn);
 * const request = await lines.next(); // null at end of stream
 * ```
 */
export class LineReader {
  #source: ByteSource;
  #limit: number;
  #buffer = new Uint8Array(0);
  #decoder = new TextDecoder();

  /** Reads from `source`; a line longer than `limit` bytes is an error. */
  constructor(source: ByteSource, limit = 64 * 1024) {
    this.#source = source;
    this.#limit = limit;
  }

  /** The next line, or null at end of stream (a final partial line is dropped). */
  async next(): Promise<string | null> {
    while (true) {
      const newline = this.#buffer.indexOf(0x0a);
      if (newline >= 0) {
        const line = this.#buffer.subarray(0, newline);
        this.#buffer = this.#buffer.slice(newline + 1);
        return this.#decoder.decode(line);
      }
      // limit bytes and no newline yet is still a line of at most limit.
      if (this.#buffer.length > this.#limit) {
        throw new LineTooLongError(`line longer than ${this.#limit} bytes`);
      }
      const chunk = new Uint8Array(
        Math.min(16 * 1024, this.#limit + 1 - this.#buffer.length),
      );
      const n = await this.#source.read(chunk);
      if (n === null) return null;
      const joined = new Uint8Array(this.#buffer.length + n);
      joined.set(this.#buffer);
      joined.set(chunk.subarray(0, n), this.#buffer.length);
      this.#buffer = joined;
    }
  }
}

/** Reads a single line from `source` (see {@link LineReader}). */
export function readLine(
  source: ByteSource,
  limit?: number,
): Promise<string | null> {
  return new LineReader(source, limit).next();
}
