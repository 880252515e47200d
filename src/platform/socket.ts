/**
 * Sockets as plain descriptors through libc, for what Deno's own sockets do
 * not offer: the descriptor itself (to pass it to another process), the
 * peer's credentials on a Unix socket (`SO_PEERCRED`), descriptor passing
 * (`SCM_RIGHTS`), and reads into a caller's fixed buffer. Every socket made
 * here is non-blocking and close-on-exec; waiting is the reactor's job
 * (`reactor.ts`). Linux only.
 *
 * @example A listener whose connections can be handed to another process
 * ```ts
 * const { fd } = listenTcp("127.0.0.1", 2022);
 * await reactor().readable(fd);
 * const accepted = accept(fd); // { fd, peer: { address, port } } or null
 * ```
 *
 * @module
 */

import {
  callDoubtingErrno,
  EAGAIN,
  errno,
  errnoError,
  errnoName,
  libc,
  requireLinux,
} from "./libc.ts";
import { reactor } from "./reactor.ts";

const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_SNDBUF = 7;
const SO_PEERCRED = 17;
const IPPROTO_TCP = 6;
const IPPROTO_IPV6 = 41;
const IPV6_V6ONLY = 26;
const TCP_NODELAY = 1;
const SCM_RIGHTS = 1;
const MSG_CTRUNC = 0x8;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
const SHUT_RDWR = 2;
/** sizeof(sockaddr_un.sun_path) on Linux. */
const UNIX_PATH_BYTES = 108;

/** What a non-blocking call returns when it would have to wait. */
export const WOULD_BLOCK = -1;

/** Most descriptors one {@link receiveWithDescriptors} call takes. */
export const MAX_DESCRIPTORS_PER_MESSAGE = 8;

/** A failed socket call; `code` is its errno. */
export class SocketError extends Error {
  override name = "SocketError";
  /** The errno value, e.g. 104 (ECONNRESET). */
  readonly code: number;

  /** An error for `call` failing with errno `code`. */
  constructor(call: string, code: number) {
    super(errnoError(call, code).message);
    this.code = code;
  }

  /** The symbolic errno, e.g. "ECONNRESET". */
  get codeName(): string {
    return errnoName(this.code);
  }
}

/** A TCP peer's address. */
export interface PeerAddress {
  /** Dotted IPv4 or compressed IPv6 text; IPv4-mapped IPv6 shows as IPv4. */
  address: string;
  /** The peer's port. */
  port: number;
  /** The address as 4 (IPv4) or 16 (IPv6) bytes. */
  bytes: Uint8Array;
}

/** A connection taken from a listener. */
export interface Accepted {
  /** The connection's descriptor (non-blocking, close-on-exec). */
  fd: number;
  /** Its peer, for TCP; null for a Unix socket. */
  peer: PeerAddress | null;
}

/** The process at the other end of a Unix socket, as the kernel saw it connect. */
export interface PeerCredentials {
  /** Its process id (in our pid namespace). */
  pid: number;
  /** Its effective user id. */
  uid: number;
  /** Its effective group id. */
  gid: number;
}

/** Parses an IPv4 or IPv6 literal into 4 or 16 bytes; null if it is not one. */
export function parseIp(text: string): Uint8Array | null {
  const v4 = parseIPv4(text);
  if (v4) return v4;
  if (!text.includes(":") || text.includes("%")) return null;
  let head = text;
  let tail = "";
  const gap = text.indexOf("::");
  if (gap >= 0) {
    if (text.indexOf("::", gap + 1) >= 0) return null;
    head = text.slice(0, gap);
    tail = text.slice(gap + 2);
  }
  const groups = (part: string): number[] | null => {
    if (part === "") return [];
    const out: number[] = [];
    const pieces = part.split(":");
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (i === pieces.length - 1 && piece.includes(".")) {
        const embedded = parseIPv4(piece);
        if (!embedded) return null;
        out.push((embedded[0] << 8) | embedded[1]);
        out.push((embedded[2] << 8) | embedded[3]);
      } else if (/^[0-9a-fA-F]{1,4}$/.test(piece)) {
        out.push(parseInt(piece, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const front = groups(head);
  const back = groups(tail);
  if (!front || !back) return null;
  const missing = 8 - front.length - back.length;
  if (gap >= 0 ? missing < 1 : missing !== 0) return null;
  const all = [...front, ...new Array(missing).fill(0), ...back];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    if (!/^\d{1,3}$/.test(parts[i]) || Number(parts[i]) > 255) return null;
    bytes[i] = Number(parts[i]);
  }
  return bytes;
}

/** Formats 4 or 16 address bytes; IPv4-mapped IPv6 as plain IPv4. */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  if (
    bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff &&
    bytes[11] === 0xff
  ) {
    return bytes.subarray(12).join(".");
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i] << 8) | bytes[i + 1]);
  // The longest run of two or more zero groups becomes "::".
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${
    hex.slice(bestStart + bestLength).join(":")
  }`;
}

function newSocket(family: number): number {
  requireLinux("sockets as descriptors");
  const fd = libc().socket(
    family,
    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
    0,
  );
  if (fd < 0) throw new SocketError("socket", errno());
  return fd;
}

function inetAddress(bytes: Uint8Array, port: number): Uint8Array {
  if (bytes.length === 4) {
    // struct sockaddr_in: family, port (big-endian), address, zero[8]
    const out = new Uint8Array(16);
    const view = new DataView(out.buffer);
    view.setUint16(0, AF_INET, true);
    view.setUint16(2, port);
    out.set(bytes, 4);
    return out;
  }
  // struct sockaddr_in6: family, port, flowinfo, address[16], scope_id
  const out = new Uint8Array(28);
  const view = new DataView(out.buffer);
  view.setUint16(0, AF_INET6, true);
  view.setUint16(2, port);
  out.set(bytes, 8);
  return out;
}

function unixAddress(path: string): Uint8Array {
  const encoded = new TextEncoder().encode(path);
  if (encoded.length === 0 || encoded.length >= UNIX_PATH_BYTES) {
    throw new Error(
      `Unix socket path must be 1..${UNIX_PATH_BYTES - 1} bytes: ${path}`,
    );
  }
  const out = new Uint8Array(2 + UNIX_PATH_BYTES);
  new DataView(out.buffer).setUint16(0, AF_UNIX, true);
  out.set(encoded, 2);
  return out;
}

/** Reads a sockaddr_in / sockaddr_in6; null for anything else. */
function decodePeer(address: Uint8Array): PeerAddress | null {
  const view = new DataView(address.buffer, address.byteOffset);
  const family = view.getUint16(0, true);
  if (family === AF_INET) {
    const bytes = address.slice(4, 8);
    return { address: formatIp(bytes), port: view.getUint16(2), bytes };
  }
  if (family === AF_INET6) {
    const bytes = address.slice(8, 24);
    return { address: formatIp(bytes), port: view.getUint16(2), bytes };
  }
  return null;
}

function setIntOption(fd: number, level: number, name: number, value: number) {
  const buffer = new Int32Array([value]);
  if (libc().setsockopt(fd, level, name, buffer, 4) < 0) {
    throw new SocketError("setsockopt", errno());
  }
}

/** Options of {@link listenTcp}. */
export interface ListenTcpOptions {
  /**
   * Length of the queue of connections not yet accepted.
   * @default {1024}
   */
  backlog?: number;
  /**
   * For an IPv6 address: take IPv6 only (IPV6_V6ONLY), so an IPv4 listener
   * on the same port can sit beside it. Unset: the system's default
   * (on Linux "::" then takes IPv4 too, as mapped addresses).
   */
  v6only?: boolean;
}

/**
 * Listens on TCP `host` (an IPv4 or IPv6 literal; "::" takes IPv4 too where
 * the system allows, unless `v6only`) and `port` (0: any free one).
 * SO_REUSEADDR is set, so a restarted listener binds at once although
 * connections it accepted earlier still use the port.
 */
export function listenTcp(
  host: string,
  port: number,
  options: ListenTcpOptions = {},
): { fd: number; port: number } {
  const bytes = parseIp(host);
  if (!bytes) throw new Error(`not an IP address: ${host}`);
  const fd = newSocket(bytes.length === 4 ? AF_INET : AF_INET6);
  const backlog = options.backlog ?? 1024;
  try {
    setIntOption(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (bytes.length === 16 && options.v6only !== undefined) {
      setIntOption(fd, IPPROTO_IPV6, IPV6_V6ONLY, options.v6only ? 1 : 0);
    }
    const address = inetAddress(bytes, port);
    const c = libc();
    if (c.bind(fd, address, address.length) < 0) {
      throw new SocketError(`bind(${host}:${port})`, errno());
    }
    if (c.listen(fd, backlog) < 0) throw new SocketError("listen", errno());
    const bound = new Uint8Array(28);
    const length = new Uint32Array([bound.length]);
    if (c.getsockname(fd, bound, new Uint8Array(length.buffer)) < 0) {
      throw new SocketError("getsockname", errno());
    }
    return { fd, port: new DataView(bound.buffer).getUint16(2) };
  } catch (error) {
    libc().close(fd);
    throw error;
  }
}

/**
 * Listens on a Unix socket at `path` (which must not exist). The socket
 * file gets the process umask's mode; the caller sets the mode it wants.
 */
export function listenUnix(path: string, backlog = 1024): number {
  const address = unixAddress(path);
  const fd = newSocket(AF_UNIX);
  const c = libc();
  if (c.bind(fd, address, address.length) < 0) {
    const code = errno();
    c.close(fd);
    throw new SocketError(`bind(${path})`, code);
  }
  if (c.listen(fd, backlog) < 0) {
    const code = errno();
    c.close(fd);
    throw new SocketError("listen", code);
  }
  return fd;
}

/**
 * Connects to the Unix socket at `path`; the descriptor is non-blocking.
 * A listener whose queue is full refuses (EAGAIN) rather than making us wait.
 */
export function connectUnix(path: string): number {
  const address = unixAddress(path);
  const fd = newSocket(AF_UNIX);
  const c = libc();
  const failed = callDoubtingErrno(() =>
    c.connect(fd, address, address.length)
  );
  if (failed < 0) {
    c.close(fd);
    throw new SocketError(`connect(${path})`, -failed);
  }
  return fd;
}

const acceptAddress = new Uint8Array(28);
const acceptLength = new Uint32Array(1);
const acceptLengthBytes = new Uint8Array(acceptLength.buffer);

/**
 * Takes one connection from listener `fd`, or returns null when none is
 * waiting. Throws SocketError for the rest: ECONNABORTED and the like
 * concern one connection; EMFILE, ENFILE, ENOBUFS, ENOMEM say the process
 * or system is out of something; EBADF or EINVAL that the listener closed.
 */
export function accept(fd: number): Accepted | null {
  const c = libc();
  const conn = callDoubtingErrno(() => {
    acceptLength[0] = acceptAddress.length;
    return c.accept4(
      fd,
      acceptAddress,
      acceptLengthBytes,
      SOCK_NONBLOCK | SOCK_CLOEXEC,
    );
  });
  if (conn >= 0) return { fd: conn, peer: decodePeer(acceptAddress) };
  if (conn === -EAGAIN) return null;
  throw new SocketError("accept", -conn);
}

/**
 * Reads into `buffer` what is there, never more than its length and never
 * waiting: the count (at least 1), 0 at end of stream, or
 * {@link WOULD_BLOCK}. Throws SocketError (ECONNRESET, ...).
 */
export function receive(fd: number, buffer: Uint8Array): number {
  const c = libc();
  const n = callDoubtingErrno(() =>
    Number(c.recv(fd, buffer, BigInt(buffer.length), MSG_DONTWAIT))
  );
  if (n >= 0) return n;
  if (n === -EAGAIN) return WOULD_BLOCK;
  throw new SocketError("recv", -n);
}

/**
 * Writes what fits of `data` without waiting: the count, or
 * {@link WOULD_BLOCK}. Never raises SIGPIPE; throws SocketError (EPIPE, ...).
 */
export function sendSome(fd: number, data: Uint8Array): number {
  const c = libc();
  const n = callDoubtingErrno(() =>
    Number(c.send(fd, data, BigInt(data.length), MSG_DONTWAIT | MSG_NOSIGNAL))
  );
  if (n >= 0) return n;
  if (n === -EAGAIN) return WOULD_BLOCK;
  throw new SocketError("send", -n);
}

// struct msghdr (56 bytes on 64-bit Linux): name, namelen(+pad), iov,
// iovlen, control, controllen, flags(+pad). struct iovec: base, len.
// struct cmsghdr: len (size_t), level, type, then the data, 8-aligned.
const CMSG_HEADER_BYTES = 16;
const messageHeader = new Uint8Array(56);
const messageView = new DataView(messageHeader.buffer);
const ioVector = new Uint8Array(16);
const ioView = new DataView(ioVector.buffer);
const control = new Uint8Array(
  CMSG_HEADER_BYTES + 4 * MAX_DESCRIPTORS_PER_MESSAGE,
);
const controlView = new DataView(control.buffer);

function address(buffer: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buffer)));
}

function prepareMessage(data: Uint8Array, controlBytes: number) {
  messageHeader.fill(0);
  ioView.setBigUint64(0, address(data), true);
  ioView.setBigUint64(8, BigInt(data.length), true);
  messageView.setBigUint64(16, address(ioVector), true);
  messageView.setBigUint64(24, 1n, true);
  if (controlBytes > 0) {
    messageView.setBigUint64(32, address(control), true);
    messageView.setBigUint64(40, BigInt(controlBytes), true);
  }
}

/**
 * Sends `data` on Unix socket `fd` with a copy of descriptor `passFd`
 * attached (SCM_RIGHTS), without waiting: the count of bytes sent (all of a
 * small message, in practice), or {@link WOULD_BLOCK}. The receiver gets
 * its own descriptor for the same open socket; ours stays open until we
 * close it.
 */
export function sendWithDescriptor(
  fd: number,
  data: Uint8Array,
  passFd: number,
): number {
  if (data.length === 0) throw new Error("a passed descriptor needs data");
  control.fill(0);
  controlView.setBigUint64(0, BigInt(CMSG_HEADER_BYTES + 4), true);
  controlView.setInt32(8, SOL_SOCKET, true);
  controlView.setInt32(12, SCM_RIGHTS, true);
  controlView.setInt32(16, passFd, true);
  // CMSG_SPACE(4): the header and the int, padded to 8 bytes.
  prepareMessage(data, CMSG_HEADER_BYTES + 8);
  const c = libc();
  const n = callDoubtingErrno(() =>
    Number(c.sendmsg(fd, messageHeader, MSG_DONTWAIT | MSG_NOSIGNAL))
  );
  if (n >= 0) return n;
  if (n === -EAGAIN) return WOULD_BLOCK;
  throw new SocketError("sendmsg", -n);
}

/**
 * Reads from Unix socket `fd` into `buffer` like {@link receive}, and
 * appends every descriptor that came with the bytes to `descriptors` (they
 * are close-on-exec; the caller owns them). Descriptors beyond
 * {@link MAX_DESCRIPTORS_PER_MESSAGE} in one message are closed by the
 * kernel; `truncated` says so.
 */
export function receiveWithDescriptors(
  fd: number,
  buffer: Uint8Array,
  descriptors: number[],
): { count: number; truncated: boolean } {
  const c = libc();
  const n = callDoubtingErrno(() => {
    control.fill(0);
    prepareMessage(buffer, control.length);
    return Number(
      c.recvmsg(fd, messageHeader, MSG_DONTWAIT | MSG_CMSG_CLOEXEC),
    );
  });
  if (n === -EAGAIN) return { count: WOULD_BLOCK, truncated: false };
  if (n < 0) throw new SocketError("recvmsg", -n);
  const controlLength = Number(messageView.getBigUint64(40, true));
  let offset = 0;
  while (offset + CMSG_HEADER_BYTES <= controlLength) {
    const length = Number(controlView.getBigUint64(offset, true));
    if (length < CMSG_HEADER_BYTES) break;
    const level = controlView.getInt32(offset + 8, true);
    const type = controlView.getInt32(offset + 12, true);
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      const end = Math.min(offset + length, controlLength);
      for (let at = offset + CMSG_HEADER_BYTES; at + 4 <= end; at += 4) {
        descriptors.push(controlView.getInt32(at, true));
      }
    }
    offset += (length + 7) & ~7;
  }
  const flags = messageView.getInt32(48, true);
  return { count: n, truncated: (flags & MSG_CTRUNC) !== 0 };
}

const credentials = new Uint8Array(12);
const credentialsView = new DataView(credentials.buffer);
const credentialsLength = new Uint32Array(1);

/**
 * Who is at the other end of Unix socket `fd`: the credentials the kernel
 * recorded when the peer connected (SO_PEERCRED). They cannot be forged by
 * the peer, and stay those of the connecting process even if it changes
 * identity later.
 */
export function peerCredentials(fd: number): PeerCredentials {
  credentialsLength[0] = credentials.length;
  const failed = libc().getsockopt(
    fd,
    SOL_SOCKET,
    SO_PEERCRED,
    credentials,
    new Uint8Array(credentialsLength.buffer),
  );
  if (failed < 0) throw new SocketError("getsockopt(SO_PEERCRED)", errno());
  return {
    pid: credentialsView.getInt32(0, true),
    uid: credentialsView.getUint32(4, true),
    gid: credentialsView.getUint32(8, true),
  };
}

/** Turns Nagle's algorithm off on TCP socket `fd` (interactive latency). */
export function setNoDelay(fd: number): void {
  setIntOption(fd, IPPROTO_TCP, TCP_NODELAY, 1);
}

/**
 * Caps what `fd` may have queued towards its peer. On a Unix socket this
 * bounds the messages (and the descriptors they carry) waiting in the
 * peer's queue: a peer that stops reading makes our sends fail with
 * {@link WOULD_BLOCK} once about `bytes` are queued. The kernel doubles the
 * value for its bookkeeping and enforces a small minimum.
 */
export function setSendBuffer(fd: number, bytes: number): void {
  setIntOption(fd, SOL_SOCKET, SO_SNDBUF, bytes);
}

/**
 * Shuts both directions of `fd` down: the peer sees the end of the stream
 * even while another process still holds a copy of the descriptor.
 */
export function shutdownSocket(fd: number): void {
  libc().shutdown(fd, SHUT_RDWR);
}

const RLIMIT_NOFILE = 7;

/**
 * Raises this process's descriptor limit (RLIMIT_NOFILE) from its soft
 * value to its hard one, as servers that hold many sockets do, and returns
 * the limit now in force. Running out of descriptors is worth avoiding
 * even where our loops survive it: Deno itself can panic when it needs one
 * and gets EMFILE (seen on 2.9.6).
 */
export function raiseDescriptorLimit(): number {
  requireLinux("the descriptor limit");
  const limits = new BigUint64Array(2); // struct rlimit { cur, max }
  const bytes = new Uint8Array(limits.buffer);
  const c = libc();
  if (c.getrlimit(RLIMIT_NOFILE, bytes) < 0) {
    throw new SocketError("getrlimit", errno());
  }
  if (limits[0] < limits[1]) {
    const soft = limits[0];
    limits[0] = limits[1];
    if (c.setrlimit(RLIMIT_NOFILE, bytes) < 0) limits[0] = soft;
  }
  // RLIM_INFINITY and other huge values: plenty.
  return limits[0] > BigInt(Number.MAX_SAFE_INTEGER)
    ? Number.MAX_SAFE_INTEGER
    : Number(limits[0]);
}

/**
 * Closes socket `fd`, first telling the reactor to stop watching it (epoll
 * would otherwise go on watching a socket another process still holds).
 */
export function closeSocket(fd: number): void {
  if (fd < 0) return;
  reactor().forget(fd);
  libc().close(fd);
}
