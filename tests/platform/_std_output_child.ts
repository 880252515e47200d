/**
 * Child of std_output_test.ts: writes through `StdOutput.open(1)` and
 * reports, as JSON to the file named by its second argument, what it saw.
 *
 * Modes (first argument):
 * - `pattern BYTES`: makes its stdout non-blocking on the shared file
 *   description first (as a parent program sometimes leaves it), then
 *   writes BYTES of a pattern in chunks of random sizes, each byte once.
 * - `fill-clobbered`: fills a terminal nobody reads with `tryWrite`, then
 *   tries more writes while every other errno read says ENOENT (a runtime
 *   that clobbered errno once).
 * - `until-failure`: writes until a write fails, and reports the error's
 *   class and message.
 *
 * @module
 */

import { StdOutput } from "../../src/platform/std_output.ts";
import {
  F_GETFL,
  F_SETFL,
  injectErrnoFault,
  libc,
  O_NONBLOCK,
} from "../../src/platform/libc.ts";
import { patternBytes } from "../helpers/session_pair.ts";

const ENOENT = 2;
const [mode, arg, report] = Deno.args;
const out = StdOutput.open(1);
const outcome: Record<string, unknown> = { way: out.way };

if (mode === "pattern") {
  const c = libc();
  c.fcntl(1, F_SETFL, c.fcntl(1, F_GETFL, 0) | O_NONBLOCK);
  const data = patternBytes(Number(arg), 9);
  for (let at = 0; at < data.length;) {
    const size = 1 + Math.floor(Math.random() * 40_000);
    const chunk = data.subarray(at, Math.min(at + size, data.length));
    for (let offset = 0; offset < chunk.length;) {
      offset += await out.write(chunk.subarray(offset));
    }
    at += chunk.length;
  }
} else if (mode === "fill-clobbered") {
  const bytes = new Uint8Array(4096).fill(0x41);
  let filled = 0;
  // The terminal's queues are a few KiB to a few hundred: bounded.
  for (let i = 0; i < 10_000; i++) {
    const n = out.tryWrite(bytes);
    if (n === 0) break;
    filled += n;
  }
  outcome.filled = filled;
  let reads = 0;
  injectErrnoFault(() => reads++ % 2 === 0 ? ENOENT : undefined);
  const tries: string[] = [];
  for (let i = 0; i < 20; i++) {
    try {
      tries.push(`took ${out.tryWrite(bytes)}`);
    } catch (error) {
      tries.push(`threw ${(error as Error).message}`);
    }
  }
  injectErrnoFault(null);
  outcome.tries = tries;
  outcome.errnoReads = reads;
} else if (mode === "until-failure") {
  const bytes = new Uint8Array(4096).fill(0x42);
  try {
    for (let i = 0; i < 100_000; i++) await out.write(bytes);
    outcome.error = "none";
  } catch (error) {
    outcome.error = (error as Error).constructor.name;
    outcome.message = (error as Error).message;
  }
}
await Deno.writeTextFile(report, JSON.stringify(outcome));
