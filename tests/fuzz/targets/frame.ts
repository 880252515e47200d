/**
 * FrameReader under fuzz: valid frame streams from encodeFrame, mutated
 * (lengths set to 0/1/max/max+1/2^32-1, bytes flipped, cut, spliced) and
 * random, served in random chunks. The frames returned must be exactly the
 * frames section 3 of PROTOCOL.md finds in the bytes, the stream must end
 * as section 3 says (clean, bad length or cut, as a FrameError), bytes
 * taken back with takeBuffered must be exactly the unframed rest, and the
 * reader's buffer must never exceed what the largest announced valid frame
 * needs.
 *
 * @module
 */

import {
  encodeFrame,
  FrameError,
  FrameReader,
  MAX_FRAME_BYTES,
} from "../../../src/transport/mod.ts";
import { FrameType } from "../../../src/transport/wire.ts";
import { concat, equalBytes } from "../_bytes.ts";
import {
  check,
  expectError,
  fail,
  type FuzzCase,
  type Target,
} from "../_engine.ts";
import { chunks, mutate, mutateBytes, type Seed } from "../_mutate.ts";
import { ScriptedPipe } from "../_pipes.ts";
import { type Random, Rng } from "../_rng.ts";
import { specFrames } from "../_spec.ts";

const INITIAL_BUFFER = 16 * 1024;
const MAX_BUFFER = 4 + MAX_FRAME_BYTES + 64 * 1024;

const TYPES = Object.values(FrameType);

function bodyLength(r: Random): number {
  const kind = r.int(100);
  if (kind < 55) return 1 + r.int(16);
  if (kind < 85) return 1 + r.int(300);
  if (kind < 93) return INITIAL_BUFFER - 8 + r.int(16);
  if (kind < 97) return 1 + r.int(70_000);
  return MAX_FRAME_BYTES - r.int(3);
}

function body(r: Random, length: number): Uint8Array {
  const out = length <= 512
    ? r.bytes(length)
    : new Uint8Array(length).fill(r.int(256));
  out[0] = r.chance(0.9) ? r.pick(TYPES) : r.int(256);
  return out;
}

/** A stream of valid frames (from the real encoder) and its length fields. */
export function validFrames(
  r: Random,
  count = 1 + r.int(r.chance(0.8) ? 3 : 20),
): Seed {
  const frames: Uint8Array[] = [];
  const lengths: number[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    const frame = encodeFrame(body(r, bodyLength(r)));
    frames.push(frame);
    lengths.push(at);
    at += frame.length;
  }
  return { bytes: concat(...frames), lengths };
}

/** The largest buffer the reader may hold for `bytes`. */
function bufferBound(bytes: Uint8Array): number {
  const spec = specFrames(bytes, MAX_FRAME_BYTES);
  let largest = 0;
  for (const frame of spec.frames) largest = Math.max(largest, frame.length);
  // A cut frame whose header announced a valid length is reserved too.
  const rest = bytes.length - spec.consumed;
  if (spec.end === "cut" && rest >= 4) {
    const view = new DataView(
      bytes.buffer,
      bytes.byteOffset + spec.consumed,
      4,
    );
    largest = Math.max(largest, view.getUint32(0));
  }
  return Math.max(INITIAL_BUFFER, Math.min(MAX_BUFFER, 2 * (4 + largest)));
}

function generate(r: Rng): FuzzCase {
  const kind = r.int(100);
  const aux = r.u32();
  if (kind < 20) return { input: validFrames(r).bytes, aux, origin: "valid" };
  if (kind < 80) {
    return { input: mutate(r, validFrames(r), [], 3), aux, origin: "mutated" };
  }
  if (kind < 90) {
    const a = validFrames(r).bytes;
    const b = validFrames(r).bytes;
    return {
      input: mutateBytes(
        r,
        concat(a.subarray(0, r.int(a.length + 1)), b.subarray(r.int(b.length))),
        [],
        1,
      ),
      aux,
      origin: "spliced",
    };
  }
  return { input: r.bytes(r.int(64)), aux, origin: "random" };
}

async function run(c: FuzzCase): Promise<string> {
  const input = c.input;
  const plan = new Rng(c.aux);
  const pipe = new ScriptedPipe(chunks(plan, input));
  const reader = new FrameReader(pipe);
  const spec = specFrames(input, MAX_FRAME_BYTES);
  const takeAt = plan.chance(0.15) ? plan.int(spec.frames.length + 1) : -1;
  let consumed = 0;
  let label = "";
  for (let i = 0;; i++) {
    if (i === takeAt) {
      const rest = reader.takeBuffered();
      const expected = input.subarray(consumed, pipe.delivered);
      check(
        equalBytes(rest, expected),
        `takeBuffered after ${i} frames gave ${rest.length} bytes, expected the ${expected.length} read but not framed`,
      );
      label = "taken";
      break;
    }
    let frame: Uint8Array | null;
    try {
      frame = await reader.next();
    } catch (error) {
      expectError(
        error,
        [FrameError],
        spec.end === "bad-length"
          ? /^frame length \d+ outside 1\.\.\d+$/
          : /^stream ended inside a frame$/,
      );
      check(
        i === spec.frames.length && spec.end !== "clean",
        `FrameError after ${i} frames, but the stream holds ${spec.frames.length} frames then ends ${spec.end}`,
      );
      label = spec.end;
      break;
    }
    if (frame === null) {
      check(
        i === spec.frames.length && spec.end === "clean",
        `end of stream after ${i} frames, but the stream holds ${spec.frames.length} frames then ends ${spec.end}`,
      );
      label = "clean";
      break;
    }
    if (i >= spec.frames.length) {
      fail(
        `frame ${i} (${frame.length} bytes) returned, but the stream holds only ${spec.frames.length} (then ${spec.end})`,
      );
    }
    if (!equalBytes(frame, spec.frames[i])) {
      fail(
        `frame ${i} differs from the stream's (${frame.length} vs ${
          spec.frames[i].length
        } bytes)`,
      );
    }
    consumed += 4 + frame.length;
  }
  const bound = bufferBound(input);
  check(
    pipe.largestBuffer <= bound,
    `reader buffer grew to ${pipe.largestBuffer} bytes; the largest announced frame needs at most ${bound}`,
  );
  return `${Math.min(spec.frames.length, 3)} frames, ${label}`;
}

/** Growth checks: a long mixed stream, and the encoder's own bounds. */
async function checks(): Promise<string[]> {
  const failures: string[] = [];
  const r = new Rng(7);
  const seed = validFrames(r, 3000);
  const pipe = new ScriptedPipe(chunks(r, seed.bytes));
  const reader = new FrameReader(pipe);
  const spec = specFrames(seed.bytes);
  for (let i = 0; i < spec.frames.length; i++) {
    const frame = await reader.next();
    if (!frame || !equalBytes(frame, spec.frames[i])) {
      failures.push(`long stream: frame ${i} differs`);
      break;
    }
  }
  if (await reader.next() !== null) failures.push("long stream: no clean end");
  if (pipe.largestBuffer > MAX_BUFFER) {
    failures.push(
      `long stream: buffer grew to ${pipe.largestBuffer} > ${MAX_BUFFER}`,
    );
  }
  for (const size of [0, MAX_FRAME_BYTES + 1]) {
    try {
      encodeFrame(new Uint8Array(size));
      failures.push(`encodeFrame accepted a body of ${size} bytes`);
    } catch (error) {
      if (!(error instanceof FrameError)) {
        failures.push(
          `encodeFrame threw ${(error as Error).name} for ${size} bytes`,
        );
      }
    }
  }
  return failures;
}

/** The target. */
export const frameReaderTarget: Target = {
  name: "frame.reader",
  description:
    "FrameReader over chunked valid/mutated/random streams vs the spec's framing; buffer bounded by the announced length",
  weight: 12,
  timeoutMs: 2000,
  generate,
  run,
  checks,
};
