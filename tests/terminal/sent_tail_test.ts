/** SentTail: what was sent after a point, while it is kept; null beyond. */
import assert from "node:assert/strict";
import { SentTail } from "../../src/terminal/sent_tail.ts";

const bytes = (...values: number[]) => new Uint8Array(values);
const flat = (chunks: Uint8Array[] | null) =>
  chunks === null ? null : [...chunks.flatMap((chunk) => [...chunk])];

Deno.test("since(offset) gives the bytes after offset, split chunks included", () => {
  const tail = new SentTail(100);
  tail.record(bytes(1, 2, 3));
  tail.record(bytes());
  tail.record(bytes(4, 5));
  assert.equal(tail.total, 5);
  assert.deepEqual(flat(tail.since(0)), [1, 2, 3, 4, 5]);
  assert.deepEqual(flat(tail.since(2)), [3, 4, 5]);
  assert.deepEqual(flat(tail.since(3)), [4, 5]);
  assert.deepEqual(flat(tail.since(5)), []);
  assert.equal(tail.since(6), null, "past what was sent");
  assert.equal(tail.since(-1), null);
  assert.equal(tail.since(1.5), null);
});

Deno.test("keeps at least its capacity, whole chunks; older offsets are unknown", () => {
  const tail = new SentTail(4);
  for (let i = 0; i < 10; i++) tail.record(bytes(i, i));
  assert.equal(tail.total, 20);
  // The last 4 bytes are kept for sure; more only as whole chunks.
  assert.deepEqual(flat(tail.since(16)), [8, 8, 9, 9]);
  assert.equal(tail.since(10), null, "dropped long ago");
  const kept = [14, 15, 16].filter((at) => tail.since(at) !== null);
  assert.ok(kept.includes(16));
});
