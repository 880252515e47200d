import assert from "node:assert/strict";
import {
  BackedReader,
  BackedWriter,
  CannotResumeError,
  ReplayFilter,
} from "../../src/transport/mod.ts";

const frame = (n: number) => new Uint8Array(n);

Deno.test("writer holds frames until acknowledged, then frees them", () => {
  const writer = new BackedWriter(1000);
  for (let i = 0; i < 5; i++) assert.equal(writer.push(frame(100)), i);
  assert.equal(writer.bufferedBytes, 500);
  assert.ok(writer.acknowledge(3));
  assert.equal(writer.bufferedBytes, 200);
  assert.equal(writer.acknowledged, 3);
  assert.throws(() => writer.frameAt(2), RangeError);
  assert.equal(writer.frameAt(4).length, 100);
  assert.equal(writer.acknowledge(9), false, "cannot ack unsent frames");
});

Deno.test("gap resend: every unacknowledged frame is still there", () => {
  const writer = new BackedWriter(1 << 20);
  for (let i = 0; i < 10; i++) writer.push(new Uint8Array([i]));
  writer.acknowledge(4);
  assert.equal(writer.resumePoint(6), 6);
  const gap = [];
  for (let seq = 6; seq < writer.nextSeq; seq++) {
    gap.push(writer.frameAt(seq)[0]);
  }
  assert.deepEqual(gap, [6, 7, 8, 9]);
  // A stale count (an older attempt's) resumes from the acknowledged mark.
  assert.equal(writer.resumePoint(3), 4);
  assert.equal(writer.resumePoint(10), 10);
  // A peer claiming packets never sent cannot be resumed.
  assert.throws(() => writer.resumePoint(11), CannotResumeError);
});

Deno.test("a full window has no room until an ack frees some", () => {
  // Waiting for room is the connection's job now (the writer is pure
  // state); here, the rule it waits on.
  const writer = new BackedWriter(300);
  assert.ok(writer.hasRoom(100));
  writer.push(frame(100));
  writer.push(frame(100));
  writer.push(frame(100));
  assert.equal(writer.hasRoom(100), false, "full");
  assert.throws(() => writer.push(frame(100)), RangeError);
  assert.equal(writer.nextSeq, 3, "a refused frame changes nothing");
  writer.acknowledge(1);
  assert.ok(writer.hasRoom(100));
  assert.equal(writer.hasRoom(101), false);
});

Deno.test("an empty writer accepts a frame larger than its window", () => {
  const writer = new BackedWriter(10);
  assert.ok(writer.hasRoom(100));
  writer.push(frame(100));
  assert.equal(writer.bufferedBytes, 100);
  assert.equal(writer.hasRoom(1), false);
});

Deno.test("reader delivers in order and drops duplicates", () => {
  const reader = new BackedReader();
  assert.equal(reader.classify(0), "deliver");
  reader.advance();
  assert.equal(reader.classify(0), "duplicate");
  assert.equal(reader.classify(2), "gap");
  assert.equal(reader.classify(1), "deliver");
  reader.advance();
  assert.equal(reader.received, 2);
});

Deno.test("replay filter accepts only ever-increasing counters", () => {
  const filter = new ReplayFilter();
  assert.ok(filter.accept(0));
  assert.ok(filter.accept(5));
  assert.equal(filter.accept(5), false);
  assert.equal(filter.accept(3), false);
  assert.ok(filter.isFresh(6));
  assert.ok(filter.isFresh(6), "isFresh alone does not record");
  filter.record(6);
  assert.equal(filter.isFresh(6), false);
});
