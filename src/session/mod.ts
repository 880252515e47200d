/**
 * The terminal session protocol shared by `client/` and `server/`.
 *
 * @module
 */

export * from "./terminal_protocol.ts";
export * from "./runtime_dir.ts";
