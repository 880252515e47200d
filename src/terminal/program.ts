/**
 * The program a session runs, on a pty or on plain pipes, behind one shape:
 * output streams to read, input to write, a size, an exit status.
 *
 * @module
 */

import { Pty } from "../pty/mod.ts";
import type { ProgramSpec } from "../session/mod.ts";
import { loginAccount } from "./local_io.ts";

/** Something that yields output chunks, then null at its end. */
export interface OutputSource {
  /** The next chunk, or null at end of output. */
  read(): Promise<Uint8Array | null>;
}

/** How the program ended: `code` is 128 + n when signal n killed it. */
export interface ProgramExit {
  code: number;
}

/** A running program of a session. */
export interface Program {
  /** Its process id. */
  readonly pid: number;
  /** Pty output, or stdout without a pty. */
  readonly output: OutputSource;
  /** Stderr without a pty; absent on a pty (it is in `output`). */
  readonly errors?: OutputSource;
  /** True when the program runs on a pty. */
  readonly hasPty: boolean;
  /** Resolves once when the program exits. */
  readonly exited: Promise<ProgramExit>;
  /** Sends bytes to its input (keystrokes on a pty). */
  write(data: Uint8Array): Promise<void>;
  /** Ends its input (stdin EOF); nothing on a pty. */
  closeInput(): Promise<void>;
  /** Sets the pty size; nothing without a pty. */
  resize(cols: number, rows: number): void;
  /** Sends SIGHUP, as a closed terminal would. */
  hangup(): void;
  /**
   * Without a pty: stops reading its stdout (`"output"`) or stderr
   * (`"errors"`) and closes our end, so its next write there fails
   * (SIGPIPE), as under sshd once ssh's reader left. Nothing on a pty.
   */
  closeOutput(which: "output" | "errors"): void;
  /**
   * Stops reading (pending reads resolve null) and releases descriptors;
   * on a pty this hangs the terminal up.
   */
  close(): Promise<void>;
}

/**
 * The environment of a session's program: the login basics (from `login`,
 * the environment ssh gave the launcher) and the client's.
 */
async function programEnv(
  spec: ProgramSpec,
  login: Record<string, string>,
  extraEnv: Record<string, string>,
): Promise<{ env: Record<string, string>; shell: string; home: string }> {
  const account = await loginAccount(login);
  const env: Record<string, string> = {
    TERM: spec.term,
    HOME: account.home,
    USER: account.user,
    LOGNAME: account.user,
    SHELL: account.shell,
    PATH: login.PATH ?? "/usr/local/bin:/usr/bin:/bin",
  };
  for (const name of ["LANG", "LC_ALL", "LC_CTYPE", "TZ", "MAIL"]) {
    const value = login[name];
    if (value) env[name] = value;
  }
  Object.assign(env, spec.env);
  // The user's SetEnv, as sshd with AcceptEnv would: after the basics.
  Object.assign(env, spec.setEnv ?? {});
  Object.assign(env, extraEnv);
  return { env, shell: account.shell, home: account.home };
}

/**
 * Starts the program `spec` describes, as the current user, in the login
 * environment `login` (by default this process's own); `extraEnv` (the
 * session's tunnel sockets, e.g. SSH_AUTH_SOCK) goes into its environment
 * last.
 */
export async function startProgram(
  spec: ProgramSpec,
  login: Record<string, string> = Deno.env.toObject(),
  extraEnv: Record<string, string> = {},
): Promise<Program> {
  const { env, shell, home } = await programEnv(spec, login, extraEnv);
  // Like sshd: a command runs through the shell with -c, else a login shell.
  const args = spec.command === undefined ? ["-l"] : ["-c", spec.command];
  return spec.pty
    ? ptyProgram(Pty.spawn({
      command: shell,
      args,
      env,
      cwd: home,
      cols: spec.cols,
      rows: spec.rows,
      // The echo of a keystroke crosses the network: catch it early.
      watchEcho: true,
    }))
    : pipeProgram(shell, args, env, home);
}

function ptyProgram(pty: Pty): Program {
  return {
    pid: pty.pid,
    output: pty,
    hasPty: true,
    exited: pty.exited.then((status) => ({ code: status.code })),
    write: (data) => pty.write(data),
    closeInput: () => Promise.resolve(),
    resize: (cols, rows) => pty.resize(cols, rows),
    hangup: () => {
      try {
        pty.kill("SIGHUP");
      } catch { /* gone */ }
    },
    closeOutput() {},
    close: () => pty.close(),
  };
}

/** Reads a web stream as an OutputSource. */
function streamSource(stream: ReadableStream<Uint8Array>): OutputSource & {
  cancel(): void;
} {
  const reader = stream.getReader();
  let ended = false;
  return {
    async read() {
      if (ended) return null;
      const { value, done } = await reader.read().catch(() => ({
        value: undefined,
        done: true,
      }));
      if (done || !value) {
        ended = true;
        return null;
      }
      return value;
    },
    cancel() {
      ended = true;
      reader.cancel().catch(() => {});
    },
  };
}

function pipeProgram(
  shell: string,
  args: string[],
  env: Record<string, string>,
  cwd: string,
): Program {
  const child = new Deno.Command(shell, {
    args,
    env,
    clearEnv: true,
    cwd,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    // Its own session, as under sshd: no controlling tty, and signals for
    // the session process do not reach it.
    detached: true,
  }).spawn();
  const stdin = child.stdin.getWriter();
  const output = streamSource(child.stdout);
  const errors = streamSource(child.stderr);
  let inputClosed = false;
  return {
    pid: child.pid,
    output,
    errors,
    hasPty: false,
    exited: child.status.then((status) => ({
      code: status.signal ? 128 + signalNumber(status.signal) : status.code,
    })),
    async write(data) {
      if (!inputClosed) await stdin.write(data);
    },
    async closeInput() {
      if (inputClosed) return;
      inputClosed = true;
      await stdin.close().catch(() => {});
    },
    resize() {},
    hangup() {
      try {
        child.kill("SIGHUP");
      } catch { /* gone */ }
    },
    closeOutput(which) {
      (which === "errors" ? errors : output).cancel();
    },
    async close() {
      output.cancel();
      errors.cancel();
      if (!inputClosed) {
        inputClosed = true;
        await stdin.close().catch(() => {});
      }
    },
  };
}

const SIGNAL_NUMBERS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGPIPE: 13,
  SIGTERM: 15,
};

function signalNumber(signal: Deno.Signal): number {
  return SIGNAL_NUMBERS[signal] ?? 1;
}
