/**
 * Small local-process helpers of the terminal role: reading the one line
 * the client sends over ssh's stdin, finding how to run this very program
 * again, and the user's login account.
 *
 * @module
 */

import { withDeadline, withEarlyDeadline } from "../deadline.ts";
import { LineReader } from "../session/line_reader.ts";
import { privateRuntimeDir } from "../session/runtime_dir.ts";

/**
 * The variables of the launcher's environment (what ssh set up for the
 * login) that a session's program inherits or that locate the account.
 */
export const LOGIN_ENV_NAMES = [
  "SHELL",
  "HOME",
  "USER",
  "LOGNAME",
  "PATH",
  "LANG",
  "LC_ALL",
  "LC_CTYPE",
  "TZ",
  "MAIL",
];

/**
 * Reads one line from stdin, bounded in size and time. Throws a one-line
 * Error when none comes.
 */
export async function readStdinLine(
  timeoutMs: number,
  limit = 16 * 1024,
): Promise<string> {
  // The line is there at once, normally: no node timers are loaded for
  // it (see withEarlyDeadline), before the launcher starts the host.
  const line = await withEarlyDeadline(
    new LineReader(Deno.stdin, limit).next(),
    timeoutMs,
    "no bootstrap line on stdin (et terminal is started by the et client)",
  ).catch((error) => {
    throw new Error(error.message);
  });
  if (line === null) {
    throw new Error(
      "no bootstrap line on stdin (et terminal is started by the et client)",
    );
  }
  return line;
}

/**
 * The command line that runs this program again: the compiled binary alone,
 * or `deno run -A <main module>` when running from source. Which of the two
 * is what `Deno.build.standalone` says, not the executable's name (a
 * compiled `et` may be renamed, and so may `deno`).
 */
export function selfCommand(): string[] {
  const exe = Deno.execPath();
  if (Deno.build.standalone) return [exe];
  return [exe, "run", "-A", Deno.mainModule];
}

/**
 * Deno's cache directory as `deno run` picks it from `env`: `DENO_DIR`,
 * else `$XDG_CACHE_HOME/deno`, else `$HOME/.cache/deno` (undefined when
 * none is set).
 */
export function denoCacheDir(env: Record<string, string>): string | undefined {
  if (env.DENO_DIR) return env.DENO_DIR;
  if (env.XDG_CACHE_HOME) return `${env.XDG_CACHE_HOME}/deno`;
  if (env.HOME) return `${env.HOME}/.cache/deno`;
  return undefined;
}

/**
 * Where a role started from source (`deno run`, not the compiled binary)
 * keeps Deno's cache: null when Deno's own choice ({@link denoCacheDir})
 * can be written, else `<runtimeDir>/deno`. Without a cache it can write
 * (a read-only home), Deno transpiles every module and fetches every npm
 * package again at each start: ~0.3 s here, over a second on a slower
 * network, for each host or relay started. The runtime directory is the
 * user's own (0700). Costs a directory check and one empty file.
 */
export function fallbackDenoDir(
  env: Record<string, string>,
  runtimeDir: string,
): string | null {
  const dir = denoCacheDir(env);
  if (dir !== undefined) {
    try {
      Deno.mkdirSync(dir, { recursive: true });
      const probe = `${dir}/.et-probe-${Deno.pid}`;
      Deno.writeFileSync(probe, new Uint8Array());
      Deno.removeSync(probe);
      return null;
    } catch { /* not writable: ours */ }
  }
  return `${runtimeDir}/deno`;
}

/**
 * Starts this program again as `et terminal <role>`, detached from ssh
 * (its own session, outliving the launcher), writes `input` (one line) to
 * its stdin if given, and resolves with the first line it prints, or null
 * if it printed none. Rejects with `what` after `timeoutMs`.
 */
export async function spawnDetachedRole(
  role: string,
  input: string | null,
  timeoutMs: number,
  what: string,
): Promise<string | null> {
  const [program, ...args] = selfCommand();
  const denoDir = Deno.build.standalone
    ? null
    : fallbackDenoDir(Deno.env.toObject(), await privateRuntimeDir());
  const child = new Deno.Command(program, {
    args: [...args, "terminal", role],
    ...(denoDir === null ? {} : { env: { DENO_DIR: denoDir } }),
    stdin: input === null ? "null" : "piped",
    stdout: "piped",
    stderr: "null",
    detached: true,
  }).spawn();
  if (input !== null) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(input + "\n"));
    await writer.close();
  }
  const reader = child.stdout.getReader();
  const source = {
    async read(buffer: Uint8Array) {
      const { value, done } = await reader.read();
      if (done || !value) return null;
      buffer.set(value.subarray(0, buffer.length));
      return Math.min(value.length, buffer.length);
    },
  };
  try {
    return await withDeadline(
      new LineReader(source, 4096).next(),
      timeoutMs,
      what,
      () => reader.cancel().catch(() => {}),
    );
  } finally {
    reader.cancel().catch(() => {});
    child.unref();
  }
}

/**
 * A user's login shell and home, from the environment ssh set up (`env`:
 * the launcher's, which the host was handed with the request) or
 * /etc/passwd.
 */
export async function loginAccount(
  env: Record<string, string> = Deno.env.toObject(),
): Promise<{ shell: string; home: string; user: string }> {
  let shell = env.SHELL;
  let home = env.HOME;
  let user = env.USER ?? env.LOGNAME;
  if (!shell || !home || !user) {
    const uid = String(Deno.uid() ?? 0);
    const passwd = await Deno.readTextFile("/etc/passwd").catch(() => "");
    for (const line of passwd.split("\n")) {
      const fields = line.split(":");
      if (fields[2] === uid) {
        user ??= fields[0];
        home ??= fields[5];
        shell ??= fields[6];
        break;
      }
    }
  }
  return {
    shell: shell || "/bin/sh",
    home: home || "/",
    user: user || "unknown",
  };
}
