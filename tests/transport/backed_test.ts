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

Deno.test("a full window makes writers wait until an ack frees room", async () => {
  const writer = new BackedWriter(300);
  await writer.waitForRoom(100);
  writer.push(frame(100));
  writer.push(frame(100));
  writer.push(frame(100));
  let released = false;
  const waiting = writer.waitForRoom(100).then(() => released = true);
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(released, false, "must wait while full");
  writer.acknowledge(1);
  await waiting;
  assert.equal(released, true);
});

Deno.test("an empty writer accepts a frame larger than its window", async () => {
  const writer = new BackedWriter(10);
  await writer.waitForRoom(100);
  writer.push(frame(100));
  assert.equal(writer.bufferedBytes, 100);
});

Deno.test("closing a writer fails its waiters", async () => {
  const writer = new BackedWriter(10);
  writer.push(frame(10));
  const waiting = writer.waitForRoom(5);
  writer.close(new Error("gone"));
  await assert.rejects(waiting, /gone/);
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

Deno.test("waitEmpty resolves when the last frame is acknowledged, or on close", async () => {
  const writer = new BackedWriter(1024);
  await writer.waitEmpty(); // nothing held: at once
  writer.push(new Uint8Array(10));
  writer.push(new Uint8Array(10));
  let empty = false;
  const waiting = writer.waitEmpty().then(() => empty = true);
  writer.acknowledge(1);
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.equal(empty, false, "one frame is still held");
  writer.acknowledge(2);
  await waiting;
  writer.push(new Uint8Array(10));
  const closing = writer.waitEmpty();
  writer.close(new Error("gone"));
  await closing;
});
