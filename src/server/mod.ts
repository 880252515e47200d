/**
 * The server side of `et`: the routing daemon and the terminal role.
 *
 * @module
 */

export { type Daemon, type DaemonOptions, startDaemon } from "./daemon.ts";
export {
  DEFAULT_ROUTER_PATH,
  registerSession,
  routerPathFromEnv,
  SessionRouter,
} from "./router.ts";
export {
  launchTerminal,
  serveTerminal,
  type TerminalOptions,
} from "./terminal.ts";
