/**
 * The `et` client.
 *
 * @module
 */

export { type ClientOptions, runClient } from "./client.ts";
export {
  type Destination,
  hostPort,
  looksLikeIpv6,
  parseDestination,
  parsePort,
  parseUserName,
  sshTarget,
} from "./destination.ts";
export {
  forwardSpec,
  parseSshG,
  resolveWithSsh,
  splitCommandLine,
  type SshConfig,
  withSshOptions,
} from "./ssh.ts";
export { type JumpHop, parseJumpHosts } from "./jump.ts";
