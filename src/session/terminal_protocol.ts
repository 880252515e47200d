/**
 * What the client and the terminal process agree on above the transport:
 * which channel carries what, the control messages, the one line the
 * client sends over ssh's stdin, and the one line the launcher answers.
 *
 * @module
 */

// The files themselves, not transport/mod.ts: the launcher loads this and
// needs none of the connection machinery.
import {
  decodeSessionSecret,
  encodeSessionSecret,
  fromHex,
  type SessionSecret,
  toHex,
} from "../transport/session_secret.ts";
import { PROTOCOL_VERSION } from "../transport/wire.ts";
import { MAX_KEEPALIVE_MS } from "../transport/timers.ts";
import {
  decodeReverseTunnels,
  parseTunnelMessage,
  type TunnelMessage,
} from "./tunnel_protocol.ts";
import type { TunnelEndpoint } from "./tunnel_spec.ts";

/**
 * Channel of the program's main stream: keystrokes up and pty output down,
 * or, without a pty, stdin up and stdout down.
 */
export const TERMINAL_CHANNEL = 1;
/** Channel of control messages (newline-delimited JSON). */
export const CONTROL_CHANNEL = 2;
/** Channel of the program's stderr, when it runs without a pty. */
export const STDERR_CHANNEL = 3;

/** Default TCP port of `et server`. */
export const DEFAULT_SERVER_PORT = 2022;

/** A range of TCP ports, both ends included. */
export interface PortRange {
  first: number;
  last: number;
}

/**
 * Ports a session that serves itself (no-root mode) listens on, the first
 * free one: like mosh-server, a range a firewall can open once.
 */
export const DEFAULT_PORT_RANGE: Readonly<PortRange> = Object.freeze({
  first: 2022,
  last: 2122,
});

/**
 * How clients reach a new session: `"auto"` through the daemon (`et
 * server`, which hands the session each client's connection) if one takes
 * the registration, else on a port of the session's own (no-root mode);
 * `"only"` through the daemon or not at all (`--daemon-only`); `"never"`
 * always on its own port (`--no-daemon`).
 */
export type DaemonUse = "auto" | "only" | "never";

/** Word that starts the line the launcher prints once it has done its job. */
export const READY_MARKER = "ET_TERMINAL_READY";

/**
 * Word that starts the line a launcher prints instead of its ready line when
 * it refuses the client (a protocol mismatch); the rest of the line is the
 * message for the user.
 */
export const REFUSED_MARKER = "ET_TERMINAL_REFUSED";

/** Default for how long a session waits for its client to come back. */
export const DEFAULT_SESSION_TIMEOUT_MS = 7 * 24 * 3600 * 1000;
/** Default for how long the first connection may take. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
/** Default output a session keeps for an absent client before it blocks. */
export const DEFAULT_MAX_BACKLOG_BYTES = 64 * 1024 * 1024;
/** Most output a client may ask a session to keep while it is away. */
export const MAX_BACKLOG_CAP_BYTES = 1024 * 1024 * 1024;

/** A control message between client and terminal. */
export type ControlMessage =
  | { type: "resize"; cols: number; rows: number }
  | { type: "exit"; code: number }
  | OutputClosedMessage
  | DetachMessage
  | SessionShareMessage
  | TunnelMessage;

/**
 * The client is leaving on purpose. `written`, when present, says per
 * output channel (its number, as a decimal key) how many of that channel's
 * bytes, on this connection, the client's local output really took: the
 * client writes no more of them, and the session sends a later client
 * (attach) everything after that point again. Absent: the client said
 * nothing (an older client), and what it had received counts as seen.
 */
export interface DetachMessage {
  type: "detach";
  written?: Record<string, number>;
}

/**
 * Client to host, sessions without a pty only: the reader of the client's
 * stdout (`channel` 1) or stderr (3) left on purpose, a pipe's reader such
 * as `head` (EPIPE). The host closes its end of that output of the program,
 * as sshd does when ssh's reader leaves: the program's next write there
 * fails (SIGPIPE), and the session ends the way the program does.
 */
export interface OutputClosedMessage {
  type: "output-closed";
  channel: typeof TERMINAL_CHANNEL | typeof STDERR_CHANNEL;
}

/**
 * Session sharing (client to host): start another session of this user
 * from `bootstrap` (a `new` bootstrap line another local client gave this
 * one), as the launcher would; `tag` pairs it with its answer.
 * Host to client: `answer` is what the launcher would have printed (a
 * ready line, a refusal line, or `error: …`).
 */
export type SessionShareMessage =
  | { type: "session-new"; tag: number; bootstrap: string }
  | { type: "session-answer"; tag: number; answer: string };

/**
 * Longest control line, in UTF-16 units; a longer one is dropped whole
 * (and reported: {@linkcode ControlDecoderOptions.onDropped}). Room for a
 * `session-new`, which carries a whole bootstrap line (the launcher takes
 * up to 16 KiB) escaped inside JSON (at most twice as long): a session
 * that ssh would start is never too long to share. The peer is
 * authenticated; the limit only bounds memory.
 */
export const CONTROL_LINE_LIMIT = 64 * 1024;

/** Options of {@linkcode ControlDecoder}. */
export interface ControlDecoderOptions {
  /**
   * Called once for each line dropped for being over
   * {@linkcode CONTROL_LINE_LIMIT}, with its length so far (a line that
   * arrives in pieces is dropped once the limit is passed).
   * @default {undefined} (dropped silently)
   */
  onDropped?: (length: number) => void;
}

const encoder = new TextEncoder();

/** Encodes one control message as a JSON line. */
export function encodeControl(message: ControlMessage): Uint8Array {
  return encoder.encode(JSON.stringify(message) + "\n");
}

/**
 * Splits control-channel bytes into messages, keeping partial lines for the
 * next chunk and skipping lines that are not a known message.
 */
export class ControlDecoder {
  // Its own: a decoder streams, and a shared one would mix the unfinished
  // characters of two channels.
  // ignoreBOM: a BOM is no whitespace in JSON, wherever a chunk begins.
  #text = new TextDecoder("utf-8", { ignoreBOM: true });
  #pending = "";
  // Inside a line that grew past the limit: skip to its end.
  #skipping = false;
  #onDropped?: (length: number) => void;

  /** A decoder; see {@linkcode ControlDecoderOptions}. */
  constructor(options: ControlDecoderOptions = {}) {
    this.#onDropped = options.onDropped;
  }

  /** Feeds bytes; returns the complete, valid messages they finish. */
  push(chunk: Uint8Array): ControlMessage[] {
    let text = this.#text.decode(chunk, { stream: true });
    if (this.#skipping) {
      // The rest of a line already dropped: nothing of it is kept.
      const end = text.indexOf("\n");
      if (end < 0) return [];
      this.#skipping = false;
      text = text.slice(end + 1);
    }
    // No line ends here: only append (a rope, no copy, no split), so a
    // long line arriving in small pieces costs no quadratic work.
    if (!text.includes("\n")) {
      this.#pending += text;
      this.#checkPending();
      return [];
    }
    const lines = (this.#pending + text).split("\n");
    this.#pending = lines.pop() ?? "";
    const out: ControlMessage[] = [];
    for (const line of lines) {
      // Dropped whole however it arrived, split or in one piece.
      if (line.length > CONTROL_LINE_LIMIT) {
        this.#onDropped?.(line.length);
        continue;
      }
      const message = parseControl(line);
      if (message) out.push(message);
    }
    this.#checkPending();
    return out;
  }

  // An endless line is garbage: keep memory bounded.
  #checkPending() {
    if (this.#pending.length <= CONTROL_LINE_LIMIT) return;
    this.#onDropped?.(this.#pending.length);
    this.#pending = "";
    this.#skipping = true;
  }
}

function parseControl(line: string): ControlMessage | null {
  try {
    const value = JSON.parse(line);
    if (
      value?.type === "resize" && validSize(value.cols) && validSize(value.rows)
    ) {
      return { type: "resize", cols: value.cols, rows: value.rows };
    }
    if (value?.type === "exit" && Number.isInteger(value.code)) {
      return { type: "exit", code: value.code };
    }
    if (
      value?.type === "output-closed" &&
      (value.channel === TERMINAL_CHANNEL || value.channel === STDERR_CHANNEL)
    ) {
      return { type: "output-closed", channel: value.channel };
    }
    if (value?.type === "detach") {
      const written = writtenCounts(value.written);
      return written ? { type: "detach", written } : { type: "detach" };
    }
    if (
      (value?.type === "session-new" || value?.type === "session-answer") &&
      Number.isSafeInteger(value.tag) && value.tag >= 0
    ) {
      if (value.type === "session-new" && typeof value.bootstrap === "string") {
        return { type: value.type, tag: value.tag, bootstrap: value.bootstrap };
      }
      if (value.type === "session-answer" && typeof value.answer === "string") {
        return { type: value.type, tag: value.tag, answer: value.answer };
      }
    }
    const tunnel = parseTunnelMessage(value);
    if (tunnel) return tunnel;
  } catch {
    // not JSON: ignored like any unknown message.
  }
  return null;
}

/**
 * A detach's `written` counts when well formed (a few channel numbers,
 * each to a non-negative safe integer); else undefined: the detach stands,
 * the counts are ignored.
 */
function writtenCounts(value: unknown): Record<string, number> | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return undefined;
  }
  const entries = Object.entries(value);
  if (entries.length > 8) return undefined;
  for (const [key, count] of entries) {
    if (!/^(0|[1-9][0-9]{0,9})$/.test(key)) return undefined;
    if (!Number.isSafeInteger(count) || (count as number) < 0) return undefined;
  }
  return Object.fromEntries(entries) as Record<string, number>;
}

/** True for a terminal dimension a session accepts (1 to 9999). */
export function validSize(n: unknown): n is number {
  return Number.isInteger(n) && (n as number) > 0 && (n as number) < 10_000;
}

/** How the program of a new session is run. */
export interface ProgramSpec {
  /** Run through the user's shell with `-c`; absent: a login shell. */
  command?: string;
  /** Run on a pty (else plain pipes: stdout and stderr stay apart). */
  pty: boolean;
  /** The client's TERM. */
  term: string;
  /** Initial size of the pty. */
  cols: number;
  rows: number;
  /** LANG, LC_* and COLORTERM of the client. */
  env: Record<string, string>;
  /**
   * The `SetEnv` variables of the user's ssh config (and `--ssh-option
   * SetEnv=...`), exported to the program; see {@link setEnvProblem}.
   * @default {{}}
   */
  setEnv?: Record<string, string>;
}

/** The ways a session can catch up a client that comes back (`--resume`). */
export const RESUME_MODES = ["bytes", "screen"] as const;

/**
 * How a session catches up a returning client: `"bytes"` sends every byte
 * it missed (the program blocks once the max backlog is full); `"screen"`
 * never blocks the program while the client is away, writes the whole
 * output to a private log file, and past a threshold sends a snapshot of
 * the screen (and some scrollback) instead of the missed bytes.
 */
export type ResumeMode = (typeof RESUME_MODES)[number];

/**
 * Parses `--resume`'s value; throws one line naming the choices.
 *
 * @example
 * ```ts
 * parseResumeMode("screen"); // "screen"
 * ```
 */
export function parseResumeMode(text: string): ResumeMode {
  const mode = RESUME_MODES.find((m) => m === text);
  if (mode === undefined) {
    throw new Error(`invalid --resume '${text}' (expected bytes or screen)`);
  }
  return mode;
}

function decodeResumeMode(value: unknown): ResumeMode {
  if (value === undefined) return "bytes";
  if (value !== "bytes" && value !== "screen") throw malformed("resume");
  return value;
}

/** Lifetimes a client asks of its session (the host may cap them). */
export interface SessionLimits {
  /** The session ends if no client connects within this (plus a margin). */
  connectTimeoutMs: number;
  /** The session ends after its client has been away this long; 0: never. */
  sessionTimeoutMs: number;
  /** Output kept for an absent client before the program blocks. */
  maxBacklogBytes: number;
  /**
   * The client's keepalive interval (`et -k`): the session's end of the
   * connection uses the same liveness policy. Absent: the default.
   */
  keepaliveMs?: number;
}

/** What the client asks of `et terminal` over ssh's stdin. */
export type BootstrapRequest =
  | {
    op: "new";
    secret: SessionSecret;
    program: ProgramSpec;
    limits: SessionLimits;
    /** End this user's other sessions first (`-x`). */
    killOthers: boolean;
    /**
     * Whether to go through the daemon.
     * @default {"only"} (a line without it comes from a client that can
     * dial only the daemon)
     */
    daemon?: DaemonUse;
    /**
     * Where a session that serves itself looks for a free port.
     * @default {DEFAULT_PORT_RANGE}
     */
    portRange?: PortRange;
    /**
     * Where the session listens for reverse tunnels (`-r`, `-f`), set up
     * before the program starts (an `env` endpoint's path goes into its
     * environment). Their targets stay with the client, which the session
     * names them to by index.
     * @default {[]}
     */
    reverseTunnels?: TunnelEndpoint[];
    /**
     * Tunnels only (`-N`): no program, no pty; the session lives until the
     * client ends it or stays away too long.
     * @default {false}
     */
    noTerminal?: boolean;
    /**
     * How the session catches a returning client up (`--resume`): every
     * byte, or past a threshold a snapshot of the screen (see
     * {@link ResumeMode}).
     * @default {"bytes"}
     */
    resume?: ResumeMode;
    /**
     * The client ends its ssh itself once it has the ready line: the
     * launcher may then stay on as the user's host when none runs (a
     * cold start without a second process), its stdio let go.
     * @default {false} (the launcher must exit: ssh waits for it)
     */
    endsSsh?: boolean;
  }
  | {
    op: "attach";
    /** Session id or a prefix of its hex; empty: the most recent detached. */
    target: string;
    /** The fresh passkey for the new client (the old one is retired). */
    passkey: Uint8Array;
    cols: number;
    rows: number;
    /** The new client's keepalive interval (`et -k`); absent: the default. */
    keepaliveMs?: number;
  }
  | { op: "list" }
  | JumpRequest;

/**
 * What the client asks of `et terminal` on a jumphost (`--jumphost`): start
 * a relay that takes the connections of session `id` (from that host's
 * daemon, or on a port of its own) and copies each one, bytes unchanged,
 * to `host`:`port` (the next hop or the destination, as this host reaches
 * it). No secret: the relay never holds the session's key.
 */
export interface JumpRequest {
  op: "jump";
  /** The session id, 32 hex digits (public: every HELLO carries it). */
  id: string;
  /** Where to dial: a host name or address this host can reach. */
  host: string;
  port: number;
  /** Whether to go through this host's daemon, as for a new session. */
  daemon?: DaemonUse;
  /** Where a relay that serves itself looks for a free port. */
  portRange?: PortRange;
  /**
   * How long the relay waits for its first connection (`connectTimeoutMs`),
   * and for a client that is away (`sessionTimeoutMs`; 0: forever).
   */
  limits: Pick<SessionLimits, "connectTimeoutMs" | "sessionTimeoutMs">;
}

/** Most `SetEnv` variables a session takes. */
export const MAX_SET_ENV_COUNT = 64;
/** Longest `SetEnv` name. */
export const MAX_SET_ENV_NAME = 128;
/** Longest `SetEnv` value (in UTF-16 units, as JSON carries it). */
export const MAX_SET_ENV_VALUE = 4096;

/**
 * Why a `SetEnv` variable cannot be exported, or null if it can: its name
 * must be `[A-Za-z_][A-Za-z0-9_]*` (what a shell can name), both bounded,
 * no NUL (which would cut the environment entry).
 *
 * @example
 * ```ts
 * setEnvProblem("FOO", "bar"); // null
 * setEnvProblem("1X", "bar");  // "not a variable name"
 * ```
 */
export function setEnvProblem(name: string, value: string): string | null {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return "not a variable name";
  if (name.length > MAX_SET_ENV_NAME) {
    return `name longer than ${MAX_SET_ENV_NAME}`;
  }
  if (value.length > MAX_SET_ENV_VALUE) {
    return `value longer than ${MAX_SET_ENV_VALUE}`;
  }
  if (value.includes("\0")) return "NUL in the value";
  return null;
}

/** Variables of the client's environment a new session inherits. */
export function isForwardedEnvName(name: string): boolean {
  return name === "LANG" || name === "COLORTERM" ||
    /^LC_[A-Z_]{1,20}$/.test(name);
}

/** Encodes the bootstrap line (secrets inside: only for a private pipe). */
export function encodeBootstrap(request: BootstrapRequest): string {
  switch (request.op) {
    case "new":
      return JSON.stringify({
        op: "new",
        secret: encodeSessionSecret(request.secret),
        program: request.program,
        limits: request.limits,
        killOthers: request.killOthers,
        ...(request.daemon === undefined ? {} : { daemon: request.daemon }),
        ...(request.portRange === undefined ? {} : {
          portRange: [request.portRange.first, request.portRange.last],
        }),
        ...(request.reverseTunnels?.length
          ? { reverseTunnels: request.reverseTunnels }
          : {}),
        ...(request.noTerminal ? { noTerminal: true } : {}),
        ...(request.resume === "screen" ? { resume: "screen" } : {}),
        ...(request.endsSsh ? { endsSsh: true } : {}),
        protocol: PROTOCOL_VERSION,
      }) + "\n";
    case "attach":
      return JSON.stringify({
        op: "attach",
        target: request.target,
        passkey: toHex(request.passkey),
        cols: request.cols,
        rows: request.rows,
        ...(request.keepaliveMs === undefined
          ? {}
          : { keepaliveMs: request.keepaliveMs }),
        protocol: PROTOCOL_VERSION,
      }) + "\n";
    case "list":
      return JSON.stringify({ op: "list", protocol: PROTOCOL_VERSION }) + "\n";
    case "jump":
      return JSON.stringify({
        op: "jump",
        id: request.id,
        host: request.host,
        port: request.port,
        ...(request.daemon === undefined ? {} : { daemon: request.daemon }),
        ...(request.portRange === undefined ? {} : {
          portRange: [request.portRange.first, request.portRange.last],
        }),
        limits: request.limits,
        protocol: PROTOCOL_VERSION,
      }) + "\n";
  }
}

const malformed = (what: string) =>
  new Error(`malformed bootstrap line: ${what}`);

/** The connect and session timeouts of a bootstrap's limits, checked. */
function decodeTimeouts(
  limits: Record<string, unknown>,
): { connectTimeoutMs: number; sessionTimeoutMs: number } {
  return {
    connectTimeoutMs: wholeNumber(
      limits.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
      "connect timeout",
      24 * 3600 * 1000,
    ),
    sessionTimeoutMs: wholeNumber(
      limits.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS,
      "session timeout",
      Number.MAX_SAFE_INTEGER,
    ),
  };
}
function wholeNumber(value: unknown, what: string, max: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw malformed(what);
  }
  return Math.min(value as number, max);
}

function decodeProgram(value: Record<string, unknown>): ProgramSpec {
  if (
    typeof value?.term !== "string" ||
    !/^[A-Za-z0-9._+-]{1,64}$/.test(value.term)
  ) {
    throw malformed("TERM");
  }
  if (value.command !== undefined && typeof value.command !== "string") {
    throw malformed("command");
  }
  if ((value.command as string | undefined)?.includes("\0")) {
    throw malformed("command");
  }
  if (!validSize(value.cols) || !validSize(value.rows)) throw malformed("size");
  const env: Record<string, string> = {};
  const given = value.env;
  if (given !== undefined && (typeof given !== "object" || given === null)) {
    throw malformed("env");
  }
  for (const [name, text] of Object.entries(given ?? {})) {
    if (
      !isForwardedEnvName(name) || typeof text !== "string" ||
      text.length > 256 || !/^[\x20-\x7e]*$/.test(text)
    ) {
      throw malformed(
        `env ${name.slice(0, 32).replace(/[^A-Za-z0-9_]/g, "?")}`,
      );
    }
    env[name] = text;
  }
  const setEnv: Record<string, string> = {};
  const wanted = value.setEnv;
  if (wanted !== undefined) {
    if (
      typeof wanted !== "object" || wanted === null || Array.isArray(wanted)
    ) {
      throw malformed("setEnv");
    }
    const entries = Object.entries(wanted);
    if (entries.length > MAX_SET_ENV_COUNT) throw malformed("setEnv count");
    for (const [name, text] of entries) {
      if (typeof text !== "string" || setEnvProblem(name, text) !== null) {
        throw malformed(
          `setEnv ${name.slice(0, 32).replace(/[^A-Za-z0-9_]/g, "?")}`,
        );
      }
      setEnv[name] = text;
    }
  }
  return {
    command: value.command as string | undefined,
    pty: value.pty !== false,
    term: value.term,
    cols: value.cols,
    rows: value.rows,
    env,
    ...(wanted === undefined ? {} : { setEnv }),
  };
}

/** True for a TCP port number a listener can be given (1 to 65535). */
export function validPort(n: unknown): n is number {
  return Number.isInteger(n) && (n as number) > 0 && (n as number) < 65536;
}

function decodeDaemonUse(value: unknown): DaemonUse {
  if (value === undefined) return "only";
  if (value === "auto" || value === "only" || value === "never") return value;
  throw malformed("daemon");
}

function decodePortRange(value: unknown): PortRange {
  if (value === undefined) return { ...DEFAULT_PORT_RANGE };
  if (
    !Array.isArray(value) || value.length !== 2 || !validPort(value[0]) ||
    !validPort(value[1]) || value[0] > value[1]
  ) throw malformed("port range");
  return { first: value[0], last: value[1] };
}

function decodeTunnels(value: unknown): TunnelEndpoint[] {
  try {
    return decodeReverseTunnels(value);
  } catch (error) {
    throw malformed((error as Error).message);
  }
}

/**
 * The protocol version a bootstrap line's client speaks: its `protocol`
 * field, or 1 when absent (clients from before the field spoke 1). Read
 * before anything else in the line, whose shape another version may change.
 * Throws a one-line Error when the field is there but not a version.
 */
export function bootstrapProtocol(line: string): number {
  let value;
  try {
    value = JSON.parse(line);
  } catch {
    throw malformed("not JSON");
  }
  const version = value?.protocol ?? 1;
  if (!Number.isSafeInteger(version) || version < 1) {
    throw malformed("protocol");
  }
  return version;
}

/**
 * The one line that refuses a client speaking protocol `client` on a host
 * speaking `host`, naming the side to upgrade; null when they agree.
 */
export function protocolMismatch(client: number, host: number): string | null {
  if (client === host) return null;
  const upgrade = client < host ? "the client" : "et on this host";
  return `this host's et speaks protocol ${host}, your client speaks ${client}: upgrade ${upgrade} (et --version)`;
}

/** The launcher's refusal line: the marker, a space, the message. */
export function encodeRefusal(message: string): string {
  return `${REFUSED_MARKER} ${message.replace(/[\r\n]+/g, " ")}`;
}

/** The message of a launcher's refusal line; null for any other line. */
export function decodeRefusal(line: string): string | null {
  const text = line.trim();
  if (!text.startsWith(REFUSED_MARKER + " ")) return null;
  // Printable text only: it ends up on the user's terminal.
  return text.slice(REFUSED_MARKER.length + 1).replace(/[^\x20-\x7e]/g, "?")
    .slice(0, 300);
}

/** Parses the bootstrap line; throws a one-line Error when malformed. */
export function decodeBootstrap(line: string): BootstrapRequest {
  let value;
  try {
    value = JSON.parse(line);
  } catch {
    throw malformed("not JSON");
  }
  switch (value?.op) {
    case "new": {
      let secret: SessionSecret;
      try {
        secret = decodeSessionSecret(value.secret);
      } catch {
        throw malformed("secret");
      }
      const limits = value.limits ?? {};
      return {
        op: "new",
        secret,
        program: decodeProgram(value.program),
        limits: {
          ...decodeTimeouts(limits),
          maxBacklogBytes: wholeNumber(
            limits.maxBacklogBytes ?? DEFAULT_MAX_BACKLOG_BYTES,
            "max backlog",
            MAX_BACKLOG_CAP_BYTES,
          ),
          ...(limits.keepaliveMs === undefined ? {} : {
            keepaliveMs: wholeNumber(
              limits.keepaliveMs,
              "keepalive",
              MAX_KEEPALIVE_MS,
            ),
          }),
        },
        killOthers: value.killOthers === true,
        daemon: decodeDaemonUse(value.daemon),
        portRange: decodePortRange(value.portRange),
        reverseTunnels: decodeTunnels(value.reverseTunnels),
        noTerminal: value.noTerminal === true,
        resume: decodeResumeMode(value.resume),
        endsSsh: value.endsSsh === true,
      };
    }
    case "attach": {
      if (
        typeof value.target !== "string" ||
        !/^[0-9a-f]{0,32}$/.test(value.target)
      ) throw malformed("session id");
      if (
        typeof value.passkey !== "string" ||
        !/^[0-9a-f]{64}$/.test(value.passkey)
      ) throw malformed("passkey");
      if (!validSize(value.cols) || !validSize(value.rows)) {
        throw malformed("size");
      }
      return {
        op: "attach",
        target: value.target,
        passkey: fromHex(value.passkey, 32),
        cols: value.cols,
        rows: value.rows,
        ...(value.keepaliveMs === undefined ? {} : {
          keepaliveMs: wholeNumber(
            value.keepaliveMs,
            "keepalive",
            MAX_KEEPALIVE_MS,
          ),
        }),
      };
    }
    case "list":
      return { op: "list" };
    case "jump":
      return decodeJump(value);
    default:
      throw malformed("unknown op");
  }
}

/**
 * True for a host name or address a relay may be told to dial: letters,
 * digits and `.-_:%` (IPv6 literals and zone ids included), at most 255,
 * not starting with `-`.
 */
export function validHostName(value: unknown): value is string {
  return typeof value === "string" &&
    /^[A-Za-z0-9._:%][A-Za-z0-9._:%-]{0,254}$/.test(value);
}

function decodeJump(value: Record<string, unknown>): JumpRequest {
  if (typeof value.id !== "string" || !/^[0-9a-f]{32}$/.test(value.id)) {
    throw malformed("session id");
  }
  if (!validHostName(value.host)) throw malformed("host");
  if (!validPort(value.port)) throw malformed("port");
  const limits = (value.limits ?? {}) as Record<string, unknown>;
  return {
    op: "jump",
    id: value.id,
    host: value.host,
    port: value.port,
    daemon: decodeDaemonUse(value.daemon),
    portRange: decodePortRange(value.portRange),
    limits: decodeTimeouts(limits),
  };
}

/** One session as `et --list` shows it. */
export interface SessionInfo {
  /** Session id, 32 hex digits. */
  id: string;
  /** "attached", "detached", "starting" or "draining". */
  state: string;
  /** When the session started (ms since the epoch). */
  startedAt: number;
  /** When its client was last heard from (ms since the epoch). */
  lastSeenAt: number;
  /** The command, or "" for a login shell. */
  command: string;
  /**
   * The TCP port the session listens on itself (no-root mode); absent when
   * the daemon hands it its clients.
   */
  port?: number;
}

/** What the launcher reports on its ready line. */
export type ReadyReport =
  | {
    id: string;
    detached: number;
    /**
     * The session's own TCP port (no-root mode), which the client dials
     * instead of the daemon's; absent: dial the daemon.
     */
    port?: number;
  }
  | { sessions: SessionInfo[] };

/** The launcher's ready line: the marker, a space, JSON. */
export function encodeReady(report: ReadyReport): string {
  return `${READY_MARKER} ${JSON.stringify(report)}`;
}

/**
 * Recognizes the launcher's ready line among whatever else a login script
 * printed; null for any other line. Throws when the marker is there but
 * what follows is not a report.
 */
export function decodeReady(line: string): ReadyReport | null {
  const text = line.trim();
  if (!text.startsWith(READY_MARKER + " ")) return null;
  let value;
  try {
    value = JSON.parse(text.slice(READY_MARKER.length + 1));
  } catch {
    throw new Error("the remote et terminal answered garbage");
  }
  if (typeof value?.id === "string" && /^[0-9a-f]{32}$/.test(value.id)) {
    const detached = Number.isSafeInteger(value.detached) &&
        value.detached >= 0
      ? value.detached
      : 0;
    if (value.port === undefined) return { id: value.id, detached };
    if (!validPort(value.port)) {
      throw new Error("the remote et terminal answered garbage");
    }
    return { id: value.id, detached, port: value.port };
  }
  if (Array.isArray(value?.sessions)) {
    return { sessions: value.sessions.filter(isSessionInfo) };
  }
  throw new Error("the remote et terminal answered garbage");
}

function isSessionInfo(value: SessionInfo): boolean {
  return typeof value?.id === "string" && /^[0-9a-f]{32}$/.test(value.id) &&
    typeof value.state === "string" && Number.isFinite(value.startedAt) &&
    Number.isFinite(value.lastSeenAt) && typeof value.command === "string";
}
