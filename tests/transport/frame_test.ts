import assert from "node:assert/strict";
import {
  type BytePipe,
  encodeFrame,
  FrameError,
  FrameReader,
  MAX_FRAME_BYTES,
} from "../../src/transport/mod.ts";

/** A pipe that hands out fixed bytes in given-sized pieces. */
function bytesPipe(data: Uint8Array, piece = Infinity): BytePipe {
  let offset = 0;
  return {
    read(buffer) {
      if (offset >= data.length) return Promise.resolve(null);
      const n = Math.min(buffer.length, piece, data.length - offset);
      buffer.set(data.subarray(offset, offset + n));
      offset += n;
      return Promise.resolve(n);
    },
    write: (d) => Promise.resolve(d.length),
    close() {},
  };
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

Deno.test("frames survive being split into single bytes", async () => {
  const bodies = [
    new Uint8Array([1]),
    new Uint8Array(1000).fill(2),
    new Uint8Array(MAX_FRAME_BYTES).fill(3),
  ];
  const reader = new FrameReader(
    bytesPipe(concat(...bodies.map(encodeFrame)), 1),
  );
  for (const body of bodies) assert.deepEqual(await reader.next(), body);
  assert.equal(await reader.next(), null);
});

Deno.test("many frames in one read are all returned in order", async () => {
  const bodies = Array.from(
    { length: 500 },
    (_, i) => new Uint8Array(i + 1).fill(i),
  );
  const reader = new FrameReader(bytesPipe(concat(...bodies.map(encodeFrame))));
  for (const body of bodies) assert.deepEqual(await reader.next(), body);
  assert.equal(await reader.next(), null);
});

Deno.test("an oversized length is refused before reading the body", async () => {
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, MAX_FRAME_BYTES + 1);
  await assert.rejects(
    new FrameReader(bytesPipe(header)).next(),
    FrameError,
  );
  new DataView(header.buffer).setUint32(0, 0xffffffff);
  await assert.rejects(new FrameReader(bytesPipe(header)).next(), FrameError);
});

Deno.test("a zero length frame is refused", async () => {
  await assert.rejects(
    new FrameReader(bytesPipe(new Uint8Array(4))).next(),
    FrameError,
  );
});

Deno.test("a stream ending inside a frame is refused", async () => {
  const frame = encodeFrame(new Uint8Array(100).fill(9));
  await assert.rejects(
    new FrameReader(bytesPipe(frame.subarray(0, 50))).next(),
    /ended inside a frame/,
  );
  await assert.rejects(
    new FrameReader(bytesPipe(frame.subarray(0, 2))).next(),
    FrameError,
  );
});

Deno.test("encodeFrame refuses empty and oversized bodies", () => {
  assert.throws(() => encodeFrame(new Uint8Array(0)), FrameError);
  assert.throws(
    () => encodeFrame(new Uint8Array(MAX_FRAME_BYTES + 1)),
    FrameError,
  );
});

Deno.test("takeBuffered returns bytes read past the first frame", async () => {
  const first = encodeFrame(new Uint8Array([1, 2, 3]));
  const rest = new Uint8Array([9, 8, 7, 6]);
  const reader = new FrameReader(bytesPipe(concat(first, rest)));
  assert.deepEqual(await reader.next(), new Uint8Array([1, 2, 3]));
  assert.deepEqual(reader.takeBuffered(), rest);
});
