/**
 * ssh-style escape sequences in the keystroke stream: `~.` detaches, `~?`
 * asks for help, `~~` sends one `~`. Pure: bytes in, bytes and actions out.
 *
 * @module
 */

/** What an escape sequence asks the client to do. */
export type EscapeAction = "detach" | "help";

/** What {@linkcode EscapeFilter.push} returns. */
export interface EscapeResult {
  /**
   * The bytes to send to the remote. It may be the pushed array itself
   * when nothing was held back or removed.
   */
  forward: Uint8Array;
  /** Escape sequences completed by this push, in order. */
  actions: EscapeAction[];
}

/** `~`, ssh's default escape character. */
export const DEFAULT_ESCAPE_CHAR = 0x7e;

const CR = 0x0d;
const LF = 0x0a;
const DOT = 0x2e;
const QUESTION = 0x3f;

const EMPTY = new Uint8Array(0);

/**
 * Finds escape sequences in keystrokes, with ssh's rules:
 *
 * - the escape character is special only at the start of input or right
 *   after `\r` or `\n`; there it is held back until the next byte is known;
 * - `~.` detaches: neither it nor anything after it (in this push or any
 *   later one) is forwarded;
 * - `~?` asks for help: nothing is forwarded for it, and the line start
 *   stays a line start (another `~` right after is special again);
 * - `~~` forwards one literal `~`;
 * - `~` followed by any other byte forwards both.
 *
 * Bytes split over several pushes give the same result as in one push.
 *
 * @example
 * ```ts
 * const filter = new EscapeFilter(DEFAULT_ESCAPE_CHAR);
 * const { forward, actions } = filter.push(new TextEncoder().encode("ls\r~."));
 * // forward: "ls\r", actions: ["detach"]
 * ```
 */
export class EscapeFilter {
  #escape: number | null;
  #lineStart = true;
  #pending = false;
  #detached = false;

  /**
   * @param escapeChar the escape byte, or null to pass everything through.
   * @default {DEFAULT_ESCAPE_CHAR} (`~`)
   */
  constructor(escapeChar: number | null = DEFAULT_ESCAPE_CHAR) {
    if (
      escapeChar !== null &&
      !(Number.isInteger(escapeChar) && escapeChar >= 0 && escapeChar <= 0xff)
    ) {
      throw new RangeError("escape character must be a byte (0..255) or null");
    }
    this.#escape = escapeChar;
  }

  /** True once `~.` was seen: everything pushed since is dropped. */
  get detached(): boolean {
    return this.#detached;
  }

  /** Filters the next keystrokes. */
  push(bytes: Uint8Array): EscapeResult {
    const escape = this.#escape;
    if (this.#detached) return { forward: EMPTY, actions: [] };
    if (escape === null || bytes.length === 0) {
      return { forward: bytes, actions: [] };
    }
    // Fast path (almost every keystroke and paste): no escape byte at all.
    if (!this.#pending && bytes.indexOf(escape) < 0) {
      const last = bytes[bytes.length - 1];
      this.#lineStart = last === CR || last === LF;
      return { forward: bytes, actions: [] };
    }
    const out = new Uint8Array(bytes.length + 1);
    let length = 0;
    const actions: EscapeAction[] = [];
    for (const byte of bytes) {
      if (this.#pending) {
        this.#pending = false;
        if (byte === DOT) {
          this.#detached = true;
          actions.push("detach");
          break;
        }
        if (byte === QUESTION) {
          actions.push("help");
          continue;
        }
        if (byte !== escape) out[length++] = escape;
      } else if (this.#lineStart && byte === escape) {
        this.#pending = true;
        continue;
      }
      out[length++] = byte;
      this.#lineStart = byte === CR || byte === LF;
    }
    return { forward: out.subarray(0, length), actions };
  }
}
