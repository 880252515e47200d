/**
 * Which Unix sockets the daemon may relay to. The daemon usually runs as
 * root and connects to whatever path a registration names, relaying a
 * remote client's bytes there: without this check a local user could point
 * it at any root service socket, or at another user's agent socket.
 *
 * A terminal's socket is accepted only if it looks exactly like one that
 * `et terminal` makes: `<16 hex>.sock`, not a symlink, in a directory named
 * `et` or `et-<uid>` that is a real directory with mode 0700, the socket
 * and the directory owned by the same user.
 *
 * @module
 */

const SOCKET_NAME = /^[0-9a-f]{16}\.sock$/;
const DIR_NAME = /^et(-\d+)?$/;

/**
 * Resolves if `path` is a terminal socket the daemon may connect to;
 * otherwise rejects with a one-line reason.
 */
export async function checkTerminalSocket(path: string): Promise<void> {
  const slash = path.lastIndexOf("/");
  const dir = path.slice(0, slash);
  const name = path.slice(slash + 1);
  const dirName = dir.slice(dir.lastIndexOf("/") + 1);
  if (!path.startsWith("/") || path.includes("/../") || path.includes("/./")) {
    throw new Error("socket path must be absolute and normalized");
  }
  if (!SOCKET_NAME.test(name) || !DIR_NAME.test(dirName)) {
    throw new Error("not an et terminal socket path");
  }
  const [socket, parent] = await Promise.all([
    Deno.lstat(path),
    Deno.lstat(dir),
  ]);
  if (!socket.isSocket || socket.isSymlink) {
    throw new Error("not a socket");
  }
  if (
    !parent.isDirectory || parent.isSymlink || (parent.mode! & 0o777) !== 0o700
  ) {
    throw new Error("socket directory must be a real directory with mode 0700");
  }
  if (socket.uid !== parent.uid) {
    throw new Error("socket and its directory have different owners");
  }
  const uid = dirName.match(/^et-(\d+)$/)?.[1];
  if (uid !== undefined && Number(uid) !== parent.uid) {
    throw new Error("socket directory is named for another user");
  }
}
