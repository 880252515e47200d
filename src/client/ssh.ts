/**
 * Everything the client asks of the system `ssh`: where a host really is
 * (`ssh -G`, so aliases and `-F` configs work without our own parser), and
 * starting the terminal role on the remote with the session secret written
 * to ssh's stdin — never on a command line.
 *
 * @module
 */

import { logger } from "../log.ts";
import {
  decodeReady,
  decodeRefusal,
  type ReadyReport,
} from "../session/mod.ts";

const log = logger("ssh");

/**
 * Splits a command line like a POSIX shell would for simple cases: spaces
 * separate words, single and double quotes group, backslash escapes.
 * Throws on an unterminated quote.
 */
export function splitCommandLine(text: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === "\\" && quote === '"' && i + 1 < text.length) {
        word += text[++i];
      } else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < text.length) {
      word += text[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) throw new Error(`unterminated quote in '${text}'`);
  if (inWord) words.push(word);
  return words;
}

/** The user's ssh command with `extra` arguments appended. */
function sshCommand(
  ssh: string[],
  extra: string[],
  stdio: Pick<Deno.CommandOptions, "stdin" | "stdout" | "stderr">,
): { output(): Promise<Deno.CommandOutput>; spawn(): Deno.ChildProcess } {
  const [program, ...args] = ssh;
  const command = new Deno.Command(program, {
    args: [...args, ...extra],
    ...stdio,
  });
  const notFound = (error: unknown) =>
    error instanceof Deno.errors.NotFound
      ? new Error(`ssh command not found: ${program}`)
      : error;
  // Deno throws a spawn failure synchronously, from output() as from spawn().
  const run = <T>(start: () => T): T => {
    try {
      return start();
    } catch (error) {
      throw notFound(error);
    }
  };
  return {
    output: () =>
      run(() => command.output()).catch((error) =>
        Promise.reject(notFound(error))
      ),
    spawn: () => run(() => command.spawn()),
  };
}

/** What `ssh -G` says about a destination. */
export interface ResolvedHost {
  /** The real host name or address to dial. */
  hostname: string;
  user: string;
}

/** Asks `ssh -G` where `target` really is. Throws a one-line Error. */
export async function resolveWithSsh(
  ssh: string[],
  target: string,
): Promise<ResolvedHost> {
  const output = await sshCommand(ssh, ["-G", target], {
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    const reason =
      new TextDecoder().decode(output.stderr).trim().split("\n")[0];
    throw new Error(
      `ssh -G ${target} failed: ${reason || `exit ${output.code}`}`,
    );
  }
  const field = (name: string) =>
    text.split("\n").find((line) => line.startsWith(name + " "))?.slice(
      name.length + 1,
    ).trim();
  const hostname = field("hostname");
  if (!hostname) throw new Error(`ssh -G ${target} named no hostname`);
  return { hostname, user: field("user") ?? "" };
}

/**
 * The remote shell could not find the terminal command (exit 127): et is
 * not installed there, or not on the PATH of a non-interactive ssh.
 */
export class RemoteEtMissingError extends Error {
  override name = "RemoteEtMissingError";
}

/** Options of {@link startRemoteTerminal}. */
export interface RemoteTerminalOptions {
  ssh: string[];
  target: string;
  /** Command that runs `et` on the remote (may carry arguments). */
  terminalPath: string;
  /** The bootstrap line, secret included: written to ssh's stdin only. */
  bootstrapLine: string;
}

/**
 * Runs `ssh target '<terminal-path> terminal'`, writes the bootstrap line
 * to its stdin and waits for the launcher's ready line on its stdout,
 * skipping any noise a login script prints; resolves with its report.
 * ssh's stderr and its prompts (through /dev/tty) stay on the user's
 * terminal. Throws a one-line Error on failure: the launcher's own line
 * when it refused (another protocol version).
 */
export async function startRemoteTerminal(
  options: RemoteTerminalOptions,
): Promise<ReadyReport> {
  const child = sshCommand(
    options.ssh,
    [options.target, `${options.terminalPath} terminal`],
    { stdin: "piped", stdout: "piped", stderr: "inherit" },
  ).spawn();
  const writer = child.stdin.getWriter();
  try {
    await writer.write(new TextEncoder().encode(options.bootstrapLine));
    await writer.close();
  } catch {
    // ssh exited before reading: its status below explains.
  }
  let seen = "";
  let ready: ReadyReport | null = null;
  let refusal: string | null = null;
  const decoder = new TextDecoder();
  const reader = child.stdout.getReader();
  try {
    while (!ready && refusal === null) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += decoder.decode(value, { stream: true });
      const lines = seen.split("\n");
      // A login script printing without end must not grow this forever;
      // the ready line is short and starts on a fresh line.
      seen = (lines.pop() ?? "").slice(-4096);
      for (const line of lines) {
        refusal ??= decodeRefusal(line);
        ready ??= decodeReady(line);
        if (!ready && refusal === null) {
          log.info(`remote said: ${line.slice(0, 200)}`);
        }
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  const status = await child.status;
  if (refusal !== null) throw new Error(`${options.target}: ${refusal}`);
  if (ready) return ready;
  if (status.code === 255) {
    throw new Error(
      `ssh to ${options.target} failed (see ssh's message above)`,
    );
  }
  if (status.code === 127) {
    throw new RemoteEtMissingError(
      `'${options.terminalPath}' was not found on ${options.target}: install et there, or pass --terminal-path`,
    );
  }
  throw new Error(
    `the remote et terminal did not start (exit ${status.code}); see the message above`,
  );
}
