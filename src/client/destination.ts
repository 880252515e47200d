/**
 * Parsing `[user@]host[:port]`, the way people type it after `et`.
 *
 * @module
 */

/** Where to connect: the ssh destination and the et daemon's port. */
export interface Destination {
  user?: string;
  host: string;
  /** The et server's TCP port, if given after the host. */
  port?: number;
}

/**
 * Parses a TCP port number; throws a one-line Error if it is not one.
 * `allowZero` accepts 0 (a listener's "pick a free port").
 */
export function parsePort(text: string, allowZero = false): number {
  const low = allowZero ? 0 : 1;
  if (!/^\d{1,5}$/.test(text) || Number(text) < low || Number(text) > 65535) {
    throw new Error(`invalid port '${text}' (expected ${low}-65535)`);
  }
  return Number(text);
}

/**
 * Parses `[user@]host[:port]` (IPv6 as `[addr]` or `[addr]:port`); throws a
 * one-line Error for anything malformed.
 */
export function parseDestination(text: string): Destination {
  const malformed = () =>
    new Error(`malformed destination '${text}' (expected [user@]host[:port])`);
  if (text.length === 0 || /\s/.test(text) || text.startsWith("-")) {
    throw malformed();
  }
  let user: string | undefined;
  let rest = text;
  const at = text.lastIndexOf("@");
  if (at >= 0) {
    user = text.slice(0, at);
    rest = text.slice(at + 1);
    if (!/^[A-Za-z0-9._][A-Za-z0-9._-]*\$?$/.test(user)) throw malformed();
  }
  let host: string;
  let port: number | undefined;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) throw malformed();
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after.startsWith(":")) port = parsePort(after.slice(1));
    else if (after !== "") throw malformed();
  } else {
    const parts = rest.split(":");
    if (parts.length > 2) throw malformed();
    host = parts[0];
    if (parts.length === 2) port = parsePort(parts[1]);
  }
  // A host starting with "-" would reach ssh as an option.
  if (!/^[A-Za-z0-9._%:-]+$/.test(host) || host.startsWith("-")) {
    throw malformed();
  }
  return { user, host, port };
}

/** The destination as ssh wants it: `user@host` or `host`. */
export function sshTarget(destination: Destination): string {
  return destination.user
    ? `${destination.user}@${destination.host}`
    : destination.host;
}
