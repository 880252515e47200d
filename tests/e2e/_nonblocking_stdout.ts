/**
 * Runs argv with this process's stdout made non-blocking first, on the
 * file description itself (shared with the child), as a parent program
 * sometimes leaves it: a full stdout then says EAGAIN instead of waiting.
 * Exits with the child's status.
 *
 * Usage: deno run -A _nonblocking_stdout.ts PROGRAM [ARGS...]
 */

import { F_GETFL, F_SETFL, libc, O_NONBLOCK } from "../../src/platform/libc.ts";

const c = libc();
const flags = c.fcntl(1, F_GETFL, 0);
if (flags < 0 || c.fcntl(1, F_SETFL, flags | O_NONBLOCK) !== 0) {
  console.error("cannot make stdout non-blocking");
  Deno.exit(125);
}
const [program, ...args] = Deno.args;
const status = await new Deno.Command(program, {
  args,
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn().status;
Deno.exit(status.code);
