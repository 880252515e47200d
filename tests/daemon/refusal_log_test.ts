/** Refusal logging: one line per reason per interval, with a count. */
import assert from "node:assert/strict";
import { RefusalLog } from "../../src/log.ts";
import type { Logger } from "../../src/log.ts";

Deno.test("refusal log: one line per reason per second, then a count of the rest", () => {
  const lines: string[] = [];
  const log: Logger = {
    debug: () => {},
    info: () => {},
    warn: (line) => lines.push(line),
    error: () => {},
  };
  let now = 0;
  const refusals = new RefusalLog(log, 1000, () => now);
  for (let i = 0; i < 1000; i++) refusals.refused("unknown", `unknown ${i}`);
  refusals.refused("malformed", "malformed 0");
  assert.deepEqual(lines, ["unknown 0", "malformed 0"]);
  now = 999;
  refusals.refused("unknown", "unknown late");
  assert.equal(lines.length, 2);
  now = 1000;
  refusals.refused("unknown", "unknown next");
  assert.equal(
    lines[2],
    'unknown next (and 1000 more "unknown" since the last such line)',
  );
  now = 5000;
  refusals.refused("unknown", "unknown quiet");
  assert.equal(lines[3], "unknown quiet");
});
