/**
 * SessionHost: one session on the remote host — its program, the output
 * its absent client has not taken yet, its lifecycle, and the eternal
 * connection to its current client. A new client can take the session
 * over with a fresh passkey (attach): the old connection is retired, the
 * output it sent but never had acknowledged is recovered and sent again
 * under the new keys, so nothing is lost and no nonce is ever reused.
 *
 * It knows nothing of how clients reach it (daemon relay, own listener):
 * the caller hands accepted pipes to `connectionFor`'s handshake.
 *
 * @module
 */

import { sleep } from "../deadline.ts";
import { errorMessage, logger } from "../log.ts";
import {
  CONTROL_CHANNEL,
  CONTROL_LINE_LIMIT,
  ControlDecoder,
  encodeControl,
  type LifecycleEvent,
  type ProgramSpec,
  type ResumeMode,
  type SessionInfo,
  SessionLifecycle,
  type SessionLimits,
  type SessionState,
  STDERR_CHANNEL,
  TERMINAL_CHANNEL,
  type TunnelEndpoint,
  type TunnelMessage,
  validSize,
} from "../session/mod.ts";
import {
  type Channel,
  EternalConnection,
  type EternalConnectionOptions,
  livenessForKeepalive,
  MAX_CHUNK_BYTES,
  type SessionSecret,
  toHex,
} from "../transport/mod.ts";
import { OutputBacklog } from "./backlog.ts";
import { SentTail } from "./sent_tail.ts";
import { type Program, startProgram } from "./program.ts";
import { idleProgram } from "./idle_program.ts";
import { SessionTunnels } from "./tunnels.ts";
import { ScreenResume } from "./screen_resume.ts";

const log = logger("session");

/**
 * Output buffered ahead of a connected client. Small, so that Ctrl-C under
 * a flood quiets the screen at once: the program blocks instead of racing
 * ahead. While the client is away the backlog may grow to the session's
 * max backlog.
 */
const CONNECTED_LEAD_BYTES = 256 * 1024;

/**
 * After the program exited, output that has not come for this long ends
 * the pty's output: a background job that still holds the terminal must
 * not keep the session open.
 */
const DRAIN_QUIET_MS = 300;

/** How a session ended. */
export interface SessionOutcome {
  /** "ended" or "expired". */
  state: SessionState;
  /** The program's exit code, if it exited. */
  exitCode: number | null;
  /** Why, for the log. */
  reason: string;
}

/** What a session host is started with. */
export interface SessionHostOptions {
  secret: SessionSecret;
  program: ProgramSpec;
  limits: SessionLimits;
  /** Transport tuning (tests shorten timers). */
  connection?: EternalConnectionOptions;
  /**
   * Where to listen for reverse tunnels, before the program starts.
   * @default {[]}
   */
  reverseTunnels?: TunnelEndpoint[];
  /**
   * Tunnels only (`-N`): no program at all.
   * @default {false}
   */
  noTerminal?: boolean;
  /**
   * The login environment the program starts in (`SHELL`, `HOME`, `PATH`,
   * `LANG`…: the launcher's, which ssh set up for this login).
   * @default this process's environment
   */
  login?: Record<string, string>;
  /**
   * How a returning client is caught up (`--resume`); `"screen"` applies
   * to a pty session only, and needs `runtimeDir` for its log file.
   * @default {"bytes"}
   */
  resume?: ResumeMode;
  /** The user's private runtime directory (`--resume screen`'s log). */
  runtimeDir?: string;
  /**
   * Session sharing: starts another session of this user from a `new`
   * bootstrap line its client passed on (`session-new` on the control
   * channel), resolving with the launcher's answer line. Without it such
   * requests are answered with an error.
   */
  newSession?: (bootstrap: string) => Promise<string>;
}

/** A fault a test injects into one session (`injectFault`). */
export type InjectedFault = "pump" | "stray";

/** One live session. */
export class SessionHost {
  /** The session id, hex. */
  readonly idHex: string;
  readonly #id: Uint8Array;
  readonly #program: Program;
  readonly #spec: ProgramSpec;
  readonly #limits: SessionLimits;
  readonly #connectionOptions?: EternalConnectionOptions;
  readonly #life: SessionLifecycle;
  readonly #startedAt = Date.now();
  #lastSeenWall = Date.now();
  readonly #backlogs = new Map<number, OutputBacklog>();
  #connection: EternalConnection;
  readonly #tunnels: SessionTunnels;
  readonly #noTerminal: boolean;
  readonly #newSession?: (bootstrap: string) => Promise<string>;
  // Connections retired by attach, so their clients can be told to stop.
  #retired: EternalConnection[] = [];
  #wiring: AbortController | null = null;
  #pumps: Promise<unknown>[] = [];
  // What the current connection sent on each output channel, and what its
  // client said, leaving, its local side really took (detach `written`).
  #sent = new Map<number, SentTail>();
  #shown: Map<number, number> | null = null;
  #exitCode: number | null = null;
  #fault: InjectedFault | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  // --resume screen: the emulator, the log and the decision (else null).
  readonly #screen: ScreenResume | null;
  #resolveOutcome!: (outcome: SessionOutcome) => void;
  /** Resolves once, when the session has ended or expired. */
  readonly outcome: Promise<SessionOutcome>;

  private constructor(
    options: SessionHostOptions,
    program: Program,
    connection: EternalConnection,
    tunnels: SessionTunnels,
    screen: ScreenResume | null,
  ) {
    this.#id = options.secret.id;
    this.idHex = toHex(this.#id);
    this.#program = program;
    this.#spec = options.program;
    this.#limits = options.limits;
    this.#connectionOptions = options.connection;
    this.#life = new SessionLifecycle(options.limits, performance.now());
    this.outcome = new Promise((resolve) => this.#resolveOutcome = resolve);
    this.#screen = screen;
    const away = () => !this.#life.clientPresent;
    const capacity = () =>
      this.#life.clientPresent && this.#life.state === "connected"
        ? CONNECTED_LEAD_BYTES
        : screen !== null && away()
        ? Infinity // never blocked while away: the excess is in the log
        : this.#limits.maxBacklogBytes;
    const output = screen?.tap(program.output, away) ?? program.output;
    const terminalBacklog = new OutputBacklog(output, capacity);
    screen?.bind(terminalBacklog);
    this.#backlogs.set(TERMINAL_CHANNEL, terminalBacklog);
    if (program.errors) {
      this.#backlogs.set(
        STDERR_CHANNEL,
        new OutputBacklog(program.errors, capacity),
      );
    }
    this.#connection = connection;
    this.#tunnels = tunnels;
    this.#noTerminal = options.noTerminal ?? false;
    this.#newSession = options.newSession;
    this.#wire(connection);
    this.#schedule();
    program.exited.then((exit) => this.#programExited(exit.code));
  }

  /** Starts the program and the session's first connection state. */
  static async start(options: SessionHostOptions): Promise<SessionHost> {
    // Loads while the program starts (the emulator's first load takes a
    // moment); null without --resume screen.
    const screenStarting = ScreenResume.startOrNull(
      options.resume === "screen" && !options.noTerminal &&
        options.program.pty && options.runtimeDir !== undefined
        ? {
          dir: options.runtimeDir,
          idHex: toHex(options.secret.id),
          cols: options.program.cols,
          rows: options.program.rows,
        }
        : null,
    );
    let program: Program;
    let tunnels: SessionTunnels | undefined;
    try {
      // Listeners first: the program's environment names their sockets.
      tunnels = await SessionTunnels.open(
        toHex(options.secret.id),
        options.reverseTunnels ?? [],
      );
      // The program before the keys: a login shell's start-up is the
      // longest wait before the first prompt; the keys are needed only
      // once the client connects, later.
      program = options.noTerminal ? idleProgram() : await startProgram(
        options.program,
        options.login,
        tunnels.env,
      );
    } catch (error) {
      (await screenStarting)?.close();
      await tunnels?.close();
      throw error;
    }
    let connection: EternalConnection;
    try {
      connection = await EternalConnection.create(
        options.secret,
        "server",
        options.connection,
      );
    } catch (error) {
      program.hangup(); // it never had a client: gone with its terminal
      await program.close();
      await tunnels.close();
      (await screenStarting)?.close();
      throw error;
    }
    const screen = await screenStarting;
    return new SessionHost(options, program, connection, tunnels, screen);
  }

  /** The program's process id. */
  get pid(): number {
    return this.#program.pid;
  }

  /** The lifecycle state. */
  get state(): SessionState {
    return this.#life.state;
  }

  /**
   * One line for a debug dump (`SIGUSR2` to the host): the transport's
   * state and each output backlog's.
   */
  describe(): string {
    const backlogs = [...this.#backlogs].map(([id, backlog]) =>
      `out${id} ${backlog.describe()}`
    );
    return `${this.#connection.describe()}; ${backlogs.join("; ")}`;
  }

  /** The connection a handshake for session `id` must use, if any. */
  connectionFor(id: Uint8Array): EternalConnection | undefined {
    if (this.#life.isFinal || toHex(id) !== this.idHex) return undefined;
    return this.#connection;
  }

  /** Connection states this session retired (attach), newest first. */
  retiredFor(id: Uint8Array): EternalConnection[] {
    return toHex(id) === this.idHex ? this.#retired : [];
  }

  /** The session as `et --list` shows it. */
  info(): SessionInfo {
    const state = this.#life.state;
    const present = this.#life.clientPresent;
    return {
      id: this.idHex,
      state: state === "starting"
        ? "starting"
        : state === "draining"
        ? "draining"
        : present
        ? "attached"
        : "detached",
      startedAt: this.#startedAt,
      lastSeenAt: present ? Date.now() : this.#lastSeenWall,
      command: this.#noTerminal
        ? "(tunnels only, -N)"
        : this.#spec.command ?? "",
    };
  }

  /**
   * Takes the session over for a new client whose passkey is `passkey`:
   * the old connection is retired (its client, if still there, is told),
   * and what it sent unacknowledged goes out again under the new keys.
   */
  async attach(
    passkey: Uint8Array,
    cols: number,
    rows: number,
    keepaliveMs?: number,
  ) {
    if (this.#life.isFinal) throw new Error("the session has ended");
    // Checked before anything is retired: a refusal must leave the session
    // as it was.
    if (!validSize(cols) || !validSize(rows)) throw new Error("invalid size");
    const old = this.#connection;
    this.#wiring?.abort();
    if (old.connected) {
      // Best effort, authenticated: the old client learns it was replaced
      // instead of retrying forever. Bounded: a hung client's full window
      // must not hold the new one up.
      await Promise.race([
        old.close("taken over by another et client", 300),
        sleep(500),
      ]);
    }
    old.fail(new Error("taken over by another et client"));
    // Only the keys are needed later; a few at most are kept.
    this.#retired = [old, ...this.#retired].slice(0, 4);
    await Promise.allSettled(this.#pumps);
    const recovered = this.#unseenOutput(await old.unacknowledged());
    for (const [channel, chunks] of recovered) {
      this.#backlogs.get(channel)?.unshift(chunks);
    }
    // The new client's -k: this end follows its liveness policy.
    const fresh = await EternalConnection.create(
      { id: this.#id, passkey },
      "server",
      keepaliveMs === undefined
        ? this.#connectionOptions
        : { ...this.#connectionOptions, ...livenessForKeepalive(keepaliveMs) },
    );
    this.#connection = fresh;
    this.#apply("disconnected");
    this.#resize(cols, rows);
    this.#wire(fresh);
    log.info(
      `session ${this.idHex.slice(0, 8)}: taken over by a new client; ${
        [...recovered.values()].flat().reduce((n, c) => n + c.length, 0)
      } bytes resent (unacknowledged, or not shown by the last client)`,
    );
  }

  /**
   * What the retired connection's client did not show, per channel: the
   * transport's unacknowledged chunks, or, where that client said how
   * much its local side took (detach `written`), everything sent after
   * that point, which also holds what it received but never showed.
   */
  #unseenOutput(
    unacknowledged: Map<number, Uint8Array[]>,
  ): Map<number, Uint8Array[]> {
    const shown = this.#shown;
    this.#shown = null;
    if (shown === null) return unacknowledged;
    const out = new Map(unacknowledged);
    for (const [channel, count] of shown) {
      const tail = this.#sent.get(channel);
      const rest = tail?.since(count) ?? null;
      const held = (unacknowledged.get(channel) ?? [])
        .reduce((n, chunk) => n + chunk.length, 0);
      const restBytes = rest?.reduce((n, chunk) => n + chunk.length, 0) ?? 0;
      // What the transport still holds is the newest part of what was
      // sent: a count that leaves less than that is not to be believed.
      if (rest === null || restBytes < held) {
        log.warn(
          `session ${this.idHex.slice(0, 8)}: channel ${channel}: the last ` +
            `client showed ${count} of ${tail?.total ?? 0} bytes, beyond ` +
            `what is kept; resending the unacknowledged ${held} only`,
        );
        continue;
      }
      out.set(channel, rest);
    }
    return out;
  }

  /** Ends the session now (an end request from the owner: `-x`). */
  async end(reason = "ended by another et client") {
    if (this.#life.isFinal) return;
    this.#apply("end-requested");
    if (this.#connection.connected) {
      await this.#connection.close(reason, 500);
    }
    await this.#terminate(reason);
  }

  /** Wires a connection: events, input, control, output pumps. */
  #wire(connection: EternalConnection) {
    const wiring = new AbortController();
    this.#wiring = wiring;
    const { signal } = wiring;
    connection.onEvent((event) => {
      if (signal.aborted) return;
      this.#apply(event.type === "connected" ? "connected" : "disconnected");
    });
    connection.closed.then((end) => {
      if (signal.aborted || this.#life.isFinal) return;
      if (end.byPeer) {
        // Only the authenticated peer can say goodbye on this connection.
        this.#apply("end-requested");
        this.#terminate(`client ended the session: ${end.reason}`);
      }
    });
    this.#tunnels.use(connection);
    this.#pumpInput(connection.channel(TERMINAL_CHANNEL), signal);
    this.#readControl(connection, signal);
    // Room for all a client can hold unshown: its channel window, and a
    // chunk it read but did not write, with one more to spare.
    const tailBytes = connection.options.channelWindowBytes +
      2 * MAX_CHUNK_BYTES;
    this.#sent = new Map();
    this.#shown = null;
    this.#pumps = [...this.#backlogs].map(([id, backlog]) => {
      const sent = new SentTail(tailBytes);
      this.#sent.set(id, sent);
      return this.#pumpOutput(backlog, connection.channel(id), signal, sent);
    });
    Promise.all(this.#pumps).then(async (results) => {
      if (signal.aborted || !results.every((r) => r === "ended")) return;
      await this.#finishOn(connection, signal);
    }).catch((error) => this.#failed(error));
  }

  /**
   * Test only (a host honours it under `ET_TEST_FAULTS=1`): the next chunk
   * of output makes this session's code throw, as a bug would. `"pump"`
   * throws out of the output pump (the session ends, its client is told);
   * `"stray"` throws from a timer callback nobody awaits (only the
   * process-wide guard of the host sees it).
   */
  injectFault(kind: InjectedFault): void {
    this.#fault = kind;
  }

  /**
   * An exception escaped this session's own code: end this session (its
   * client is told why), nothing else. Other sessions of the process are
   * not touched.
   */
  #failed(error: unknown) {
    log.error(
      `session ${this.idHex.slice(0, 8)}: internal error: ${
        errorMessage(error)
      }`,
    );
    this.end(`internal error: ${errorMessage(error)}`).catch(() => {});
  }

  /** Throws the fault a test injected, once. */
  #throwInjectedFault() {
    const kind = this.#fault;
    this.#fault = null;
    const error = new Error(`injected fault (${kind})`);
    if (kind === "pump") throw error;
    setTimeout(() => {
      throw error;
    }, 0);
  }

  #resize(cols: number, rows: number) {
    this.#program.resize(cols, rows);
    this.#screen?.resize(cols, rows);
  }

  async #pumpInput(channel: Channel, signal: AbortSignal) {
    try {
      for (let data; (data = await channel.read()) !== null;) {
        if (signal.aborted) return;
        await this.#program.write(data);
      }
      if (!signal.aborted) await this.#program.closeInput();
    } catch (error) {
      if (!signal.aborted) log.info(`input ended: ${errorMessage(error)}`);
    }
  }

  async #readControl(connection: EternalConnection, signal: AbortSignal) {
    const control = connection.channel(CONTROL_CHANNEL);
    const decoder = new ControlDecoder({
      onDropped: (length) =>
        log.warn(
          `session ${this.idHex.slice(0, 8)}: control line of ${length}+ ` +
            `chars refused (over ${CONTROL_LINE_LIMIT})`,
        ),
    });
    try {
      for (let data; (data = await control.read()) !== null;) {
        if (signal.aborted) return;
        for (const message of decoder.push(data)) {
          if (message.type === "resize") {
            this.#resize(message.cols, message.rows);
          } else if (message.type === "detach") {
            log.info(`session ${this.idHex.slice(0, 8)}: client detached`);
            // Kept for the next attach: the client writes no more.
            if (message.written) {
              this.#shown = new Map(
                Object.entries(message.written).map(([k, v]) => [Number(k), v]),
              );
            }
            // Acknowledged before the pipe goes: a client that hears the
            // ack stops redialling; one whose detach may have been lost
            // dials again, and the resume carries it (PROTOCOL.md 8).
            connection.acknowledgeAndDetach("client detached");
          } else if (message.type === "output-closed") {
            this.#closeOutput(message.channel);
          } else if (message.type === "session-new") {
            this.#answerSessionNew(control, message.tag, message.bootstrap);
          } else if (message.type.startsWith("tunnel-")) {
            this.#tunnels.handle(message as TunnelMessage);
          }
        }
      }
    } catch {
      // the connection ended; a new one gets its own reader.
    }
  }

  /**
   * The client's reader of an output left on purpose (a pipe's reader,
   * EPIPE; sessions without a pty only): close that output of the program,
   * as sshd would, so its next write there fails and it ends as it would
   * under ssh. The output's end then reaches the client as usual.
   */
  #closeOutput(channel: number) {
    if (this.#program.hasPty) return; // only without a pty (the client knows)
    const which = channel === STDERR_CHANNEL ? "errors" : "output";
    log.info(
      `session ${this.idHex.slice(0, 8)}: client's reader of ` +
        `${which === "errors" ? "stderr" : "stdout"} left: closing it`,
    );
    this.#program.closeOutput(which);
  }

  /**
   * Session sharing: the client of this (authenticated) connection asks
   * for another session of the same user; the answer goes back on the
   * same control channel. Runs beside the control reader, never blocking it.
   */
  #answerSessionNew(control: Channel, tag: number, bootstrap: string) {
    const start = this.#newSession ??
      (() => Promise.resolve("error: session sharing is not offered here"));
    start(bootstrap)
      .catch((error) => `error: ${errorMessage(error)}`)
      .then((answer) =>
        control.write(
          encodeControl({ type: "session-answer", tag, answer }),
        )
      )
      .catch(() => {}); // the connection ended: the client falls back to ssh
  }

  /**
   * Sends a backlog over a channel until the program's output is complete
   * ("ended") or the connection is retired or fails ("stopped").
   */
  async #pumpOutput(
    backlog: OutputBacklog,
    channel: Channel,
    signal: AbortSignal,
    sent: SentTail,
  ): Promise<"ended" | "stopped"> {
    while (true) {
      let chunk;
      try {
        chunk = await backlog.peek(signal);
      } catch (error) {
        if (!signal.aborted) log.info(`output pump: ${errorMessage(error)}`);
        return "stopped";
      }
      // Outside the catch: a fault here is a bug, not a failed connection.
      if (this.#fault !== null) this.#throwInjectedFault();
      try {
        if (chunk === undefined) return "stopped";
        if (chunk === null) {
          await channel.closeWrite();
          return "ended";
        }
        // Resolves only once the transport holds the whole chunk; a retired
        // connection gives its unacknowledged chunks back (attach).
        await channel.write(chunk);
        backlog.commit(chunk);
        sent.record(chunk);
      } catch (error) {
        if (!signal.aborted) log.info(`output pump: ${errorMessage(error)}`);
        return "stopped";
      }
    }
  }

  /** The output is complete: send the exit status and end by agreement. */
  async #finishOn(connection: EternalConnection, signal: AbortSignal) {
    const code = await this.#program.exited.then((exit) => exit.code);
    try {
      await connection.channel(CONTROL_CHANNEL).write(
        encodeControl({ type: "exit", code }),
      );
      // Waits (as long as the lifecycle allows) until the client has
      // acknowledged everything, then says goodbye.
      await connection.close("shell exited", 2 ** 31 - 1);
    } catch (error) {
      log.info(`session end: ${errorMessage(error)}`);
    }
    if (signal.aborted) return;
    if (connection.unacknowledgedBytes === 0) this.#apply("finished");
    await this.#terminate("program exited");
  }

  #programExited(code: number) {
    this.#exitCode = code;
    log.info(`session ${this.idHex.slice(0, 8)}: program exited ${code}`);
    this.#apply("program-exited");
    if (!this.#program.hasPty) return;
    // Read what is left in the pty, but stop once it goes quiet: children
    // that keep the terminal open must not keep the session alive.
    const backlog = this.#backlogs.get(TERMINAL_CHANNEL)!;
    const check = setInterval(() => {
      if (backlog.sourceDone) {
        clearInterval(check);
      } else if (
        !backlog.full && performance.now() - backlog.lastReadAt > DRAIN_QUIET_MS
      ) {
        clearInterval(check);
        this.#program.close();
      }
    }, 100);
  }

  #apply(event: LifecycleEvent) {
    const before = this.#life.state;
    const wasPresent = this.#life.clientPresent;
    const after = this.#life.apply(event, performance.now());
    if (wasPresent) this.#lastSeenWall = Date.now();
    // A client is back: past the threshold it gets the screen, not bytes.
    if (!wasPresent && this.#life.clientPresent) this.#screen?.clientBack();
    if (after !== before) {
      log.info(`session ${this.idHex.slice(0, 8)}: ${before} -> ${after}`);
    }
    // The capacity depends on presence: let the program run on while away.
    for (const backlog of this.#backlogs.values()) backlog.recheckCapacity();
    if (after === "expired") {
      this.#terminate("no client came back in time");
    } else this.#schedule();
  }

  #schedule() {
    clearTimeout(this.#timer);
    const deadline = this.#life.deadline();
    if (deadline === null) return;
    // setTimeout cannot wait longer than 2^31-1 ms; wake up and re-check.
    const wait = Math.min(
      Math.max(0, deadline - performance.now()),
      2 ** 31 - 1,
    );
    this.#timer = setTimeout(() => this.#apply("timeout"), wait);
  }

  async #terminate(reason: string) {
    if (this.#wiring === null) return;
    this.#wiring.abort();
    this.#wiring = null;
    clearTimeout(this.#timer);
    const state = this.#life.isFinal ? this.#life.state : "ended";
    log.info(`session ${this.idHex.slice(0, 8)}: ${state}: ${reason}`);
    this.#program.hangup();
    if (!this.#connection.isClosed) {
      this.#connection.fail(new Error(reason));
    }
    await this.#program.close();
    this.#screen?.close();
    await this.#tunnels.close();
    this.#resolveOutcome({ state, exitCode: this.#exitCode, reason });
  }
}
