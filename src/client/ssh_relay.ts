/**
 * `--over-ssh`: the session's sealed frames carried over the stdio of an
 * ssh process instead of TCP. Each dial starts `ssh host '<et> relay <id>'`
 * (non-interactive: `BatchMode=yes`, since a reconnect cannot stop to ask
 * for a password), skips whatever a login script prints until the relay's
 * ready line, and hands the transport a byte pipe over ssh's stdin and
 * stdout. Closing the pipe ends that ssh.
 *
 * @module
 */

import { withDeadline } from "../deadline.ts";
import { logger } from "../log.ts";
import { decodeRefusal, RELAY_READY_MARKER } from "../session/mod.ts";
import type { BytePipe } from "../transport/mod.ts";

const log = logger("over-ssh");

/** Output before the relay's ready line that we skip at most. */
const MAX_NOISE_BYTES = 64 * 1024;

/** ssh's stderr kept for the error message: its last few KiB. */
const STDERR_KEEP = 4096;

/**
 * ssh processes at most starting at once (logging in, the relay
 * starting): the redial loop starts an attempt every half second, and a
 * slow login must not turn into a dozen of them.
 */
const MAX_STARTING = 2;

/**
 * A second ssh starts only once the first has been starting this long
 * (it looks stuck on a dead path): a login here takes well under a
 * second, and each extra one costs the host a login and a relay.
 */
const SECOND_AFTER_MS = 2000;

/**
 * ssh could not log in without asking: `--over-ssh` reconnects on its
 * own and needs a key (or an agent) that works non-interactively.
 */
export class SshAuthError extends Error {
  override name = "SshAuthError";
}

/** Where and how to start the relay. */
export interface SshRelayOptions {
  /** The user's ssh command line, split into words. */
  ssh: string[];
  /** The destination for ssh (`[user@]host`, an alias). */
  target: string;
  /** Command that runs `et` on the remote. */
  terminalPath: string;
  /** The session id, 32 hex digits. */
  idHex: string;
}

/**
 * Makes the dial function for `options`: each call starts one ssh running
 * `et relay` and resolves with a pipe once the relay has joined the
 * session; it rejects with one line (a {@link SshAuthError} when ssh needs
 * a prompt) otherwise. An aborted `signal` ends the attempt and its ssh.
 */
export function sshRelayDialer(
  options: SshRelayOptions,
): (signal?: AbortSignal) => Promise<BytePipe> {
  // When each ssh now starting began, by ticket; waiters look again on
  // any change.
  const starting = new Map<number, number>();
  let tickets = 0;
  let changed = Promise.withResolvers<void>();
  const acquire = async (signal?: AbortSignal): Promise<number> => {
    while (true) {
      if (signal?.aborted) throw new Error("attempt abandoned");
      const now = performance.now();
      const oldest = Math.min(...starting.values());
      const secondIn = oldest + SECOND_AFTER_MS - now;
      if (
        starting.size === 0 ||
        (starting.size < MAX_STARTING && secondIn <= 0)
      ) {
        const ticket = tickets++;
        starting.set(ticket, now);
        return ticket;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      let onAbort = () => {};
      try {
        await Promise.race([
          changed.promise,
          new Promise<void>((resolve) => {
            onAbort = () => resolve();
            signal?.addEventListener("abort", onAbort, { once: true });
          }),
          ...(starting.size < MAX_STARTING
            ? [new Promise((resolve) => timer = setTimeout(resolve, secondIn))]
            : []),
        ]);
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      }
    }
  };
  const release = (ticket: number) => {
    starting.delete(ticket);
    changed.resolve();
    changed = Promise.withResolvers<void>();
  };
  return async (signal?: AbortSignal) => {
    const ticket = await acquire(signal);
    try {
      return await startRelay(options, signal);
    } finally {
      release(ticket);
    }
  };
}

/** Starts one ssh + relay; resolves once the relay's ready line came. */
async function startRelay(
  options: SshRelayOptions,
  signal?: AbortSignal,
): Promise<BytePipe> {
  const [program, ...args] = options.ssh;
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(program, {
      args: [
        ...args,
        "-o",
        "BatchMode=yes",
        "-T",
        options.target,
        `${options.terminalPath} relay ${options.idHex}`,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (error) {
    throw error instanceof Deno.errors.NotFound
      ? new Error(`ssh command not found: ${program}`)
      : error;
  }
  const pipe = new ChildPipe(child);
  const onAbort = () => pipe.close();
  signal?.addEventListener("abort", onAbort, { once: true });
  let refusal: string | null;
  try {
    refusal = await pipe.skipToMarker();
  } catch (error) {
    if (signal?.aborted) throw new Error("attempt abandoned");
    if (error instanceof TooMuchNoiseError) {
      pipe.close();
      throw new Error(`${options.target}: ${error.message}`);
    }
    // ssh ended its output: its status and stderr say why (it exits on
    // its own right after; the close only ends one that lingers).
    const exited = await withDeadline(child.status, 2000, "ssh lingers")
      .catch(() => null);
    pipe.close();
    throw await explainExit(
      exited?.code ?? (await child.status).code,
      pipe,
      options,
    );
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
  if (signal?.aborted || refusal !== null) {
    pipe.close();
    throw new Error(
      refusal === null ? "attempt abandoned" : `${options.target}: ${refusal}`,
    );
  }
  return pipe;
}

/** The relay's output had no ready line where it should have. */
class TooMuchNoiseError extends Error {}

/** Turns an ssh that ended before the relay joined into one line. */
async function explainExit(
  code: number,
  pipe: ChildPipe,
  options: SshRelayOptions,
): Promise<Error> {
  await pipe.stderrDrained;
  const said = pipe.stderrText.trim().split("\n").filter(Boolean);
  const first =
    said.find((line) =>
      /denied|passphrase|password|authentic|verification/i.test(line)
    ) ?? said[0] ?? "";
  if (
    code === 255 &&
    /permission denied|passphrase|password|too many authentication|no more authentication/i
      .test(pipe.stderrText)
  ) {
    return new SshAuthError(
      `ssh to ${options.target} cannot log in without a prompt (${first.trim()}); --over-ssh starts ssh again at every reconnect and needs a key or ssh-agent that works with BatchMode=yes`,
    );
  }
  if (code === 255) {
    return new Error(
      `ssh to ${options.target} failed: ${first.trim() || "exit 255"}`,
    );
  }
  if (code === 127) {
    return new Error(
      `'${options.terminalPath}' was not found on ${options.target}`,
    );
  }
  return new Error(
    `et relay on ${options.target} ended before joining (exit ${code})${
      first ? `: ${first.trim()}` : ""
    }`,
  );
}

/**
 * A byte pipe over a child process's stdout (read) and stdin (write);
 * `close()` ends the child. Keeps the tail of its stderr for messages.
 */
class ChildPipe implements BytePipe {
  #child: Deno.ChildProcess;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #pending: Uint8Array = new Uint8Array(0);
  #closed = false;
  /** The last {@link STDERR_KEEP} bytes ssh wrote on stderr, as text. */
  stderrText = "";
  /** Settles once ssh's stderr has ended. */
  readonly stderrDrained: Promise<void>;

  constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#reader = child.stdout.getReader();
    this.#writer = child.stdin.getWriter();
    this.stderrDrained = (async () => {
      const decoder = new TextDecoder();
      try {
        for await (const chunk of child.stderr) {
          const text = decoder.decode(chunk, { stream: true });
          this.stderrText = (this.stderrText + text).slice(-STDERR_KEEP);
          log.info(`ssh said: ${text.trim().slice(0, 300)}`);
        }
      } catch { /* ended */ }
    })();
  }

  /**
   * Reads lines until the relay's ready line (bytes after it stay for
   * {@link read}); returns null then, or a refusal's message. Throws at
   * end of stream, or after too much noise.
   */
  async skipToMarker(): Promise<string | null> {
    let seen = new Uint8Array(0);
    while (true) {
      const { value, done } = await this.#reader.read();
      if (done) throw new Error("ssh ended before the relay joined");
      const joined = new Uint8Array(seen.length + value.length);
      joined.set(seen);
      joined.set(value, seen.length);
      seen = joined;
      for (let newline; (newline = seen.indexOf(0x0a)) >= 0;) {
        const line = new TextDecoder().decode(seen.subarray(0, newline))
          .replace(/\r$/, "");
        seen = seen.subarray(newline + 1);
        if (line === RELAY_READY_MARKER) {
          this.#pending = seen.slice();
          return null;
        }
        const refusal = decodeRefusal(line);
        if (refusal !== null) return refusal;
        if (line !== "") log.info(`remote said: ${line.slice(0, 200)}`);
      }
      if (seen.length > MAX_NOISE_BYTES) {
        throw new TooMuchNoiseError("no relay ready line in 64 KiB of output");
      }
    }
  }

  /** Reads into `buffer`; null at end of stream. */
  async read(buffer: Uint8Array): Promise<number | null> {
    if (this.#pending.length === 0) {
      if (this.#closed) return null;
      const { value, done } = await this.#reader.read().catch(() => ({
        value: undefined,
        done: true,
      }));
      if (done || !value) return null;
      this.#pending = value;
    }
    const n = Math.min(buffer.length, this.#pending.length);
    buffer.set(this.#pending.subarray(0, n));
    this.#pending = this.#pending.subarray(n);
    return n;
  }

  /** Writes all of `data` to the child's stdin. */
  async write(data: Uint8Array): Promise<number> {
    if (this.#closed) throw new Error("the ssh pipe is closed");
    // The stream may hold the chunk after we return: give it its own copy.
    await this.#writer.write(data.slice());
    return data.length;
  }

  /** Ends ssh and both streams; safe to call more than once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#reader.cancel().catch(() => {});
    this.#writer.abort().catch(() => {});
    try {
      this.#child.kill("SIGTERM");
    } catch { /* gone */ }
    this.#child.status.catch(() => {});
  }
}
