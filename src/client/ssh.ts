/**
 * Everything the client asks of the system `ssh`: where a host really is
 * (`ssh -G`, so aliases and `-F` configs work without our own parser), and
 * starting the terminal role on the remote with the session secret written
 * to ssh's stdin — never on a command line.
 *
 * @module
 */

import { logger } from "../log.ts";
import { descendantsOf, executableName } from "../platform/process_tree.ts";
import {
  decodeReady,
  decodeRefusal,
  MAX_SET_ENV_COUNT,
  type ReadyReport,
  setEnvProblem,
} from "../session/mod.ts";

const log = logger("ssh");

/** Bootstrap ssh processes being ended (see {@linkcode endOnceSaid}). */
const ending = new Set<Promise<void>>();

/**
 * After the launcher's last line: ssh would end by itself once the
 * launcher exits, but a launcher that stayed on as the user's host (a cold
 * start, its stdio let go) keeps ssh waiting for its exit. Ends ssh at
 * once. A wrapper (a script that runs ssh as its child, or anything else
 * we cannot tell for ssh) would not pass a SIGTERM on: its whole tree is
 * found first (~5 ms with 70 processes here; a client killed meanwhile
 * would leave that ssh until the host exits), in the background, awaited
 * at the client's end ({@linkcode bootstrapSshEnded}).
 */
function endOnceSaid(child: Deno.ChildProcess, program: string): void {
  const name = executableName(child.pid) ?? program.split("/").pop();
  if (name === "ssh") {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    return;
  }
  const done = (async () => {
    // An ssh in the tree ends its own ProxyCommand after its goodbye.
    const below = await descendantsOf(
      child.pid,
      (processName) => processName === "ssh",
    );
    for (const pid of [child.pid, ...below]) {
      try {
        Deno.kill(pid, "SIGTERM");
      } catch { /* gone */ }
    }
  })();
  ending.add(done);
  done.finally(() => ending.delete(done));
}

/**
 * Resolves once every bootstrap ssh is ended or being ended: the client
 * awaits it before it exits (an ssh left behind would stay until the
 * user's host exits, minutes later).
 */
export async function bootstrapSshEnded(): Promise<void> {
  await Promise.allSettled([...ending]);
}

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

/**
 * What `ssh -G` says about a destination: OpenSSH's own reading of the
 * user's config (aliases, `Match`, `Include`, `-F`, `-o`), so et needs no
 * parser of its own.
 */
export interface SshConfig {
  /** The real host name or address to dial. */
  hostname: string;
  /** The user ssh logs in as. */
  user: string;
  /** ssh's port on that host (not et's). */
  port: number;
  /** `ProxyJump` hops as written (`[user@]host[:port]`, comma-separated); none: null. */
  proxyJump: string | null;
  /** `ForwardAgent` is on: `yes`, or a socket path or `$VAR` naming one. */
  forwardAgent: boolean;
  /** The socket `ForwardAgent` names (a path or `$VAR`), when not `yes`. */
  forwardAgentSocket: string | null;
  /** `IdentityAgent` path, when set (not `none` nor `SSH_AUTH_SOCK`). */
  identityAgent: string | null;
  /** `LocalForward` entries as tunnel specs, ssh style: `[bind:]port:host:hostport` or `path:path`. */
  localForwards: string[];
  /** `RemoteForward` entries as tunnel specs, in the same style. */
  remoteForwards: string[];
  /** `SetEnv` variables, valid ones only (`setEnvProblem` in session/). */
  setEnv: Record<string, string>;
  /** What was left out, one line each (a SOCKS forward, a bad SetEnv name). */
  skipped: string[];
}

/** `[addr]:port`, `addr:port`, `port` or `path`: one end of an ssh -G forward. */
function forwardEnd(text: string, listening: boolean): string | null {
  if (text.startsWith("/")) return text.includes(":") ? null : text;
  const bracketed = text.match(/^\[([^\]]*)\]:(\d+)$/);
  const [host, port] = bracketed
    ? [bracketed[1], bracketed[2]]
    : /^\d+$/.test(text)
    ? ["", text]
    : [
      text.slice(0, text.lastIndexOf(":")),
      text.slice(text.lastIndexOf(":") + 1),
    ];
  if (!/^\d+$/.test(port) || (!listening && host === "")) return null;
  if (host === "") return port;
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * Converts one forward as `ssh -G` prints it (`8080 [localhost]:80`,
 * `[::1]:9090 [::2]:90`, `/a.sock /b.sock`) into a tunnel spec in ssh's
 * command-line style (`8080:localhost:80`, `[::1]:9090:[::2]:90`,
 * `/a.sock:/b.sock`); null for what a tunnel cannot carry (a SOCKS
 * forward, a path with a colon).
 *
 * @example
 * ```ts
 * forwardSpec("[127.0.0.1]:7070 /tmp/r.sock"); // "127.0.0.1:7070:/tmp/r.sock"
 * ```
 */
export function forwardSpec(line: string): string | null {
  const words = line.trim().split(/\s+/);
  if (words.length !== 2) return null;
  if (/^\[socks\]:/.test(words[1])) return null;
  const listen = forwardEnd(words[0], true);
  const connect = forwardEnd(words[1], false);
  if (listen === null || connect === null) return null;
  // "[localhost]:80" is how ssh -G prints a plain name: brackets only for IPv6.
  return `${listen}:${connect}`;
}

/**
 * Reads `ssh -G` output into an {@link SshConfig}; throws a one-line Error
 * if it names no hostname.
 */
export function parseSshG(text: string, target: string): SshConfig {
  const lines = text.split("\n").map((line) => line.trim()).filter(Boolean);
  const all = (name: string) =>
    lines.filter((line) => line.toLowerCase().startsWith(name + " "))
      .map((line) => line.slice(name.length + 1).trim());
  const field = (name: string) => all(name)[0];
  const hostname = field("hostname");
  if (!hostname) throw new Error(`ssh -G ${target} named no hostname`);
  const skipped: string[] = [];
  const forwards = (name: string) =>
    all(name).flatMap((line) => {
      const spec = forwardSpec(line);
      if (spec === null) skipped.push(`${name} ${line}: not a tunnel et makes`);
      return spec === null ? [] : [spec];
    });
  const setEnv: Record<string, string> = {};
  for (const entry of all("setenv")) {
    const eq = entry.indexOf("=");
    const name = eq > 0 ? entry.slice(0, eq) : entry;
    const value = eq > 0 ? entry.slice(eq + 1) : "";
    const problem = Object.keys(setEnv).length >= MAX_SET_ENV_COUNT
      ? `more than ${MAX_SET_ENV_COUNT} variables`
      : setEnvProblem(name, value);
    if (problem) skipped.push(`setenv ${name.slice(0, 64)}: ${problem}`);
    else setEnv[name] = value;
  }
  const agent = field("identityagent");
  const forwardAgent = field("forwardagent");
  const proxyJump = field("proxyjump");
  return {
    hostname,
    user: field("user") ?? "",
    port: Number(field("port") ?? 22),
    proxyJump: proxyJump && proxyJump !== "none" ? proxyJump : null,
    forwardAgent: forwardAgent !== undefined && forwardAgent !== "no",
    forwardAgentSocket: forwardAgent && !["yes", "no"].includes(forwardAgent)
      ? forwardAgent
      : null,
    identityAgent: agent && agent !== "none" && agent !== "SSH_AUTH_SOCK"
      ? agent
      : null,
    localForwards: forwards("localforward"),
    remoteForwards: forwards("remoteforward"),
    setEnv,
    skipped,
  };
}

/**
 * Asks `ssh -G` how it would reach `target` (with the user's `-o`
 * options), and reads its answer. Throws a one-line Error.
 */
export async function resolveWithSsh(
  ssh: string[],
  target: string,
): Promise<SshConfig> {
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
  const config = parseSshG(text, target);
  for (const line of config.skipped) log.warn(`ssh config: ${line}`);
  return config;
}

/**
 * The user's ssh command line with each `--ssh-option` as `-o OPT` before
 * the destination, so ssh -G and the bootstrap both see them.
 */
export function withSshOptions(ssh: string[], options: string[]): string[] {
  return [...ssh, ...options.flatMap((option) => ["-o", option])];
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
 * An ssh running `<terminal-path> terminal` that has not been given its
 * bootstrap line yet: ssh connects and logs in meanwhile.
 */
export interface PendingRemoteTerminal {
  /**
   * Writes the bootstrap line and waits for the launcher's ready line
   * (see {@link startRemoteTerminal}).
   */
  finish(bootstrapLine: string): Promise<ReadyReport>;
  /** Ends the ssh unless it was given its line (then: nothing). */
  cancel(): void;
}

/**
 * Starts `ssh target '<terminal-path> terminal'` before its bootstrap line
 * is known, so ssh's connect and login overlap what the client still does
 * (`ssh -G`, its listeners); {@link PendingRemoteTerminal.finish} then
 * writes the line.
 */
export function spawnRemoteTerminal(
  options: Omit<RemoteTerminalOptions, "bootstrapLine">,
): PendingRemoteTerminal {
  const child = sshCommand(
    options.ssh,
    [options.target, `${options.terminalPath} terminal`],
    { stdin: "piped", stdout: "piped", stderr: "inherit" },
  ).spawn();
  let used = false;
  return {
    finish: (line) => {
      used = true;
      return readReady(child, options, line);
    },
    cancel: () => {
      if (used) return;
      used = true;
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      child.stdin.close().catch(() => {});
      child.stdout.cancel().catch(() => {});
      child.status.catch(() => {});
    },
  };
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
  return await spawnRemoteTerminal(options).finish(options.bootstrapLine);
}

async function readReady(
  child: Deno.ChildProcess,
  options: Omit<RemoteTerminalOptions, "bootstrapLine">,
  bootstrapLine: string,
): Promise<ReadyReport> {
  const writer = child.stdin.getWriter();
  try {
    await writer.write(new TextEncoder().encode(bootstrapLine));
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
  if (ready || refusal !== null) {
    child.status.then((status) =>
      log.debug(`bootstrap ssh exited ${status.code}`)
    ).catch(() => {});
    endOnceSaid(child, options.ssh[0]);
  }
  if (refusal !== null) throw new Error(`${options.target}: ${refusal}`);
  if (ready) return ready;
  const status = await child.status;
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
