/**
 * `withEarlyDeadline`: the deadline of a short-lived process's first wait,
 * armed without loading Deno's node timers. It resolves and rejects as
 * `withDeadline` does.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DeadlineError, withEarlyDeadline } from "../src/deadline.ts";

Deno.test("withEarlyDeadline resolves and rejects like its task when the task settles first", async () => {
  assert.equal(
    await withEarlyDeadline(Promise.resolve(7), 60_000, "late"),
    7,
  );
  await assert.rejects(
    withEarlyDeadline(Promise.reject(new Error("boom")), 60_000, "late"),
    /boom/,
  );
});

Deno.test("withEarlyDeadline rejects with a DeadlineError carrying its message once the time is up, not before", async () => {
  const started = performance.now();
  await assert.rejects(
    withEarlyDeadline(new Promise(() => {}), 200, "no line in time"),
    (error) =>
      error instanceof DeadlineError && error.message === "no line in time",
  );
  assert.ok(performance.now() - started >= 190);
});
