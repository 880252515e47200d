/**
 * `et terminal`: the user's side of a session on the remote host (the
 * launcher started over ssh, and the session process that owns the shell).
 *
 * @module
 */

export {
  launchTerminal,
  serveTerminal,
  type TerminalOptions,
} from "./terminal.ts";
