/**
 * A small leveled logger shared by every layer. It imports nothing from the
 * rest of `et`, so any layer may use it without breaking the one-way imports.
 *
 * Logs never go to the user's terminal unless asked for: the client writes
 * them to a private file, the server roles to stderr.
 *
 * @module
 */

/** Severity of a log line; a logger prints lines at or above its level. */
export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

const RANK: Record<LogLevel, number> = {
  debug: 10,
  info: 20,
  warn: 30,
  error: 40,
  silent: 100,
};

/** Where log lines go: a function that takes one finished line. */
export type LogSink = (line: string) => void;

const encoder = new TextEncoder();

/** A sink that writes each line to stderr. */
export const stderrSink: LogSink = (line) => {
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch {
    // stderr gone (detached process): nothing sensible left to do.
  }
};

/**
 * Opens (creating with mode 0600) a log file and returns a sink appending to
 * it. The file is private because logs can name hosts and session ids.
 */
export function fileSink(path: string): LogSink {
  const file = Deno.openSync(path, {
    create: true,
    append: true,
    mode: 0o600,
  });
  // An existing file keeps its mode through open: tighten it, but only a
  // regular file. `--log-file /dev/null` as root must not turn the
  // system's /dev/null into a root-only device.
  try {
    const info = file.statSync();
    if (info.isFile && (info.mode ?? 0) & 0o077) Deno.chmodSync(path, 0o600);
  } catch {
    // not ours to chmod: keep going.
  }
  return (line) => {
    try {
      file.writeSync(encoder.encode(line + "\n"));
    } catch {
      // a full disk must not take the session down with it.
    }
  };
}

let level: LogLevel = "warn";
let sink: LogSink = stderrSink;

/** Sets where log lines go and the lowest level written. */
export function configureLog(options: { level?: LogLevel; sink?: LogSink }) {
  if (options.level) level = options.level;
  if (options.sink) sink = options.sink;
}

/** Returns the current level, so callers can skip building costly lines. */
export function logLevel(): LogLevel {
  return level;
}

function write(at: LogLevel, scope: string, message: string) {
  if (RANK[at] < RANK[level]) return;
  sink(`${new Date().toISOString()} ${at} [${scope}] ${message}`);
}

/** A logger bound to one scope, e.g. `transport` or `server`. */
export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/**
 * Returns a logger whose lines are tagged with `scope`.
 *
 * @example
 * ```ts
 * const log = logger("transport");
 * log.warn("refused frame: length 9999999 over limit");
 * ```
 */
export function logger(scope: string): Logger {
  return {
    debug: (m) => write("debug", scope, m),
    info: (m) => write("info", scope, m),
    warn: (m) => write("warn", scope, m),
    error: (m) => write("error", scope, m),
  };
}

/**
 * Calls `lines` on SIGUSR2 and logs each line it returns at warn (so it
 * shows at any level), prefixed `debug: `: a state dump of a process whose
 * session stalls (see docs/ARCHITECTURE.md). Costs nothing until the
 * signal comes. Returns the remover; a no-op where the signal does not
 * exist (Windows).
 *
 * @example
 * ```ts
 * const stop = dumpOnSignal(logger("client"), () => [connection.describe()]);
 * stop(); // when the session ends
 * ```
 */
export function dumpOnSignal(
  log: Logger,
  lines: () => Iterable<string>,
): () => void {
  const dump = () => {
    for (const line of lines()) log.warn(`debug: ${line}`);
  };
  try {
    Deno.addSignalListener("SIGUSR2", dump);
  } catch {
    return () => {}; // no such signal here
  }
  return () => Deno.removeSignalListener("SIGUSR2", dump);
}

/** Turns any thrown value into a one-line message without a stack. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}

/**
 * A rate-limited warning log keyed by reason.
 *
 * @example
 * ```ts
 * const refusals = new RefusalLog(logger("server"));
 * refusals.refused("unknown session", `${peer}: refused unknown session 0f1e2d3c`);
 * ```
 */
export class RefusalLog {
  #log: Logger;
  #intervalMs: number;
  #now: () => number;
  #reasons = new Map<string, { last: number; suppressed: number }>();

  /**
   * Logs through `log`. `intervalMs` is the shortest gap between two lines
   * of one reason; `now` is the clock (tests pass their own).
   */
  constructor(
    log: Logger,
    intervalMs = 1000,
    now: () => number = () => performance.now(),
  ) {
    this.#log = log;
    this.#intervalMs = intervalMs;
    this.#now = now;
  }

  /**
   * Records one refusal. `reason` must be one of a fixed set of strings
   * (never text from the peer: it keys a map); `line` is what gets logged.
   */
  refused(reason: string, line: string): void {
    const now = this.#now();
    const state = this.#reasons.get(reason);
    if (state && now - state.last < this.#intervalMs) {
      state.suppressed++;
      return;
    }
    const suppressed = state?.suppressed ?? 0;
    this.#reasons.set(reason, { last: now, suppressed: 0 });
    this.#log.warn(
      suppressed > 0
        ? `${line} (and ${suppressed} more "${reason}" since the last such line)`
        : line,
    );
  }
}
