/**
 * The current user's private directory for session sockets and logs.
 *
 * @module
 */

/**
 * Makes (or checks) the current user's private runtime directory for
 * session sockets: `/tmp/et-<uid>` (or `$ET_RUNTIME_DIR/et`). Not
 * `$XDG_RUNTIME_DIR`: logind removes that directory when the user's last
 * login ends, and et's own ssh login ends right after the bootstrap, so a
 * session's sockets there would vanish while it runs (tmux keeps its
 * sockets in /tmp for the same reason). It must be a real directory owned
 * by us with mode 0700, or we refuse to use it: a directory planted by
 * someone else could expose the sockets.
 */
export async function privateRuntimeDir(): Promise<string> {
  const uid = Deno.uid() ?? 0;
  const base = Deno.env.get("ET_RUNTIME_DIR");
  const dir = base ? `${base}/et` : `/tmp/et-${uid}`;
  try {
    await Deno.mkdir(dir, { mode: 0o700 });
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  const info = await Deno.lstat(dir);
  if (!info.isDirectory || info.uid !== uid || (info.mode! & 0o077) !== 0) {
    throw new Error(
      `${dir} must be a directory owned by uid ${uid} with mode 0700; refusing to use it`,
    );
  }
  return dir;
}
