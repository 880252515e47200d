/**
 * `et terminal`: the user's side of a session on the remote host (the
 * launcher started over ssh, and the session process that owns the
 * program).
 *
 * @module
 */

export { launchTerminal } from "./launcher.ts";
export { runRelay } from "./relay.ts";
export {
  type JumpRelayOptions,
  relayControlPath,
  type RelayStatus,
  serveJumpRelay,
} from "./jump_relay.ts";
export { serveTerminal, type TerminalOptions } from "./session_process.ts";
export {
  SessionHost,
  type SessionHostOptions,
  type SessionOutcome,
} from "./session_host.ts";
