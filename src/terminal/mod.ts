/**
 * `et terminal`: the user's side of a session on the remote host (the
 * launcher started over ssh, and the user's host process that holds all of
 * the user's sessions, each with its program).
 *
 * @module
 */

export { type LauncherOptions, launchTerminal } from "./launcher.ts";
export { type HostOptions, serveHost } from "./user_host.ts";
export { runRelay } from "./relay.ts";
export {
  type JumpRelayOptions,
  relayControlPath,
  type RelayStatus,
  serveJumpRelay,
} from "./jump_relay.ts";
export {
  SessionHost,
  type SessionHostOptions,
  type SessionOutcome,
} from "./session_host.ts";
