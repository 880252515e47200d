/**
 * OutputCopies over a real session pair (loopback TCP, sealed frames): the
 * counts a detach reports are exactly what the local output took, through
 * partial writes, a failed write and a stop. The local output here is a
 * scripted stand-in for a terminal (taking a few bytes at a time, failing,
 * or hanging on command); a real hung-up terminal is
 * tests/e2e/terminal_gone_test.ts.
 */

import assert from "node:assert/strict";
import {
  LocalOutputError,
  OutputCopies,
} from "../../src/client/output_copy.ts";
import { startSessionPair, waitUntil } from "../helpers/session_pair.ts";

const TERMINAL = 1;

/** A local output that takes at most `max` bytes a call, until told to fail or hang. */
class ScriptedOutput {
  taken: number[] = [];
  failAfter = Infinity;
  hang = false;
  constructor(readonly max: number) {}
  async write(p: Uint8Array): Promise<number> {
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (this.hang) await new Promise(() => {});
    const n = Math.min(p.length, this.max, this.failAfter - this.taken.length);
    if (n <= 0) throw new Deno.errors.BrokenPipe("Input/output error");
    this.taken.push(...p.subarray(0, n));
    return n;
  }
}

Deno.test("a failed local write fails the copy; the count is what the output took, partial writes included", async () => {
  const pair = await startSessionPair();
  try {
    const out = new ScriptedOutput(700);
    out.failAfter = 2500;
    const copies = new OutputCopies();
    const state = copies.add(pair.client.channel(TERMINAL), out);
    const sent = new Uint8Array(6000).map((_, i) => i % 251);
    await pair.server.channel(TERMINAL).write(sent);
    const failure = await copies.failed;
    assert.ok(failure instanceof LocalOutputError);
    assert.equal(failure.channel, TERMINAL);
    assert.equal(state.bytes, 2500);
    assert.deepEqual(await copies.stop(50), { [TERMINAL]: 2500 });
    assert.deepEqual(out.taken, [...sent.subarray(0, 2500)]);
  } finally {
    await pair.stop();
  }
});

Deno.test("stop(): no write starts after it; a copy stuck in a write is left out of the counts", async () => {
  const pair = await startSessionPair();
  try {
    const quiet = new ScriptedOutput(1 << 20);
    const stuck = new ScriptedOutput(1 << 20);
    const copies = new OutputCopies();
    copies.add(pair.client.channel(TERMINAL), quiet);
    copies.add(pair.client.channel(3), stuck);
    await pair.server.channel(TERMINAL).write(new Uint8Array(100).fill(1));
    await waitUntil(() => quiet.taken.length === 100, 5000, "the first bytes");
    stuck.hang = true;
    await pair.server.channel(3).write(new Uint8Array(10).fill(3));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(await copies.stop(100), { [TERMINAL]: 100 });
    // Received after the stop: read, never written.
    await pair.server.channel(TERMINAL).write(new Uint8Array(50).fill(2));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(quiet.taken.length, 100);
  } finally {
    await pair.stop();
  }
});
