/**
 * Test child for security_test.ts: a daemon in its own process, to be
 * killed with SIGKILL or have its memory measured. Prints `port N` once it
 * listens; logs to stderr.
 *
 *     deno run -A _daemon_process.ts <router path> [port]
 *
 * @module
 */

import { startDaemon } from "../../src/daemon/mod.ts";
import { configureLog } from "../../src/log.ts";

const [routerPath, port] = Deno.args;
configureLog({ level: "info" });
const daemon = await startDaemon({
  port: Number(port ?? 0),
  hostname: "127.0.0.1",
  routerPath,
});
console.log(`port ${daemon.port}`);
Deno.addSignalListener("SIGTERM", async () => {
  await daemon.close();
  Deno.exit(0);
});
