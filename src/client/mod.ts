/**
 * The `et` client.
 *
 * @module
 */

export { type ClientOptions, runClient } from "./client.ts";
export {
  type Destination,
  parseDestination,
  parsePort,
  sshTarget,
} from "./destination.ts";
export { resolveWithSsh, splitCommandLine } from "./ssh.ts";
export { type JumpHop, parseJumpHosts } from "./jump.ts";
