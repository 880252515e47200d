/**
 * What the client and the terminal process agree on above the transport:
 * which channel carries what, the control messages, and the one line the
 * client sends over ssh's stdin to start a session.
 *
 * @module
 */

import {
  decodeSessionSecret,
  encodeSessionSecret,
  type SessionSecret,
} from "../transport/mod.ts";

/** Channel of the terminal's bytes: keystrokes up, output down. */
export const TERMINAL_CHANNEL = 1;
/** Channel of control messages (newline-delimited JSON). */
export const CONTROL_CHANNEL = 2;

/** Default TCP port of `et server`. */
export const DEFAULT_SERVER_PORT = 2022;

/** Line the terminal role prints on stdout once its session is ready. */
export const READY_MARKER = "ET_TERMINAL_READY";

/** A control message between client and terminal. */
export type ControlMessage =
  | { type: "resize"; cols: number; rows: number }
  | { type: "exit"; code: number };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes one control message as a JSON line. */
export function encodeControl(message: ControlMessage): Uint8Array {
  return encoder.encode(JSON.stringify(message) + "\n");
}

/**
 * Splits control-channel bytes into messages, keeping partial lines for the
 * next chunk and skipping lines that are not a known message.
 */
export class ControlDecoder {
  #pending = "";

  /** Feeds bytes; returns the complete, valid messages they finish. */
  push(chunk: Uint8Array): ControlMessage[] {
    this.#pending += decoder.decode(chunk, { stream: true });
    const lines = this.#pending.split("\n");
    this.#pending = lines.pop() ?? "";
    const out: ControlMessage[] = [];
    for (const line of lines) {
      const message = parseControl(line);
      if (message) out.push(message);
    }
    return out;
  }
}

function parseControl(line: string): ControlMessage | null {
  try {
    const value = JSON.parse(line);
    if (
      value?.type === "resize" && validSize(value.cols) && validSize(value.rows)
    ) {
      return { type: "resize", cols: value.cols, rows: value.rows };
    }
    if (value?.type === "exit" && Number.isInteger(value.code)) {
      return { type: "exit", code: value.code };
    }
  } catch {
    // not JSON: ignored like any unknown message.
  }
  return null;
}

function validSize(n: unknown): n is number {
  return Number.isInteger(n) && (n as number) > 0 && (n as number) < 10_000;
}

/** What the client tells the terminal role over ssh's stdin. */
export interface BootstrapRequest {
  secret: SessionSecret;
  /** The client's TERM, for the remote shell. */
  term: string;
}

/** Encodes the bootstrap line (secret inside: only for a private pipe). */
export function encodeBootstrap(request: BootstrapRequest): string {
  return JSON.stringify({
    secret: encodeSessionSecret(request.secret),
    term: request.term,
  }) + "\n";
}

/** Parses the bootstrap line; throws a one-line Error when malformed. */
export function decodeBootstrap(line: string): BootstrapRequest {
  let value;
  try {
    value = JSON.parse(line);
  } catch {
    throw new Error("malformed bootstrap line");
  }
  if (typeof value?.secret !== "string" || typeof value?.term !== "string") {
    throw new Error("malformed bootstrap line");
  }
  if (!/^[A-Za-z0-9._+-]{1,64}$/.test(value.term)) {
    throw new Error("malformed TERM in bootstrap line");
  }
  return { secret: decodeSessionSecret(value.secret), term: value.term };
}
