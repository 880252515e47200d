/**
 * The current user's private directory for session sockets and logs.
 *
 * @module
 */

/**
 * Makes (or checks) the current user's private runtime directory for
 * session sockets: `$XDG_RUNTIME_DIR/et`, else `/tmp/et-<uid>`. It must be
 * a real directory owned by us with mode 0700, or we refuse to use it: a
 * directory planted by someone else could expose the sockets.
 */
export async function privateRuntimeDir(): Promise<string> {
  const uid = Deno.uid() ?? 0;
  const base = Deno.env.get("XDG_RUNTIME_DIR");
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
