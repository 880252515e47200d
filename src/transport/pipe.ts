/**
 * The byte pipe a connection runs over. `Deno.Conn` (TCP or Unix) satisfies
 * it as is; an ssh child process's stdio can be adapted to it. The transport
 * never asks what is underneath.
 *
 * @module
 */

/** A bidirectional byte stream: the only thing the transport needs. */
export interface BytePipe {
  /** Reads into `buffer`; resolves with the count, or null at end of stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some prefix of `data`; resolves with how many bytes were taken. */
  write(data: Uint8Array): Promise<number>;
  /** Closes both directions; safe to call more than once. */
  close(): void;
}

/** Writes every byte of `data`, looping over short writes. */
export async function writeAll(pipe: BytePipe, data: Uint8Array) {
  let offset = 0;
  while (offset < data.length) {
    offset += await pipe.write(data.subarray(offset));
  }
}

/** Closes a pipe, ignoring "already closed" errors. */
export function closeQuietly(pipe: BytePipe) {
  try {
    pipe.close();
  } catch {
    // already closed: nothing to do.
  }
}
