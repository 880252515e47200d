/**
 * Parsing `[user@]host[:port]`, the way people type it after `et`: a name,
 * an IPv4 address, or an IPv6 literal — bare (`::1`, no port possible) or
 * in brackets (`[::1]`, `[::1]:2022`).
 *
 * @module
 */

/** Where to connect: the ssh destination and the et daemon's port. */
export interface Destination {
  user?: string;
  /** A name or an address; an IPv6 literal without brackets. */
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
 * The shape of an IPv6 literal: hex groups and colons (at least two), an
 * optional dotted IPv4 tail and an optional `%zone`. The resolver checks
 * the rest; this only tells an address from `host:port`.
 */
const IPV6_SHAPE = /^(?=[^%]*:[^%]*:)[0-9A-Fa-f:.]+(%[A-Za-z0-9._-]+)?$/;

/** True for text shaped like an IPv6 literal (`::1`, `fe80::1%eth0`). */
export function looksLikeIpv6(text: string): boolean {
  return IPV6_SHAPE.test(text);
}

const EXPECTED = "(expected [user@]host[:port])";

/** A login name et passes to ssh: no spaces, no leading `-`. */
const USER_NAME = /^[A-Za-z0-9._][A-Za-z0-9._-]*\$?$/;

/**
 * Checks a user name given alone (`-u USER`); throws a one-line Error.
 *
 * @example
 * ```ts
 * parseUserName("deploy"); // "deploy"
 * ```
 */
export function parseUserName(text: string): string {
  if (!USER_NAME.test(text)) {
    throw new Error(
      `invalid user name '${text}' (letters, digits, '.', '_', '-')`,
    );
  }
  return text;
}

/**
 * Parses `[user@]host[:port]` (IPv6 as `addr`, `[addr]` or `[addr]:port`);
 * throws a one-line Error naming what is wrong with anything malformed.
 *
 * @example
 * ```ts
 * parseDestination("me@[::1]:2022"); // { user: "me", host: "::1", port: 2022 }
 * parseDestination("::1");           // { user: undefined, host: "::1", port: undefined }
 * ```
 */
export function parseDestination(text: string): Destination {
  const malformed = (why?: string) =>
    new Error(
      `malformed destination '${text}' ${EXPECTED}${why ? `: ${why}` : ""}`,
    );
  if (text.length === 0) throw malformed("empty");
  if (/\s/.test(text)) throw malformed("spaces");
  if (text.startsWith("-")) throw malformed("starts with '-'");
  let user: string | undefined;
  let rest = text;
  const at = text.lastIndexOf("@");
  if (at >= 0) {
    user = text.slice(0, at);
    rest = text.slice(at + 1);
    if (!USER_NAME.test(user)) {
      throw malformed(user === "" ? "empty user" : `bad user name '${user}'`);
    }
  }
  let host: string;
  let port: number | undefined;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) throw malformed("'[' without ']'");
    host = rest.slice(1, close);
    if (!looksLikeIpv6(host)) {
      throw malformed(`'[${host}]' is not an IPv6 address`);
    }
    const after = rest.slice(close + 1);
    if (after.startsWith(":")) port = parsePort(after.slice(1));
    else if (after !== "") throw malformed(`'${after}' after ']'`);
  } else if (looksLikeIpv6(rest)) {
    // A bare IPv6 literal: every colon belongs to the address.
    host = rest;
  } else {
    const parts = rest.split(":");
    if (parts.length > 2) {
      throw malformed(
        "an IPv6 address with a port needs brackets: [addr]:port",
      );
    }
    host = parts[0];
    if (parts.length === 2) port = parsePort(parts[1]);
  }
  if (host === "") throw malformed("no host");
  // A host starting with "-" would reach ssh as an option.
  if (host.startsWith("-")) throw malformed("host starts with '-'");
  if (!/^[A-Za-z0-9._%:-]+$/.test(host)) {
    throw malformed(`bad character in host '${host}'`);
  }
  return { user, host, port };
}

/**
 * The destination as ssh wants it: `user@host` or `host` (an IPv6 literal
 * bare: ssh takes `user@::1`, and `ssh -G` resolves it unchanged).
 */
export function sshTarget(destination: Destination): string {
  return destination.user
    ? `${destination.user}@${destination.host}`
    : destination.host;
}

/** host:port for messages, IPv6 in brackets: `[::1]:2022`. */
export function hostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}
