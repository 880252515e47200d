/**
 * `et`: a remote terminal that survives network drops. One binary, three
 * roles: the client, `et server` and `et terminal`.
 *
 * @module
 */

import { main } from "./src/cli/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
