/**
 * Small local-process helpers of the terminal role: reading the one line
 * the client sends over ssh's stdin, finding how to run this very program
 * again, and the user's login account.
 *
 * @module
 */

import { withDeadline } from "../deadline.ts";
import { LineReader } from "../session/line_reader.ts";

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
  const line = await withDeadline(
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
  const child = new Deno.Command(program, {
    args: [...args, "terminal", role],
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
