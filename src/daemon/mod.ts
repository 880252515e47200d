/**
 * `et server`, the daemon: reads each TCP connection's clear HELLO and
 * hands the connection to the terminal process registered for that
 * session id. Never holds a key, never relays, never connects anywhere.
 *
 * @module
 */

export { type Daemon, type DaemonOptions, startDaemon } from "./daemon.ts";
export {
  MAX_ROUTER_CONNECTIONS,
  MAX_ROUTER_CONNECTIONS_PER_UID,
  Registration,
  REQUEST_TIMEOUT_MS,
  type RouterOptions,
  SessionRouter,
} from "./router.ts";
export { MAX_SESSIONS_PER_UID, type Owner } from "./registry.ts";
export { MAX_PENDING, MAX_PENDING_PER_SOURCE } from "./pending.ts";
export { HELLO_FRAME_BYTES } from "./hello.ts";
export { DEFAULT_BIND_ADDRESSES } from "./listeners.ts";
