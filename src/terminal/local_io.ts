/**
 * Small local-process helpers of the server roles: reading a bounded line
 * from stdin, finding how to run this very program again, and the user's
 * login account.
 *
 * @module
 */

/** Reads one line (without the newline) from stdin, bounded in size and time. */
export async function readStdinLine(
  timeoutMs: number,
  limit = 4096,
): Promise<string> {
  const reader = Deno.stdin.readable.getReader();
  const timer = setTimeout(() => reader.cancel().catch(() => {}), timeoutMs);
  const bytes: number[] = [];
  try {
    while (bytes.length < limit) {
      const { value, done } = await reader.read();
      if (done || !value) break;
      for (const byte of value) {
        if (byte === 0x0a) {
          return new TextDecoder().decode(new Uint8Array(bytes));
        }
        bytes.push(byte);
      }
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
  throw new Error(
    "no bootstrap line on stdin (et terminal is started by the et client)",
  );
}

/**
 * The command line that runs this program again: the compiled binary alone,
 * or `deno run -A <main module>` when running from source.
 */
export function selfCommand(): string[] {
  const exe = Deno.execPath();
  const name = exe.slice(exe.lastIndexOf("/") + 1);
  if (name === "deno") return [exe, "run", "-A", Deno.mainModule];
  return [exe];
}

/** A user's login shell and home, from the environment ssh set up or /etc/passwd. */
export async function loginAccount(): Promise<
  { shell: string; home: string; user: string }
> {
  let shell = Deno.env.get("SHELL");
  let home = Deno.env.get("HOME");
  let user = Deno.env.get("USER") ?? Deno.env.get("LOGNAME");
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
