/**
 * OutputBacklog with a real program on real pipes: the program runs on
 * while there is room, blocks at the capacity, never loses a byte, and a
 * sender's peek/commit/unshift keep the order.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { OutputBacklog } from "../../src/terminal/backlog.ts";
import { startProgram } from "../../src/terminal/program.ts";

const spec = (command: string) => ({
  command,
  pty: false,
  term: "dumb",
  cols: 80,
  rows: 24,
  env: {},
});

async function waitUntil(test: () => boolean, what: string) {
  const deadline = performance.now() + 10_000;
  while (!test()) {
    if (performance.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

Deno.test("backlog: the program blocks at the capacity, runs on when it grows, nothing lost", async () => {
  const program = await startProgram(
    spec("seq 1 400000; echo done > /dev/stderr"),
  );
  let capacity = 64 * 1024;
  const backlog = new OutputBacklog(program.output, () => capacity);
  let exited = false;
  program.exited.then(() => exited = true);
  await waitUntil(() => backlog.full, "backlog full");
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.ok(
    backlog.full && !exited,
    "the program waits while the backlog is full",
  );
  assert.ok(backlog.bytes >= capacity && backlog.bytes < capacity + 70_000);

  capacity = 64 * 1024 * 1024; // the client went away: let it run
  backlog.recheckCapacity();
  await waitUntil(() => backlog.sourceDone, "program output complete");
  assert.equal((await program.exited).code, 0);

  const hash = createHash("sha256");
  let total = 0;
  for (let chunk; (chunk = await backlog.peek());) {
    assert.ok(chunk.length <= 64 * 1024);
    hash.update(chunk);
    total += chunk.length;
    backlog.commit(chunk);
  }
  const expected = await new Deno.Command("seq", { args: ["1", "400000"] })
    .output();
  assert.equal(total, expected.stdout.length);
  assert.equal(
    hash.digest("hex"),
    createHash("sha256").update(expected.stdout).digest("hex"),
  );
  assert.equal(backlog.bytes, 0);
  await program.close();
});

Deno.test("backlog: unshifted chunks go first; commit takes only the head; peek honours abort", async () => {
  const program = await startProgram(spec("printf abc; sleep 0.2; printf def"));
  const backlog = new OutputBacklog(program.output, () => 1 << 20);
  const first = await backlog.peek();
  assert.equal(new TextDecoder().decode(first!), "abc");
  backlog.commit(first!);
  const recovered = new TextEncoder().encode("xyz");
  backlog.unshift([recovered]);
  assert.throws(() => backlog.commit(new Uint8Array(3)), /not the head/);
  assert.equal(await backlog.peek(), recovered);
  backlog.commit(recovered);
  const stop = new AbortController();
  const waiting = backlog.peek(stop.signal);
  stop.abort();
  assert.equal(await waiting, undefined, "an aborted peek resolves undefined");
  const rest = await backlog.peek();
  assert.equal(new TextDecoder().decode(rest!), "def");
  backlog.commit(rest!);
  assert.equal(
    await backlog.peek(),
    null,
    "null once the source ended and all was taken",
  );
  await program.close();
});
