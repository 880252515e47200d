/**
 * A session's control socket under fuzz: serveControl on a real Unix
 * socket with recording handlers, fed mutated request lines in random
 * pieces, then a half-close. Each connection gets exactly one JSON answer
 * line (none when no line came), the handlers run only for well-formed
 * requests and only with arguments the session can apply (a passkey of 32
 * bytes, a size a pty accepts: integers 0..65535), and the socket keeps
 * serving after every request.
 *
 * @module
 */

import type { SessionInfo } from "../../../src/session/mod.ts";
import { serveControl } from "../../../src/terminal/control_socket.ts";
import {
  equalBytes,
  hex,
  preview,
  unhex,
  utf8Bytes,
  utf8Text,
} from "../_bytes.ts";
import { check, fail, type FuzzCase, type Target } from "../_engine.ts";
import { chunks, mutateJson, mutateText } from "../_mutate.ts";
import { Rng } from "../_rng.ts";

const LIMIT = 4096;

const INFO: SessionInfo = {
  id: "0123456789abcdef0123456789abcdef",
  state: "detached",
  startedAt: 1,
  lastSeenAt: 2,
  command: "",
};

type Call =
  | { op: "attach"; passkey: Uint8Array; cols: number; rows: number }
  | { op: "status" }
  | { op: "end" }
  | { op: "relay" };

interface Ctx {
  dir: string;
  path: string;
  calls: Call[];
  stop: AbortController;
  serving: Promise<void>;
}

async function setup(): Promise<Ctx> {
  const dir = await Deno.makeTempDir({ prefix: "et-fuzz-" });
  const path = `${dir}/fuzz.ctl`;
  const calls: Call[] = [];
  const stop = new AbortController();
  const serving = serveControl(path, {
    status: () => {
      calls.push({ op: "status" });
      return INFO;
    },
    attach: (passkey, cols, rows) => {
      calls.push({ op: "attach", passkey, cols, rows });
      return Promise.resolve();
    },
    end: () => {
      calls.push({ op: "end" });
      return Promise.resolve();
    },
    // `et relay`: the connection becomes a client's; here it just ends.
    relay: (conn) => {
      calls.push({ op: "relay" });
      conn.close();
    },
  }, stop.signal);
  // Listening starts synchronously; wait for the chmod that follows.
  for (let i = 0; i < 100; i++) {
    try {
      if (((await Deno.stat(path)).mode! & 0o777) === 0o600) break;
    } catch { /* not yet */ }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return { dir, path, calls, stop, serving };
}

async function teardown(ctx: Ctx) {
  ctx.stop.abort();
  await ctx.serving;
  await Deno.remove(ctx.dir, { recursive: true });
}

function validRequest(r: Rng): string {
  switch (r.int(5)) {
    case 0:
      return JSON.stringify({ op: "status" });
    case 1:
      return JSON.stringify({ op: "end" });
    case 2:
      return JSON.stringify({ op: "relay" });
    default:
      return JSON.stringify({
        op: "attach",
        passkey: hex(r.bytes(32)),
        cols: 1 + r.int(500),
        rows: 1 + r.int(200),
      });
  }
}

function generate(r: Rng): FuzzCase {
  let line = validRequest(r);
  const kind = r.int(10);
  if (kind < 6) {
    line = JSON.stringify(mutateJson(r, JSON.parse(line))) ?? "null";
  } else if (kind < 8) line = mutateText(r, line);
  else if (kind < 9) {
    line = line +
      "x".repeat(r.pick([LIMIT - line.length - 1, LIMIT - line.length, 5000]));
  }
  const ending = r.chance(0.85)
    ? "\n"
    : r.chance(0.5)
    ? ""
    : '\n{"op":"end"}\n';
  return { input: utf8Bytes(line + ending), aux: r.u32(), origin: "request" };
}

/** The request as the socket must read it: the first line, if any. */
function firstLine(
  input: Uint8Array,
): { line: string | null; tooLong: boolean | "either" } {
  const newline = input.indexOf(0x0a);
  if (newline < 0) {
    return input.length > LIMIT
      ? { line: null, tooLong: true }
      : { line: null, tooLong: false };
  }
  if (newline > LIMIT) return { line: null, tooLong: true };
  const line = utf8Text(input.subarray(0, newline));
  return { line, tooLong: newline === LIMIT ? "either" : false };
}

async function exchange(
  path: string,
  pieces: Uint8Array[],
): Promise<Uint8Array> {
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    try {
      for (const piece of pieces) {
        for (let at = 0; at < piece.length;) {
          at += await conn.write(piece.subarray(at));
        }
      }
      await conn.closeWrite();
    } catch {
      // the socket answered and closed before reading everything.
    }
    const parts: Uint8Array[] = [];
    const buffer = new Uint8Array(8192);
    try {
      for (let n; (n = await conn.read(buffer)) !== null;) {
        parts.push(buffer.slice(0, n));
      }
    } catch {
      // reset after the answer: what was read stands.
    }
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  } finally {
    conn.close();
  }
}

async function run(c: FuzzCase, ctx: Ctx): Promise<string> {
  ctx.calls.length = 0;
  const answer = utf8Text(
    await exchange(ctx.path, chunks(new Rng(c.aux), c.input)),
  );
  const calls = ctx.calls.splice(0);
  const { line, tooLong } = firstLine(c.input);
  for (const call of calls) {
    if (call.op === "attach") {
      check(
        call.passkey.length === 32,
        "attach handler got a passkey that is not 32 bytes",
      );
      for (
        const [name, value] of [["cols", call.cols], [
          "rows",
          call.rows,
        ]] as const
      ) {
        check(
          Number.isInteger(value) && value >= 0 && value <= 0xffff,
          `attach handler got ${name}=${value}: the session's pty refuses it (RangeError) after retiring the old client`,
        );
      }
    }
  }
  if (answer === "") {
    check(
      line === null && tooLong !== true,
      `no answer to ${preview(line ?? utf8Text(c.input.subarray(0, 80)))}`,
    );
    check(calls.length === 0, "a handler ran without an answer");
    return "no request, no answer";
  }
  check(
    answer.endsWith("\n") && answer.indexOf("\n") === answer.length - 1,
    `answer is not one line: ${preview(answer)}`,
  );
  let reply;
  try {
    reply = JSON.parse(answer);
  } catch {
    fail(`answer is not JSON: ${preview(answer)}`);
  }
  if (line === null) {
    check(tooLong !== false, "an answer without a request line");
    check(
      reply?.ok === false && /^line longer than \d+ bytes$/.test(reply.error),
      `answer to an over-long line: ${preview(reply)}`,
    );
    return "too long";
  }
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    check(
      reply?.ok === false && typeof reply.error === "string",
      `answer to non-JSON: ${preview(reply)}`,
    );
    check(calls.length === 0, "a handler ran for a line that is not JSON");
    return "not JSON";
  }
  const op = request?.op;
  if (op === "status") {
    check(
      equalJson(reply, INFO) && calls.length === 1 && calls[0].op === "status",
      `status answered ${preview(reply)}`,
    );
    return "status";
  }
  if (op === "end") {
    check(
      reply?.ok === true && calls.length === 1 && calls[0].op === "end",
      `end answered ${preview(reply)}`,
    );
    return "end";
  }
  if (op === "relay") {
    check(
      reply?.ok === true && calls.length === 1 && calls[0].op === "relay",
      `relay answered ${preview(reply)}`,
    );
    return "relay";
  }
  const wellFormedAttach = op === "attach" &&
    typeof request.passkey === "string" &&
    /^[0-9a-f]{64}$/.test(request.passkey) && ptySize(request.cols) &&
    ptySize(request.rows);
  if (wellFormedAttach) {
    check(
      reply?.ok === true && calls.length === 1 && calls[0].op === "attach",
      `attach answered ${preview(reply)}`,
    );
    const call = calls[0] as Extract<Call, { op: "attach" }>;
    check(
      equalBytes(call.passkey, unhex(request.passkey)),
      "attach handler got another passkey",
    );
    check(
      call.cols === request.cols && call.rows === request.rows,
      "attach handler got another size",
    );
    return "attach";
  }
  check(calls.length === 0, `a handler ran for ${preview(line)}`);
  check(
    reply?.ok === false && reply.error === "malformed request",
    `malformed request answered ${preview(reply)}`,
  );
  return "malformed";
}

/** A size a pty accepts, as the bootstrap line checks it (1 to 9999). */
function ptySize(n: unknown): boolean {
  return Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 9999;
}

function equalJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** control.socket target. */
export const controlSocketTarget: Target<Ctx> = {
  name: "control.socket",
  description:
    "serveControl on a real Unix socket: one JSON answer per request line, handlers only for well-formed requests with sizes a pty accepts",
  weight: 0.6,
  timeoutMs: 7000,
  setup,
  teardown,
  generate,
  run,
};
