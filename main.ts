/**
 * `et`: a remote terminal that survives network drops. One binary, three
 * roles: the client, `et server` and `et terminal`.
 *
 * @module
 */

import { runInternalTerminal } from "./src/cli/terminal_role.ts";

if (import.meta.main) {
  // et's own `et terminal` (the launcher over ssh, the user's host) skips
  // the command line parser and the client's modules: it runs on every
  // new session's way to its prompt.
  const code = await runInternalTerminal(Deno.args) ??
    await (await import("./src/cli/main.ts")).main(Deno.args);
  Deno.exit(code);
}
