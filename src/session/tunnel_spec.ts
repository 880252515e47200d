/**
 * Tunnel specifications as users write them (`-t`, `-r`, ssh's
 * LocalForward and RemoteForward), parsed into endpoints. Pure: no
 * sockets, no environment.
 *
 * Forms (one spec; a comma list is several):
 * - `SRC:DST` with ports: `8000:9000`;
 * - port ranges of equal length: `8000-8010:9000-9010`;
 * - ssh style `[bind:]port:host:port`, IPv6 in brackets:
 *   `[::1]:8080:[::1]:80`;
 * - a Unix socket path (starting with `/`) on either end:
 *   `/tmp/docker.sock:/var/run/docker.sock`, `8080:/run/app.sock`;
 * - reverse only: `ENVVAR:DST`, a socket the session makes in a private
 *   directory, its path exported to the shell in ENVVAR.
 *
 * @module
 */

/** Where a tunnel listens or connects. */
export type TunnelEndpoint =
  | { kind: "tcp"; host: string; port: number }
  | { kind: "unix"; path: string }
  | {
    /** A socket the session makes; its path goes to the shell in `name`. */
    kind: "env";
    name: string;
  };

/** Which side listens: the client (`forward`, `-t`) or the session (`reverse`, `-r`). */
export type TunnelDirection = "forward" | "reverse";

/** One tunnel: connections to `listen` are carried to `target`. */
export interface TunnelSpec {
  direction: TunnelDirection;
  /** Where the listening side listens. */
  listen: TunnelEndpoint;
  /** What the other side dials for each connection. */
  target: TunnelEndpoint;
}

/** Where a source without a bind address listens: loopback only. */
export const DEFAULT_BIND_HOST = "127.0.0.1";
/** What a target without a host dials. */
export const DEFAULT_TARGET_HOST = "127.0.0.1";
/** Most tunnels one port range may expand to. */
export const MAX_RANGE_PORTS = 1024;
/** Longest Unix socket path (sun_path is 108 bytes with its NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

/** A spec that cannot be used; the message names the bad part. */
export class TunnelSpecError extends Error {
  override name = "TunnelSpecError";
}

/** A control character (below space, or DEL), which no socket path may hold. */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const HOST_NAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/;
const IPV6 = /^[0-9A-Fa-f:.]{2,45}(%[A-Za-z0-9_.-]{1,16})?$/;

/**
 * Parses one `-t` / `-r` argument (a comma list of specs, port ranges
 * expanded) into tunnels. Throws {@link TunnelSpecError} naming the bad
 * part.
 *
 * @example
 * ```ts
 * parseTunnelSpecs("8000-8001:9000-9001", "forward");
 * // [{ direction: "forward", listen: { kind: "tcp", host: "127.0.0.1", port: 8000 },
 * //    target: { kind: "tcp", host: "127.0.0.1", port: 9000 } }, ...8001 → 9001]
 * parseTunnelSpecs("SSH_AUTH_SOCK:/run/agent.sock", "reverse");
 * ```
 */
export function parseTunnelSpecs(
  text: string,
  direction: TunnelDirection,
): TunnelSpec[] {
  const flag = direction === "forward" ? "-t" : "-r";
  if (text.trim() === "") throw new TunnelSpecError(`${flag}: empty tunnel`);
  const out: TunnelSpec[] = [];
  for (const part of text.split(",")) {
    try {
      out.push(...parseOne(part.trim(), direction));
    } catch (error) {
      if (!(error instanceof TunnelSpecError)) throw error;
      throw new TunnelSpecError(
        `${flag} '${printable(part.trim())}': ${error.message}`,
      );
    }
  }
  return out;
}

/**
 * Parses an ssh-style forward as ssh's configuration writes it
 * (LocalForward / RemoteForward, also as `ssh -G` prints them): the
 * listen part and the target part separated by whitespace or a colon,
 * `[bind:]port host:hostport` or Unix socket paths.
 *
 * @example
 * ```ts
 * parseSshForward("8080 localhost:80", "forward");
 * parseSshForward("[::1]:2222 [::1]:22", "reverse");
 * ```
 */
export function parseSshForward(
  text: string,
  direction: TunnelDirection,
): TunnelSpec {
  const normalized = text.trim().replace(/\s+/, ":");
  const what = direction === "forward" ? "LocalForward" : "RemoteForward";
  try {
    const specs = parseOne(normalized, direction);
    if (specs.length !== 1) {
      throw new TunnelSpecError("port ranges not allowed");
    }
    return specs[0];
  } catch (error) {
    if (!(error instanceof TunnelSpecError)) throw error;
    throw new TunnelSpecError(
      `${what} '${printable(text.trim())}': ${error.message}`,
    );
  }
}

/** A spec as the user would write it, for messages and logs. */
export function formatTunnel(spec: TunnelSpec): string {
  return `${formatEndpoint(spec.listen)} -> ${formatEndpoint(spec.target)}`;
}

/** An endpoint as text: `host:port`, `[v6]:port`, a path, or `$NAME`. */
export function formatEndpoint(endpoint: TunnelEndpoint): string {
  switch (endpoint.kind) {
    case "tcp":
      return endpoint.host.includes(":")
        ? `[${endpoint.host}]:${endpoint.port}`
        : `${endpoint.host}:${endpoint.port}`;
    case "unix":
      return endpoint.path;
    case "env":
      return `$${endpoint.name}`;
  }
}

/**
 * Checks an endpoint that came over the network (an open request, a
 * bootstrap line) and returns it cleaned; throws a one-line Error.
 */
export function validateEndpoint(value: unknown): TunnelEndpoint {
  const v = value as Record<string, unknown> | null;
  if (v?.kind === "tcp") {
    if (
      typeof v.host !== "string" || !validHost(v.host) ||
      !Number.isInteger(v.port) || (v.port as number) < 1 ||
      (v.port as number) > 65535
    ) throw new Error("bad tcp endpoint");
    return { kind: "tcp", host: v.host, port: v.port as number };
  }
  if (v?.kind === "unix") {
    if (typeof v.path !== "string" || !validPath(v.path)) {
      throw new Error("bad socket path");
    }
    return { kind: "unix", path: v.path };
  }
  if (v?.kind === "env") {
    if (typeof v.name !== "string" || !ENV_NAME.test(v.name)) {
      throw new Error("bad variable name");
    }
    return { kind: "env", name: v.name };
  }
  throw new Error("bad endpoint");
}

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, "?").slice(0, 200);
}

/** Splits at colons outside brackets; keeps the brackets. */
function fields(text: string): string[] {
  const out: string[] = [];
  let current = "";
  let depth = 0;
  for (const char of text) {
    if (char === "[") depth++;
    if (char === "]") depth--;
    if (depth < 0) throw new TunnelSpecError("unbalanced ']'");
    if (char === ":" && depth === 0) {
      out.push(current);
      current = "";
    } else current += char;
  }
  if (depth !== 0) throw new TunnelSpecError("unbalanced '['");
  out.push(current);
  return out;
}

function isPath(field: string): boolean {
  return field.startsWith("/");
}

function validPath(path: string): boolean {
  // No control characters: they end up in logs and in the shell's env.
  return path.startsWith("/") && !hasControl(path) &&
    new TextEncoder().encode(path).length <= MAX_SOCKET_PATH_BYTES;
}

function validHost(host: string): boolean {
  return host.includes(":") ? IPV6.test(host) : HOST_NAME.test(host);
}

function parsePath(field: string): TunnelEndpoint {
  if (hasControl(field)) {
    throw new TunnelSpecError(
      `socket path '${printable(field)}' has a control character`,
    );
  }
  if (!validPath(field)) {
    throw new TunnelSpecError(
      `socket path '${
        printable(field)
      }' is longer than ${MAX_SOCKET_PATH_BYTES} bytes`,
    );
  }
  return { kind: "unix", path: field };
}

function parseHost(field: string, role: string): string {
  let host = field;
  if (field.startsWith("[")) {
    if (!field.endsWith("]")) {
      throw new TunnelSpecError(`${role} '${printable(field)}': missing ']'`);
    }
    host = field.slice(1, -1);
    // ssh -G brackets every host it prints ("[localhost]:80").
    if (!validHost(host)) {
      throw new TunnelSpecError(
        `${role} '${printable(field)}' is not an IPv6 address or host`,
      );
    }
    return host;
  }
  if (field === "") throw new TunnelSpecError(`empty ${role}`);
  if (field === "*") return "0.0.0.0";
  if (!HOST_NAME.test(field)) {
    throw new TunnelSpecError(`${role} '${printable(field)}' is not a host`);
  }
  return field;
}

/** A port or a range `a-b`: the list of ports. */
function parsePorts(field: string, role: string): number[] {
  const range = /^(\d{1,5})-(\d{1,5})$/.exec(field);
  if (range) {
    const first = port(range[1], role);
    const last = port(range[2], role);
    if (last < first) {
      throw new TunnelSpecError(`${role} range '${field}' runs backwards`);
    }
    if (last - first + 1 > MAX_RANGE_PORTS) {
      throw new TunnelSpecError(
        `${role} range '${field}' has more than ${MAX_RANGE_PORTS} ports`,
      );
    }
    return Array.from({ length: last - first + 1 }, (_, i) => first + i);
  }
  return [port(field, role)];
}

function port(field: string, role: string): number {
  if (!/^\d{1,5}$/.test(field)) {
    throw new TunnelSpecError(
      field === ""
        ? `missing ${role}`
        : `${role} '${printable(field)}' is not a port (1-65535)`,
    );
  }
  const n = Number(field);
  if (n < 1 || n > 65535) {
    throw new TunnelSpecError(`${role} ${n} is out of range (1-65535)`);
  }
  return n;
}

/** Pairs listen and target port lists (ranges of equal length). */
function pairPorts(
  listen: number[],
  target: number[],
  make: (l: number, t: number) => TunnelSpec,
): TunnelSpec[] {
  if (listen.length !== target.length) {
    throw new TunnelSpecError(
      `source has ${listen.length} port${
        listen.length === 1 ? "" : "s"
      }, destination ${target.length}: ranges must be of equal length`,
    );
  }
  return listen.map((l, i) => make(l, target[i]));
}

function parseOne(text: string, direction: TunnelDirection): TunnelSpec[] {
  if (text === "") throw new TunnelSpecError("empty tunnel");
  const parts = fields(text);
  const tcp = (host: string, p: number): TunnelEndpoint => ({
    kind: "tcp",
    host,
    port: p,
  });
  switch (parts.length) {
    case 1:
      throw new TunnelSpecError(
        "expected SRC:DST (e.g. 8080:80 or [bind:]port:host:port)",
      );
    case 2: {
      const [src, dst] = parts;
      if (src === "") throw new TunnelSpecError("missing source");
      if (dst === "") throw new TunnelSpecError("missing destination");
      // Source: a path, an ENVVAR (reverse), a port or a range.
      let listen: TunnelEndpoint | number[];
      if (isPath(src)) listen = parsePath(src);
      else if (!/^[\d-]+$/.test(src) && ENV_NAME.test(src)) {
        if (direction !== "reverse") {
          throw new TunnelSpecError(
            `source '${src}' is not a port: ENVVAR sources are for -r only`,
          );
        }
        listen = { kind: "env", name: src };
      } else listen = parsePorts(src, "source port");
      const target = isPath(dst)
        ? parsePath(dst)
        : parsePorts(dst, "destination port");
      if (Array.isArray(listen) && Array.isArray(target)) {
        return pairPorts(listen, target, (l, t) => ({
          direction,
          listen: tcp(DEFAULT_BIND_HOST, l),
          target: tcp(DEFAULT_TARGET_HOST, t),
        }));
      }
      if (Array.isArray(listen) && listen.length > 1) {
        throw new TunnelSpecError("a port range needs a range as destination");
      }
      if (Array.isArray(target) && target.length > 1) {
        throw new TunnelSpecError("a port range needs a range as source");
      }
      return [{
        direction,
        listen: Array.isArray(listen)
          ? tcp(DEFAULT_BIND_HOST, listen[0])
          : listen,
        target: Array.isArray(target)
          ? tcp(DEFAULT_TARGET_HOST, target[0])
          : target,
      }];
    }
    case 3: {
      // port:host:port, path:host:port, or bind:port:path.
      const [a, b, c] = parts;
      if (isPath(c)) {
        return [{
          direction,
          listen: tcp(
            parseHost(a, "bind address"),
            parsePorts(b, "source port").length === 1
              ? port(b, "source port")
              : rangeRefused(),
          ),
          target: parsePath(c),
        }];
      }
      const host = parseHost(b, "destination host");
      if (isPath(a)) {
        return [{
          direction,
          listen: parsePath(a),
          target: tcp(host, port(c, "destination port")),
        }];
      }
      return pairPorts(
        parsePorts(a, "source port"),
        parsePorts(c, "destination port"),
        (l, t) => ({
          direction,
          listen: tcp(DEFAULT_BIND_HOST, l),
          target: tcp(host, t),
        }),
      );
    }
    case 4: {
      const [bindField, src, hostField, dst] = parts;
      const bind = parseHost(bindField, "bind address");
      const host = parseHost(hostField, "destination host");
      return pairPorts(
        parsePorts(src, "source port"),
        parsePorts(dst, "destination port"),
        (l, t) => ({ direction, listen: tcp(bind, l), target: tcp(host, t) }),
      );
    }
    default:
      throw new TunnelSpecError(
        `too many ':' (${parts.length - 1}); put IPv6 addresses in brackets`,
      );
  }
}

function rangeRefused(): never {
  throw new TunnelSpecError("a port range needs ranges on both ends");
}
