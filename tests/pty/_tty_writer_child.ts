/**
 * Child of tty_writer_test.ts, run with its stdout on a terminal that
 * nobody reads: fills the terminal through a TtyWriter, then makes every
 * errno read say ENOENT (a runtime that clobbered errno) and tries more
 * writes. Writes what each try did, as JSON, to the file named by its
 * first argument.
 *
 * @module
 */

import { TtyWriter } from "../../src/pty/tty_writer.ts";
import { injectErrnoFault } from "../../src/platform/libc.ts";

const ENOENT = 2;
const out = TtyWriter.open(1);
const outcomes: string[] = [];
if (out === null) {
  outcomes.push("no TtyWriter");
} else {
  const bytes = new Uint8Array(4096).fill(0x41);
  let filled = 0;
  // The terminal's queues are a few KiB to a few hundred: bounded.
  for (let i = 0; i < 10_000; i++) {
    const n = out.tryWrite(bytes);
    if (n === 0) break;
    filled += n;
  }
  outcomes.push(`filled ${filled}, odd ${out.oddFailure}`);
  injectErrnoFault(() => ENOENT);
  for (let i = 0; i < 20; i++) {
    try {
      const took = out.tryWrite(bytes);
      outcomes.push(`took ${took}, odd ${out.oddFailure}`);
    } catch (error) {
      outcomes.push(`threw ${(error as Error).message}`);
    }
  }
  injectErrnoFault(null);
}
await Deno.writeTextFile(Deno.args[0], JSON.stringify(outcomes));
