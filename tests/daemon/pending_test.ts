/** Caps on connections without a hello: the oldest makes room. */
import assert from "node:assert/strict";
import { PendingConnections, sourceKey } from "../../src/daemon/pending.ts";
import { formatIp, parseIp } from "../../src/platform/socket.ts";

/** A peer as accept() reports it. */
const peer = (text: string) => {
  const bytes = parseIp(text)!;
  return { address: formatIp(bytes), port: 1, bytes };
};

Deno.test("pending: per source, the oldest of that source is dropped", () => {
  const pending = new PendingConnections(10, 3);
  const a = [1, 2, 3].map(() => pending.admit("a").slot);
  const b = pending.admit("b").slot;
  const { slot, evicted } = pending.admit("a");
  assert.equal(evicted, "source full");
  assert.equal(a[0].signal.aborted, true);
  assert.equal(a[1].signal.aborted || a[2].signal.aborted, false);
  assert.equal(b.signal.aborted, false);
  assert.equal(pending.countFrom("a"), 3);
  assert.equal(pending.size, 4);
  // Releasing an evicted slot changes nothing; a live one frees its place.
  a[0].release();
  slot.release();
  assert.equal(pending.countFrom("a"), 2);
  assert.equal(pending.size, 3);
});

Deno.test("pending: in all, the oldest anywhere is dropped; the total never exceeds the cap", () => {
  const pending = new PendingConnections(5, 5);
  const slots = Array.from(
    { length: 5 },
    (_, i) => pending.admit(`s${i}`).slot,
  );
  for (let i = 0; i < 20; i++) {
    const { evicted } = pending.admit(`t${i}`);
    assert.equal(evicted, "all full");
    assert.equal(pending.size, 5);
  }
  assert.ok(slots.every((slot) => slot.signal.aborted));
  pending.clear();
  assert.equal(pending.size, 0);
});

Deno.test("pending: IPv4 counts per address, IPv6 per /64", () => {
  assert.equal(sourceKey(peer("192.0.2.7")), "192.0.2.7");
  assert.equal(sourceKey(peer("2001:db8:1:2::7")), "2001:db8:1:2::/64");
  assert.equal(
    sourceKey(peer("2001:db8:1:2:ffff:1:2:3")),
    sourceKey(peer("2001:db8:1:2::9")),
  );
  assert.notEqual(
    sourceKey(peer("2001:db8:1:3::7")),
    sourceKey(peer("2001:db8:1:2::7")),
  );
  assert.equal(sourceKey(peer("::ffff:192.0.2.7")), "192.0.2.7");
  assert.equal(sourceKey(null), "unknown");
});
