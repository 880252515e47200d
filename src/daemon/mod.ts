/**
 * `et server`, the daemon: routes TCP connections by session id to the
 * registered terminal processes. Never holds a key.
 *
 * @module
 */

export { type Daemon, type DaemonOptions, startDaemon } from "./daemon.ts";
export { SessionRouter } from "./router.ts";
