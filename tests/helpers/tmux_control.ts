/**
 * A strict reader of tmux's control-mode stream (`tmux -CC`), for tests
 * that must show the stream arrived intact: every line well formed,
 * `%begin`/`%end` (or `%error`) blocks paired with the same time, number
 * and flags and never nested, every `%output` payload decodable (tmux
 * escapes bytes below 0x20 and the backslash as `\ooo`), and the stream
 * framed by its DCS opening and ST closing.
 *
 * @module
 */

/** `tmux -CC` opens its stream with this DCS. */
export const CONTROL_START = "\x1bP1000p";
/** And closes it with ST. */
export const CONTROL_END = "\x1b\\";

/** One `%begin` … `%end`/`%error` block: a command's answer. */
export interface ControlBlock {
  /** `time number flags` of its `%begin` (and of its end). */
  id: string;
  /** The lines between, as sent. */
  lines: string[];
  /** Ended by `%error` rather than `%end`. */
  error: boolean;
}

/** A whole control stream, read. */
export interface ControlStream {
  blocks: ControlBlock[];
  /** Decoded `%output` bytes per pane (`%0`, `%1`…), in order. */
  output: Map<string, Uint8Array>;
  /** Every notification line outside blocks (`%output` included). */
  notifications: string[];
  /** Lines read, and whether `%exit` ended the stream. */
  lineCount: number;
  exited: boolean;
}

const NOTIFICATION = /^%[a-z][a-z-]*( .*)?$/;
const BEGIN = /^%begin (\d+ \d+ \d+)$/;
const END = /^%(end|error) (\d+ \d+ \d+)$/;
const OUTPUT = /^%output (%\d+) (.*)$/;

/**
 * Decodes a `%output` payload: `\ooo` octal escapes, everything else
 * printable as is. Throws on a bare backslash, a bad escape or a raw
 * control character (which tmux never sends).
 */
export function decodeOutputPayload(payload: string): Uint8Array {
  const bytes: number[] = [];
  for (let i = 0; i < payload.length; i++) {
    const c = payload.charCodeAt(i);
    if (c === 0x5c) {
      const octal = payload.slice(i + 1, i + 4);
      if (!/^[0-3][0-7]{2}$/.test(octal)) {
        throw new Error(`bad escape '\\${octal}' in %output`);
      }
      bytes.push(parseInt(octal, 8));
      i += 3;
    } else if (c < 0x20 || c > 0xff) {
      throw new Error(`raw byte 0x${c.toString(16)} in %output`);
    } else {
      bytes.push(c);
    }
  }
  return Uint8Array.from(bytes);
}

function append(a: Uint8Array | undefined, b: Uint8Array): Uint8Array {
  if (!a) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Reads one control stream: `text` (latin1, one char per byte) from just
 * after {@link CONTROL_START}, up to but not including {@link CONTROL_END}
 * or the end of what arrived. Lines end with `\n` (a `\r` before it is
 * allowed); an unfinished last line is an error only if `complete`.
 * Throws naming the first malformed line.
 */
export function parseControlStream(
  text: string,
  complete = true,
): ControlStream {
  const lines = text.split("\n");
  const tail = lines.pop()!;
  if (complete && tail !== "") {
    throw new Error(
      `unfinished last line: ${JSON.stringify(tail.slice(0, 80))}`,
    );
  }
  const stream: ControlStream = {
    blocks: [],
    output: new Map(),
    notifications: [],
    lineCount: lines.length,
    exited: false,
  };
  let open: ControlBlock | null = null;
  lines.forEach((raw, index) => {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const where = `line ${index + 1} ${JSON.stringify(line.slice(0, 120))}`;
    if (open) {
      const end = line.match(END);
      if (end) {
        if (end[2] !== open.id) {
          throw new Error(`${where}: ends block ${end[2]}, open is ${open.id}`);
        }
        open.error = end[1] === "error";
        stream.blocks.push(open);
        open = null;
      } else if (BEGIN.test(line)) {
        throw new Error(`${where}: %begin inside block ${open.id}`);
      } else {
        open.lines.push(line);
      }
      return;
    }
    const begin = line.match(BEGIN);
    if (begin) {
      open = { id: begin[1], lines: [], error: false };
      return;
    }
    if (END.test(line)) throw new Error(`${where}: %end without %begin`);
    if (stream.exited) throw new Error(`${where}: after %exit`);
    if (!NOTIFICATION.test(line)) {
      throw new Error(`${where}: not a notification`);
    }
    stream.notifications.push(line);
    if (line === "%exit" || line.startsWith("%exit ")) stream.exited = true;
    const output = line.match(OUTPUT);
    if (output) {
      let bytes: Uint8Array;
      try {
        bytes = decodeOutputPayload(output[2]);
      } catch (error) {
        throw new Error(`${where}: ${(error as Error).message}`);
      }
      stream.output.set(output[1], append(stream.output.get(output[1]), bytes));
    } else if (line.startsWith("%output")) {
      throw new Error(`${where}: malformed %output`);
    }
  });
  if (complete && open) {
    throw new Error(`block ${(open as ControlBlock).id} never ended`);
  }
  return stream;
}
