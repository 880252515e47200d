/**
 * The line protocols above the transport under fuzz.
 *
 * - bootstrap.decode: the line `et terminal` reads from ssh's stdin
 *   (decodeBootstrap, bootstrapProtocol): valid lines from encodeBootstrap,
 *   JSON-tree and text mutations, deep nesting, random bytes. Only a
 *   one-line `malformed bootstrap line: ...` Error may be thrown; what is
 *   accepted must satisfy every documented limit and re-encode to itself.
 * - ready.decode: the launcher's ready and refusal lines as the client
 *   scans ssh's output (decodeReady, decodeRefusal).
 * - control.decoder: ControlDecoder over a chunked stream, against a model
 *   of section 8 (complete lines within the limit parsed, a longer line
 *   dropped whole, chunking irrelevant); memory stays flat under an endless
 *   line.
 * - router.decode: the router's request, answer and notice lines.
 * - line.reader: LineReader over a chunked stream with limits 1..64 KiB:
 *   lines as the bytes hold them, LineTooLongError for a longer line, never
 *   more than limit + 1 bytes buffered.
 * - session.roundtrip: decode(encode(x)) == x for random valid bootstrap
 *   requests, ready reports, control messages and router lines.
 *
 * @module
 */

import {
  bootstrapProtocol,
  type BootstrapRequest,
  ControlDecoder,
  type ControlMessage,
  decodeBootstrap,
  decodeReady,
  decodeRefusal,
  encodeBootstrap,
  encodeControl,
  encodeReady,
  encodeRefusal,
  isForwardedEnvName,
  LineReader,
  LineTooLongError,
  MAX_BACKLOG_CAP_BYTES,
  READY_MARKER,
  type ReadyReport,
  REFUSED_MARKER,
  type SessionInfo,
  type TunnelEndpoint,
  validateEndpoint,
} from "../../../src/session/mod.ts";
import {
  decodeConnectionNotice,
  decodeRegisterRequest,
  decodeRouterAnswer,
  encodeConnectionNotice,
  encodeRegisterRequest,
  encodeRouterAnswer,
} from "../../../src/session/router_protocol.ts";
import { PROTOCOL_VERSION } from "../../../src/transport/mod.ts";
import {
  concat,
  equalValue,
  hex,
  preview,
  utf8Bytes,
  utf8Text,
} from "../_bytes.ts";
import {
  check,
  expectError,
  fail,
  type FuzzCase,
  FuzzFailure,
  isOneLine,
  type Target,
} from "../_engine.ts";
import {
  chunks,
  deepJson,
  mutateBytes,
  mutateJson,
  mutateText,
  randomJson,
} from "../_mutate.ts";
import { ScriptedPipe } from "../_pipes.ts";
import { type Random, Rng, Tape } from "../_rng.ts";

const HEX32 = /^[0-9a-f]{32}$/;

function validSize(n: unknown): boolean {
  return Number.isInteger(n) && (n as number) > 0 && (n as number) < 10_000;
}

function hexOf(r: Random, bytes: number): string {
  return hex(r.bytes(bytes));
}

function envValue(r: Random): string {
  return r.pick([
    "en_US.UTF-8",
    "C",
    "truecolor",
    "",
    "x".repeat(256),
    "a b=c",
  ]);
}

/** A random request the real client could send. */
export function randomBootstrap(r: Random): BootstrapRequest {
  const op = r.int(4);
  if (op === 0) {
    const env: Record<string, string> = {};
    for (const name of ["LANG", "LC_ALL", "LC_CTYPE", "COLORTERM"]) {
      if (r.chance(0.4)) env[name] = envValue(r);
    }
    return {
      op: "new",
      secret: { id: r.bytes(16), passkey: r.bytes(32) },
      program: {
        ...(r.chance(0.5)
          ? {
            command: r.pick(["make -j8", "cat", "sh -c 'echo \"hi\"'", "é😀"]),
          }
          : {}),
        pty: r.chance(0.7),
        term: r.pick(["xterm-256color", "screen", "vt100", "xterm+1.2_a-b"]),
        cols: 1 + r.int(9998),
        rows: 1 + r.int(9998),
        env,
      },
      limits: {
        connectTimeoutMs: r.int(24 * 3600 * 1000 + 1),
        sessionTimeoutMs: r.pick([
          0,
          1,
          7 * 24 * 3600 * 1000,
          Number.MAX_SAFE_INTEGER,
        ]),
        maxBacklogBytes: r.int(MAX_BACKLOG_CAP_BYTES + 1),
      },
      killOthers: r.chance(0.2),
      // Always present: an absent field decodes to its default ("only",
      // 2022-2122), which is a different value from absent.
      daemon: r.pick(["auto", "only", "never"] as const),
      portRange: ((first: number) => ({
        first,
        last: first + r.int(65536 - first),
      }))(1 + r.int(65535)),
      // Always present too: absent decodes to [] and false.
      reverseTunnels: Array.from({ length: r.int(4) }, () => randomEndpoint(r)),
      noTerminal: r.chance(0.2),
      // Present too: absent decodes to "bytes" (and "bytes" is not sent).
      resume: r.pick(["bytes", "screen"] as const),
      // Present too: absent decodes to false (and false is not sent).
      endsSsh: r.chance(0.5),
    };
  }
  if (op === 1) {
    return {
      op: "attach",
      target: hexOf(r, 16).slice(0, r.int(33)),
      passkey: r.bytes(32),
      cols: 1 + r.int(9998),
      rows: 1 + r.int(9998),
    };
  }
  if (op === 2) {
    return {
      op: "jump",
      id: hexOf(r, 16),
      host: r.pick(["10.0.0.5", "bastion.example", "::1", "fe80::1%eth0"]),
      port: 1 + r.int(65535),
      daemon: r.pick(["auto", "only", "never"] as const),
      portRange: ((first: number) => ({
        first,
        last: first + r.int(65536 - first),
      }))(1 + r.int(65535)),
      limits: {
        connectTimeoutMs: r.int(24 * 3600 * 1000 + 1),
        sessionTimeoutMs: r.pick([0, 1, Number.MAX_SAFE_INTEGER]),
      },
    };
  }
  return { op: "list" };
}

/**
 * A line around a valid one: JSON-tree edits of its JSON part (what
 * follows `prefix`), text edits, deep nesting, random bytes.
 */
function randomLine(r: Rng, valid: () => string, prefix = ""): string {
  const kind = r.int(100);
  if (kind < 10) return valid();
  if (kind < 60) {
    const value = JSON.parse(valid().slice(prefix.length));
    let mutated = value;
    for (let i = 1 + r.int(3); i > 0; i--) mutated = mutateJson(r, mutated);
    const text = prefix + (JSON.stringify(mutated) ?? "null");
    return r.chance(0.2) ? mutateText(r, text) : text;
  }
  if (kind < 85) return mutateText(r, valid());
  if (kind < 88) return prefix + deepJson(r);
  if (kind < 95) return prefix + (JSON.stringify(randomJson(r)) ?? "");
  return utf8Text(r.bytes(r.int(80)));
}

function lineCase(r: Rng, valid: () => string, prefix = ""): FuzzCase {
  return {
    input: utf8Bytes(randomLine(r, valid, prefix)),
    aux: r.u32(),
    origin: "line",
  };
}

// ---------------------------------------------------------------------------
// bootstrap.decode

function checkBootstrap(request: BootstrapRequest) {
  switch (request.op) {
    case "new": {
      check(
        request.secret.id.length === 16 && request.secret.passkey.length === 32,
        "secret of the wrong size",
      );
      const p = request.program;
      check(
        /^[A-Za-z0-9._+-]{1,64}$/.test(p.term),
        `TERM ${preview(p.term)} accepted`,
      );
      check(
        p.command === undefined ||
          (typeof p.command === "string" && !p.command.includes("\0")),
        "command with NUL",
      );
      check(
        validSize(p.cols) && validSize(p.rows),
        `size ${p.cols}x${p.rows} accepted`,
      );
      check(typeof p.pty === "boolean", "pty is not a boolean");
      for (const [name, value] of Object.entries(p.env)) {
        check(isForwardedEnvName(name), `env ${preview(name)} accepted`);
        check(
          typeof value === "string" && value.length <= 256 &&
            /^[\x20-\x7e]*$/.test(value),
          `env value ${preview(value)} accepted`,
        );
      }
      const l = request.limits;
      for (
        const [name, value, max] of [
          ["connect timeout", l.connectTimeoutMs, 24 * 3600 * 1000],
          ["session timeout", l.sessionTimeoutMs, Number.MAX_SAFE_INTEGER],
          ["max backlog", l.maxBacklogBytes, MAX_BACKLOG_CAP_BYTES],
        ] as const
      ) {
        check(
          Number.isSafeInteger(value) && value >= 0 && value <= max,
          `${name} ${value} accepted`,
        );
      }
      check(
        typeof request.killOthers === "boolean",
        "killOthers is not a boolean",
      );
      return;
    }
    case "attach":
      check(
        /^[0-9a-f]{0,32}$/.test(request.target),
        `attach target ${preview(request.target)} accepted`,
      );
      check(request.passkey.length === 32, "passkey of the wrong size");
      check(
        validSize(request.cols) && validSize(request.rows),
        `size ${request.cols}x${request.rows} accepted`,
      );
      return;
    case "list":
      return;
    case "jump": {
      check(/^[0-9a-f]{32}$/.test(request.id), `id ${preview(request.id)}`);
      check(
        /^[A-Za-z0-9._:%][A-Za-z0-9._:%-]{0,254}$/.test(request.host),
        `host ${preview(request.host)} accepted`,
      );
      check(
        Number.isInteger(request.port) && request.port >= 1 &&
          request.port <= 65535,
        `port ${request.port} accepted`,
      );
      const l = request.limits;
      check(
        Number.isSafeInteger(l.connectTimeoutMs) && l.connectTimeoutMs >= 0 &&
          l.connectTimeoutMs <= 24 * 3600 * 1000 &&
          Number.isSafeInteger(l.sessionTimeoutMs) && l.sessionTimeoutMs >= 0,
        `limits ${preview(l)} accepted`,
      );
      return;
    }
    default:
      fail(`unknown op ${preview((request as { op: unknown }).op)} accepted`);
  }
}

const MALFORMED_BOOTSTRAP = /^malformed bootstrap line: /;

function runBootstrap(c: FuzzCase): string {
  const line = utf8Text(c.input);
  let version: number | null = null;
  try {
    version = bootstrapProtocol(line);
    check(
      Number.isSafeInteger(version) && version >= 1,
      `protocol ${version} accepted`,
    );
  } catch (error) {
    expectError(error, [Error], MALFORMED_BOOTSTRAP);
  }
  let request: BootstrapRequest;
  try {
    request = decodeBootstrap(line);
  } catch (error) {
    expectError(error, [Error], MALFORMED_BOOTSTRAP);
    return `refused: ${
      (error as Error).message.replace(MALFORMED_BOOTSTRAP, "").replace(
        / .*/,
        "",
      )
    }`;
  }
  checkBootstrap(request);
  const again = decodeBootstrap(encodeBootstrap(request));
  check(
    equalValue(again, request),
    `re-encoding changes the request: ${preview(request)} vs ${preview(again)}`,
  );
  return `${request.op}${
    version === PROTOCOL_VERSION ? "" : ` (protocol ${version})`
  }`;
}

/** bootstrap.decode target. */
export const bootstrapTarget: Target = {
  name: "bootstrap.decode",
  description:
    "decodeBootstrap/bootstrapProtocol on mutated bootstrap lines: one-line errors, limits hold, canonical",
  weight: 10,
  timeoutMs: 1000,
  generate: (r) =>
    lineCase(r, () => encodeBootstrap(randomBootstrap(r)).trimEnd()),
  run: runBootstrap,
};

// ---------------------------------------------------------------------------
// ready.decode

function randomInfo(r: Random): SessionInfo {
  return {
    id: hexOf(r, 16),
    state: r.pick(["attached", "detached", "starting", "draining"]),
    startedAt: r.int(2 ** 41),
    lastSeenAt: r.int(2 ** 41),
    command: r.pick(["", "make", "vim 'a b'"]),
  };
}

function randomReady(r: Random): ReadyReport {
  if (r.chance(0.5)) return { id: hexOf(r, 16), detached: r.int(5) };
  const sessions: SessionInfo[] = [];
  for (let i = r.int(4); i > 0; i--) sessions.push(randomInfo(r));
  return { sessions };
}

function runReady(c: FuzzCase): string {
  const line = utf8Text(c.input);
  const refusal = decodeRefusal(line);
  if (refusal !== null) {
    check(
      line.trim().startsWith(REFUSED_MARKER + " "),
      "a refusal decoded from a line without the marker",
    );
    check(
      /^[\x20-\x7e]*$/.test(refusal) && refusal.length <= 300,
      `refusal message ${preview(refusal)} not printable/short`,
    );
  }
  const marked = line.trim().startsWith(READY_MARKER + " ");
  let report: ReadyReport | null;
  try {
    report = decodeReady(line);
  } catch (error) {
    expectError(error, [Error], /^the remote et terminal answered garbage$/);
    check(marked, "decodeReady threw on a line without the marker");
    return "garbage";
  }
  if (report === null) {
    check(!marked, "decodeReady ignored a marked line");
    return refusal === null ? "other line" : "refusal";
  }
  check(marked, "decodeReady accepted a line without the marker");
  if ("id" in report) {
    check(HEX32.test(report.id), `ready id ${preview(report.id)}`);
    check(
      typeof report.detached === "number" && !Number.isNaN(report.detached),
      `detached ${report.detached}`,
    );
    return "ready";
  }
  for (const s of report.sessions) {
    check(HEX32.test(s.id), `listed id ${preview(s.id)}`);
    check(
      typeof s.state === "string" && typeof s.command === "string",
      "listed strings",
    );
    check(
      Number.isFinite(s.startedAt) && Number.isFinite(s.lastSeenAt),
      "listed times not finite",
    );
  }
  return report.sessions.length ? "list" : "empty list";
}

/** ready.decode target. */
export const readyTarget: Target = {
  name: "ready.decode",
  description:
    "decodeReady/decodeRefusal on mutated launcher output lines: null, a valid report, or the one garbage Error",
  weight: 6,
  timeoutMs: 1000,
  generate: (r) =>
    r.chance(0.1)
      ? lineCase(
        r,
        () =>
          encodeRefusal(
            JSON.stringify(r.pick(["protocol 2", "x\ny", "\u001b[2Jhi"])),
          ),
        REFUSED_MARKER + " ",
      )
      : lineCase(r, () => encodeReady(randomReady(r)), READY_MARKER + " "),
  run: runReady,
};

// ---------------------------------------------------------------------------
// control.decoder

/** Longest control line (mirrors CONTROL_LINE_LIMIT), in UTF-16 units. */
const CONTROL_LINE_LIMIT = 64 * 1024;

/** Section 8's control messages, as a reader of the document would parse them. */
function modelControl(line: string): ControlMessage | null {
  let value;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (
    value?.type === "resize" && validSize(value.cols) && validSize(value.rows)
  ) {
    return { type: "resize", cols: value.cols, rows: value.rows };
  }
  if (value?.type === "exit" && Number.isInteger(value.code)) {
    return { type: "exit", code: value.code };
  }
  // Only the two output channels a session without a pty has.
  if (
    value?.type === "output-closed" &&
    (value.channel === 1 || value.channel === 3)
  ) {
    return { type: "output-closed", channel: value.channel };
  }
  if (value?.type === "detach") {
    // `written`: decimal channel numbers (at most 8) to non-negative safe
    // integers; anything else and the detach stands without it.
    const w = value.written;
    const entries = typeof w === "object" && w !== null && !Array.isArray(w)
      ? Object.entries(w)
      : null;
    const good = entries !== null && entries.length <= 8 &&
      entries.every(([k, v]) =>
        /^(0|[1-9][0-9]{0,9})$/.test(k) && Number.isSafeInteger(v) &&
        (v as number) >= 0
      );
    return good
      ? {
        type: "detach",
        written: Object.fromEntries(entries!) as Record<string, number>,
      }
      : { type: "detach" };
  }
  // Section 13's session sharing: a tag, then the line it carries.
  const tag = value?.tag;
  if (Number.isSafeInteger(tag) && tag >= 0) {
    if (value.type === "session-new" && typeof value.bootstrap === "string") {
      return { type: "session-new", tag, bootstrap: value.bootstrap };
    }
    if (value.type === "session-answer" && typeof value.answer === "string") {
      return { type: "session-answer", tag, answer: value.answer };
    }
  }
  return modelTunnel(value);
}

/**
 * Section 11's tunnel messages as a reader of the document would parse
 * them (endpoints checked by the spec module's own validator).
 */
function modelTunnel(value: Record<string, unknown>): ControlMessage | null {
  const channel = value?.channel as number;
  if (
    typeof value?.type !== "string" || !Number.isInteger(channel) ||
    channel < 16 || channel > 0xffff_ffff
  ) return null;
  if (value.type === "tunnel-close") return { type: "tunnel-close", channel };
  if (value.type === "tunnel-refused") {
    const error = typeof value.error === "string"
      ? [...value.error].map((ch) =>
        ch.length === 1 && ch >= " " && ch <= "~" ? ch : "?".repeat(ch.length)
      ).join("").slice(0, 200)
      : "refused";
    return { type: "tunnel-refused", channel, error };
  }
  if (value.type !== "tunnel-open") return null;
  if (value.target !== undefined) {
    try {
      const target = validateEndpoint(value.target);
      return target.kind === "env"
        ? null
        : { type: "tunnel-open", channel, target };
    } catch {
      return null;
    }
  }
  const tunnel = value.tunnel as number;
  return Number.isInteger(tunnel) && tunnel >= 0 && tunnel < 1024
    ? { type: "tunnel-open", channel, tunnel }
    : null;
}

/** A valid tunnel endpoint (what a bootstrap line's reverse tunnel may be). */
function randomEndpoint(r: Random): TunnelEndpoint {
  const kind = r.int(3);
  if (kind === 0) {
    return {
      kind: "tcp",
      host: r.pick(["127.0.0.1", "::1", "localhost", "db.example.org"]),
      port: 1 + r.int(65535),
    };
  }
  if (kind === 1) {
    return { kind: "unix", path: r.pick(["/tmp/a.sock", "/run/é.sock"]) };
  }
  return { kind: "env", name: r.pick(["SSH_AUTH_SOCK", "MY_SOCK", "_X1"]) };
}

function randomControl(r: Random): ControlMessage {
  const kind = r.int(10);
  if (kind === 9) {
    return { type: "output-closed", channel: r.pick([1, 3] as const) };
  }
  if (kind === 7) {
    return {
      type: "session-new",
      tag: r.int(2 ** 31),
      bootstrap: encodeBootstrap(randomBootstrap(r)),
    };
  }
  if (kind === 8) {
    return {
      type: "session-answer",
      tag: r.int(2 ** 31),
      answer: r.pick(["ETREADY 1 0123abcd 2022", "error: no such user", ""]),
    };
  }
  if (kind === 0) {
    return { type: "resize", cols: 1 + r.int(9998), rows: 1 + r.int(9998) };
  }
  if (kind === 1) return { type: "exit", code: r.int(256) - 1 };
  const channel = 16 + r.int(2 ** 31);
  if (kind === 3) {
    const target = randomEndpoint(r);
    return target.kind === "env"
      ? { type: "tunnel-open", channel, tunnel: r.int(1024) }
      : { type: "tunnel-open", channel, target };
  }
  if (kind === 4) {
    return {
      type: "tunnel-refused",
      channel,
      error: r.pick(["connection refused", "", "x"]),
    };
  }
  if (kind === 5) return { type: "tunnel-close", channel };
  return { type: "detach" };
}

function controlStream(r: Rng): Uint8Array {
  const lines: string[] = [];
  for (let i = 1 + r.int(r.chance(0.8) ? 4 : 30); i > 0; i--) {
    const valid = JSON.stringify(randomControl(r));
    const kind = r.int(20);
    if (kind < 10) lines.push(valid);
    else if (kind < 16) {
      lines.push(JSON.stringify(mutateJson(r, JSON.parse(valid))) ?? "");
    } else if (kind < 19) lines.push(mutateText(r, valid));
    else {lines.push(
        r.chance(0.5)
          ? "x".repeat(CONTROL_LINE_LIMIT - 96 + r.int(300)) + valid
          : valid.slice(0, -1) +
            `,"pad":"${"p".repeat(CONTROL_LINE_LIMIT - 6)}"}`,
      );}
  }
  let text = lines.join("\n");
  if (r.chance(0.9)) text += "\n";
  const bytes = utf8Bytes(text);
  return r.chance(0.2) ? mutateBytes(r, bytes, [], 2) : bytes;
}

/** Prefix of failures caused by one decoder's state leaking into another. */
export const SHARED_STATE = "ControlDecoders share decoding state";

function runControl(c: FuzzCase): string {
  const plan = new Rng(c.aux);
  // Two sessions' decoders must not affect each other: in some cases a
  // neighbour stops in the middle of a UTF-8 character first. In the
  // others, whatever a neighbour (an earlier case) left is flushed, so a
  // case's outcome never depends on the cases before it.
  const neighbour = plan.chance(0.1);
  new ControlDecoder().push(
    neighbour ? new Uint8Array([0xe2, 0x82]) : new Uint8Array([0x0a]),
  );
  try {
    return checkControl(c, plan);
  } catch (error) {
    if (neighbour && error instanceof FuzzFailure) {
      throw new FuzzFailure(
        `${SHARED_STATE}: another decoder's unfinished character corrupted this stream (${
          error.message.slice(0, 120)
        })`,
      );
    }
    throw error;
  }
}

function checkControl(c: FuzzCase, plan: Rng): string {
  const decoder = new ControlDecoder();
  const got: ControlMessage[] = [];
  for (const piece of chunks(plan, c.input)) got.push(...decoder.push(piece));
  // What section 8 makes of each complete line; a line over the limit
  // must be dropped whole, however it arrived.
  const lines = new TextDecoder().decode(c.input).split("\n");
  lines.pop();
  const expected: ControlMessage[] = [];
  const withLong: ControlMessage[] = [];
  let long = 0;
  for (const line of lines) {
    const message = modelControl(line);
    const isLong = line.length > CONTROL_LINE_LIMIT;
    if (isLong) long++;
    if (message) {
      withLong.push(message);
      if (!isLong) expected.push(message);
    }
  }
  if (!equalValue(got, expected)) {
    if (isSubsequence(expected, got) && isSubsequence(got, withLong)) {
      fail(
        `a control line over the ${CONTROL_LINE_LIMIT}-char limit yielded a message (it arrived in one piece)`,
      );
    }
    fail(
      `ControlDecoder gave ${preview(got, 160)}; section 8 gives ${
        preview(expected, 160)
      }${isSubsequence(expected, got) ? "" : " (a valid line was lost)"}`,
    );
  }
  return `${Math.min(got.length, 3)} messages${
    long ? ", long line dropped" : ""
  }`;
}

function isSubsequence(part: unknown[], whole: unknown[]): boolean {
  let j = 0;
  for (const item of whole) {
    if (j < part.length && equalValue(part[j], item)) j++;
  }
  return j === part.length;
}

async function controlGrowth(): Promise<string[]> {
  const failures: string[] = [];
  const decoder = new ControlDecoder();
  const junk = new Uint8Array(64 * 1024).fill(0x61);
  const before = Deno.memoryUsage().heapUsed;
  let peak = before;
  for (let i = 0; i < 1600; i++) {
    decoder.push(junk);
    if (i % 100 === 0) peak = Math.max(peak, Deno.memoryUsage().heapUsed);
    if (i % 400 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
  }
  const grown = peak - before;
  if (grown > 48 * 1024 * 1024) {
    failures.push(
      `ControlDecoder heap grew ${
        Math.round(grown / 2 ** 20)
      } MiB over a 100 MiB line`,
    );
  }
  const after = decoder.push(
    utf8Bytes("\n" + JSON.stringify({ type: "detach" }) + "\n"),
  );
  if (!equalValue(after, [{ type: "detach" }])) {
    failures.push(`after an endless line, a valid one gave ${preview(after)}`);
  }
  return failures;
}

/** control.decoder target. */
export const controlTarget: Target = {
  name: "control.decoder",
  description:
    "ControlDecoder over chunked control streams vs section 8's model; bounded under an endless line",
  weight: 10,
  timeoutMs: 1000,
  generate: (r) => ({
    input: controlStream(r),
    aux: r.u32(),
    origin: "control stream",
  }),
  run: runControl,
  checks: controlGrowth,
};

// ---------------------------------------------------------------------------
// router.decode

function randomRouterLine(r: Rng): string {
  const kind = r.int(3);
  if (kind === 0) return encodeRegisterRequest(hexOf(r, 16)).trimEnd();
  if (kind === 1) {
    return encodeRouterAnswer(
      r.chance(0.5)
        ? { ok: true }
        : { ok: false, error: "session id already registered" },
    )
      .trimEnd();
  }
  return encodeConnectionNotice({
    peer: "192.0.2.1:5555",
    hello: r.bytes(r.chance(0.9) ? 54 : r.int(8)),
  }).trimEnd();
}

function runRouter(c: FuzzCase): string {
  const line = utf8Text(c.input);
  const labels: string[] = [];
  const request = decodeRegisterRequest(line);
  if ("id" in request) {
    check(HEX32.test(request.id), `registered id ${preview(request.id)}`);
    check(
      equalValue(
        decodeRegisterRequest(encodeRegisterRequest(request.id).trimEnd()),
        request,
      ),
      "request not canonical",
    );
    labels.push("register");
  } else {
    check(
      typeof request.error === "string" && isOneLine(request.error),
      "request refusal not one line",
    );
  }
  const answer = decodeRouterAnswer(line);
  check(
    answer.ok === true ||
      (answer.ok === false && typeof answer.error === "string"),
    "answer shape",
  );
  if (answer.ok) labels.push("ok");
  const notice = decodeConnectionNotice(line);
  if (notice) {
    check(
      typeof notice.peer === "string" && notice.hello instanceof Uint8Array,
      "notice shape",
    );
    check(
      equalValue(
        decodeConnectionNotice(encodeConnectionNotice(notice).trimEnd()),
        notice,
      ),
      "notice not canonical",
    );
    labels.push("notice");
  }
  return labels.join("+") || "refused";
}

/** router.decode target. */
export const routerTarget: Target = {
  name: "router.decode",
  description:
    "decodeRegisterRequest/decodeRouterAnswer/decodeConnectionNotice on mutated router lines: never throw, canonical",
  weight: 6,
  timeoutMs: 1000,
  generate: (r) => lineCase(r, () => randomRouterLine(r)),
  run: runRouter,
};

// ---------------------------------------------------------------------------
// line.reader

const LIMITS = [1, 2, 3, 8, 16, 100, 4096, 65_536];

function lineStream(r: Rng): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = r.int(r.chance(0.8) ? 5 : 40); i >= 0; i--) {
    const length = r.chance(0.7)
      ? r.int(20)
      : r.chance(0.5)
      ? r.pick([99, 100, 101, 4095, 4096, 4097])
      : r.int(70_000);
    const line = length <= 256
      ? r.bytes(length).map((b) => b === 0x0a ? 0x61 : b)
      : new Uint8Array(length).fill(0x62);
    parts.push(line);
    if (r.chance(0.9) || i > 0) parts.push(new Uint8Array([0x0a]));
  }
  const stream = concat(...parts);
  return r.chance(0.2) ? mutateBytes(r, stream, [], 2) : stream;
}

async function runLines(c: FuzzCase): Promise<string> {
  const plan = new Rng(c.aux);
  const limit = plan.pick(LIMITS);
  const pipe = new ScriptedPipe(chunks(plan, c.input));
  const reader = new LineReader(pipe, limit);
  const pieces: Uint8Array[] = [];
  let at = 0;
  for (let nl; (nl = c.input.indexOf(0x0a, at)) >= 0; at = nl + 1) {
    pieces.push(c.input.subarray(at, nl));
  }
  const rest = c.input.length - at;
  let consumed = 0;
  const bounded = () =>
    check(
      pipe.delivered - consumed <= limit + 1,
      `LineReader holds ${
        pipe.delivered - consumed
      } bytes with a limit of ${limit}`,
    );
  for (let i = 0;; i++) {
    let line: string | null;
    try {
      line = await reader.next();
    } catch (error) {
      expectError(error, [LineTooLongError], /^line longer than \d+ bytes$/);
      bounded();
      const piece = pieces[i];
      check(
        piece ? piece.length > limit : rest > limit,
        `LineTooLongError for a ${
          piece ? piece.length : rest
        }-byte line with a limit of ${limit}`,
      );
      return piece && piece.length === limit
        ? "refused at exactly the limit"
        : "too long";
    }
    bounded();
    if (line === null) {
      check(
        i === pieces.length,
        `end of stream after ${i} of ${pieces.length} lines`,
      );
      check(
        rest <= limit,
        `a final partial line of ${rest} bytes (limit ${limit}) ended quietly`,
      );
      return i === 0 ? "no lines" : "lines, end";
    }
    const piece = pieces[i];
    check(
      piece !== undefined,
      "a line returned past the stream's last newline",
    );
    check(
      piece.length <= limit,
      `a ${piece.length}-byte line returned with a limit of ${limit}`,
    );
    check(
      line === utf8Text(piece),
      `line ${i} differs from the stream's bytes`,
    );
    consumed += piece.length + 1;
  }
}

async function runLinesStrict(c: FuzzCase): Promise<string> {
  const label = await runLines(c);
  // "a line longer than `limit` bytes is an error": one of exactly the
  // limit is not longer, so it must never be refused.
  if (label === "refused at exactly the limit") {
    const plan = new Rng(c.aux);
    fail(
      `LineTooLongError for a line of exactly the limit (${
        plan.pick(LIMITS)
      } bytes), depending on how the bytes arrived`,
    );
  }
  return label;
}

/** line.reader target. */
export const lineReaderTarget: Target = {
  name: "line.reader",
  description:
    "LineReader over chunked streams, limits 1..64 KiB: exact lines, LineTooLongError past the limit, bounded buffer",
  weight: 8,
  timeoutMs: 2000,
  generate: (r) => ({
    input: lineStream(r),
    aux: r.u32(),
    origin: "line stream",
  }),
  run: runLinesStrict,
};

// ---------------------------------------------------------------------------
// session.roundtrip

function runRoundTrip(c: FuzzCase): string {
  const t = new Tape(c.input);
  switch (t.int(6)) {
    case 0: {
      const x = randomBootstrap(t);
      const back = decodeBootstrap(encodeBootstrap(x));
      check(
        equalValue(back, x),
        `bootstrap ${x.op}: ${preview(x)} came back as ${preview(back)}`,
      );
      check(
        bootstrapProtocol(encodeBootstrap(x)) === PROTOCOL_VERSION,
        "bootstrap protocol field",
      );
      return `bootstrap ${x.op}`;
    }
    case 1: {
      const x = randomReady(t);
      const back = decodeReady(
        `${t.pick(["", "  ", "\r"])}${encodeReady(x)}${
          t.pick(["", "\r", " "])
        }`,
      );
      check(
        equalValue(back, x),
        `ready: ${preview(x)} came back as ${preview(back)}`,
      );
      return "ready";
    }
    case 2: {
      const messages: ControlMessage[] = [];
      for (let i = t.int(5); i >= 0; i--) messages.push(randomControl(t));
      const decoder = new ControlDecoder();
      const back = decoder.push(concat(...messages.map(encodeControl)));
      check(
        equalValue(back, messages),
        `control: ${preview(messages)} came back as ${preview(back)}`,
      );
      return "control";
    }
    case 3: {
      const id = hex(t.bytes(16));
      const back = decodeRegisterRequest(encodeRegisterRequest(id).trimEnd());
      check(
        equalValue(back, { id }),
        `register ${id} came back as ${preview(back)}`,
      );
      const answer = t.chance(0.5)
        ? { ok: true as const }
        : { ok: false as const, error: "x\ny\u001b" };
      check(
        equalValue(
          decodeRouterAnswer(encodeRouterAnswer(answer).trimEnd()),
          answer,
        ),
        "router answer",
      );
      return "router";
    }
    case 4: {
      const notice = {
        peer: `[2001:db8::${t.int(100)}]:${t.int(65536)}`,
        hello: t.bytes(1 + t.int(60)),
      };
      const back = decodeConnectionNotice(
        encodeConnectionNotice(notice).trimEnd(),
      );
      check(
        equalValue(back, notice),
        `notice: ${preview(notice)} came back as ${preview(back)}`,
      );
      return "notice";
    }
    default: {
      const message = t.pick(["upgrade the client", "a\nb", "tab\there", "é"]);
      const back = decodeRefusal(encodeRefusal(message));
      check(
        back === message.replace(/[\r\n]+/g, " ").replace(/[^\x20-\x7e]/g, "?"),
        `refusal ${preview(message)} came back as ${preview(back)}`,
      );
      return "refusal";
    }
  }
}

/** session.roundtrip target. */
export const sessionRoundTripTarget: Target = {
  name: "session.roundtrip",
  description:
    "decode(encode(x)) == x for bootstrap requests, ready reports, control messages, router lines, refusals",
  weight: 3,
  timeoutMs: 1000,
  generate: (r) => ({
    input: r.bytes(16 + r.int(200)),
    aux: 0,
    origin: "tape",
  }),
  run: runRoundTrip,
};
