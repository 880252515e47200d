/**
 * What people type, under fuzz.
 *
 * - units.parse: parseDuration, parseSize, parseEscapeChar on mutated
 *   command-line values: a value in range or the documented one-line Error.
 * - destination.parse: parseDestination and parsePort: hosts, users and
 *   ports within their documented shapes, never a host ssh would take for
 *   an option, and round trips of valid destinations.
 * - escape.filter: EscapeFilter over chunked keystrokes with several
 *   escape characters, against a byte-at-a-time model of ssh's rules: the
 *   same bytes forwarded and actions taken however the input is split.
 *
 * @module
 */

import {
  parseDuration,
  parseEscapeChar,
  parseSize,
} from "../../../src/cli/units.ts";
import {
  type Destination,
  parseDestination,
  parsePort,
  sshTarget,
} from "../../../src/client/destination.ts";
import { EscapeFilter } from "../../../src/client/escape.ts";
import { concat, equalBytes, preview, utf8Bytes, utf8Text } from "../_bytes.ts";
import {
  check,
  fail,
  type FuzzCase,
  FuzzFailure,
  type Target,
} from "../_engine.ts";
import { chunks, mutateText } from "../_mutate.ts";
import { type Random, Rng } from "../_rng.ts";

function digits(r: Random): string {
  const kind = r.int(10);
  if (kind < 6) return String(r.int(r.pick([10, 1000, 100_000])));
  if (kind < 8) return String(r.u32()) + "0".repeat(r.int(12));
  return "9".repeat(1 + r.int(r.chance(0.5) ? 20 : 400));
}

function unitText(r: Random): string {
  switch (r.int(3)) {
    case 0:
      return `${digits(r)}${r.chance(0.3) ? "." + digits(r) : ""}${
        r.pick(["", "ms", "s", "m", "h", "d", "S", "w"])
      }`;
    case 1:
      return `${digits(r)}${r.pick(["", "k", "K", "m", "M", "g", "G", "t"])}${
        r.pick(["", "b", "B", "ib", "iB"])
      }`;
    default:
      return r.pick([
        "~",
        "^A",
        "^]",
        "^@",
        "^_",
        "^a",
        "^z",
        "none",
        "é",
        "",
        "ab",
        "^",
        "\u0000",
        "\u007f",
      ]);
  }
}

const echo = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

function expectTemplate(
  error: unknown,
  templates: RegExp[],
  what: string,
): string {
  if (error instanceof FuzzFailure) throw error;
  if (
    !(error instanceof Error) ||
    Object.getPrototypeOf(error) !== Error.prototype
  ) {
    fail(
      `${what} threw ${(error as Error)?.name ?? typeof error}: ${
        (error as Error)?.message
      }`,
    );
  }
  if (!templates.some((t) => t.test(error.message))) {
    fail(`${what} threw an undocumented message: ${preview(error.message)}`);
  }
  return "Error";
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};
const SIZE_UNITS: Record<string, number> = {
  "": 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
};

function runUnits(c: FuzzCase): string {
  const text = utf8Text(c.input);
  const labels: string[] = [];
  const e = echo(text);
  try {
    const ms = parseDuration(text, "--d");
    check(
      Number.isSafeInteger(ms) && ms >= 0,
      `parseDuration(${preview(text)}) = ${ms}`,
    );
    const m = text.trim().match(/^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/)!;
    check(m !== null, `parseDuration accepted ${preview(text)}`);
    check(
      ms === Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? "s"]),
      `parseDuration(${preview(text)}) = ${ms}`,
    );
    labels.push("duration");
  } catch (error) {
    expectTemplate(error, [
      new RegExp(
        `^invalid --d '${e}' \\(expected e\\.g\\. 30s, 5m, 2h, 7d or 0\\)$`,
        "s",
      ),
      new RegExp(`^--d '${e}' is too large$`, "s"),
    ], "parseDuration");
  }
  try {
    const bytes = parseSize(text, "--s");
    check(
      Number.isSafeInteger(bytes) && bytes >= 0,
      `parseSize(${
        preview(text)
      }) = ${bytes}: not a byte count (unsafe or infinite)`,
    );
    const m = text.trim().match(/^(\d+)([kmg])?(?:i?b)?$/i)!;
    check(
      m !== null &&
        bytes === Number(m[1]) * SIZE_UNITS[(m[2] ?? "").toLowerCase()],
      `parseSize(${preview(text)}) = ${bytes}`,
    );
    labels.push("size");
  } catch (error) {
    expectTemplate(error, [
      new RegExp(`^invalid --s '${e}' \\(expected e\\.g\\. 64M or 1G\\)$`, "s"),
      new RegExp(`^--s '${e}' is too large$`, "s"),
    ], "parseSize");
  }
  try {
    const byte = parseEscapeChar(text);
    check(
      byte === null
        ? text === "none"
        : Number.isInteger(byte) && byte >= 0 && byte < 0x80,
      `parseEscapeChar(${preview(text)}) = ${byte}`,
    );
    labels.push("escape");
  } catch (error) {
    expectTemplate(error, [
      new RegExp(
        `^invalid escape character '${e}' \\(expected one character, \\^X or none\\)$`,
        "s",
      ),
    ], "parseEscapeChar");
  }
  return labels.join("+") || "refused";
}

/** units.parse target. */
export const unitsTarget: Target = {
  name: "units.parse",
  description:
    "parseDuration/parseSize/parseEscapeChar: safe non-negative integers or the documented one-line Error",
  weight: 8,
  timeoutMs: 1000,
  generate: (r) => {
    let text = unitText(r);
    if (r.chance(0.5)) text = mutateText(r, text);
    if (r.chance(0.1)) text = ` ${text}\t`;
    return { input: utf8Bytes(text), aux: 0, origin: "unit text" };
  },
  run: runUnits,
};

// ---------------------------------------------------------------------------
// destination.parse

function randomDestination(r: Random): Destination {
  const host = r.chance(0.2)
    ? r.pick(["::1", "2001:db8::1", "fe80::1%eth0"])
    : r.pick(["example.com", "h", "10.0.0.1", "my-host.local", "a_b", "x.y.z"]);
  return {
    user: r.chance(0.5)
      ? r.pick(["root", "u", "first.last", "svc-1", "_x", "machine$"])
      : undefined,
    host,
    port: r.chance(0.4) ? 1 + r.int(65535) : undefined,
  };
}

function formatDestination(d: Destination): string {
  const host = d.host.includes(":") ? `[${d.host}]` : d.host;
  return `${d.user ? d.user + "@" : ""}${host}${
    d.port !== undefined ? ":" + d.port : ""
  }`;
}

function runDestination(c: FuzzCase): string {
  const text = utf8Text(c.input);
  const e = echo(text);
  let destination: Destination;
  try {
    destination = parseDestination(text);
  } catch (error) {
    return expectTemplate(error, [
      new RegExp(
        `^malformed destination '${e}' \\(expected \\[user@\\]host\\[:port\\]\\)(: [^\\n]+)?$`,
        "s",
      ),
      /^invalid port '.*' \(expected 1-65535\)$/s,
    ], "parseDestination");
  }
  const { user, host, port } = destination;
  check(/^[A-Za-z0-9._%:-]+$/.test(host), `host ${preview(host)} accepted`);
  // What goes on ssh's command line as the destination (before any "--").
  check(
    !sshTarget(destination).startsWith("-"),
    `${preview(text)} gives ssh the destination ${
      preview(sshTarget(destination))
    }, which ssh reads as an option`,
  );
  check(
    port === undefined ||
      (Number.isInteger(port) && port >= 1 && port <= 65535),
    `port ${port} accepted`,
  );
  check(
    user === undefined || /^[A-Za-z0-9._][A-Za-z0-9._-]*\$?$/.test(user),
    `user ${preview(user)} accepted`,
  );
  const again = parseDestination(formatDestination(destination));
  check(
    again.user === user && again.host === host && again.port === port,
    `${preview(text)} parses to ${
      preview(destination)
    }, which does not parse back the same`,
  );
  try {
    const p = parsePort(text.replace(/^.*:/, ""));
    check(Number.isInteger(p) && p >= 1 && p <= 65535, `parsePort gave ${p}`);
  } catch (error) {
    expectTemplate(
      error,
      [/^invalid port '.*' \(expected 1-65535\)$/s],
      "parsePort",
    );
  }
  return `${user ? "user@" : ""}${host.includes(":") ? "v6" : "host"}${
    port ? ":port" : ""
  }`;
}

/** destination.parse target. */
export const destinationTarget: Target = {
  name: "destination.parse",
  description:
    "parseDestination: documented shapes or one-line Error; never a host ssh would read as an option; round trips",
  weight: 8,
  timeoutMs: 1000,
  generate: (r) => {
    let text = formatDestination(randomDestination(r));
    if (r.chance(0.7)) text = mutateText(r, text);
    if (r.chance(0.2)) {
      const at = r.int(text.length + 1);
      text = text.slice(0, at) +
        r.pick(["-", "[", "]", "@", ":", "%", "$", " ", "-o", "[-", "]:"]) +
        text.slice(at);
    }
    return { input: utf8Bytes(text), aux: 0, origin: "destination" };
  },
  run: runDestination,
};

// ---------------------------------------------------------------------------
// escape.filter

const ESCAPES: Array<number | null> = [
  0x7e,
  0x7e,
  0x7e,
  0x0d,
  0x0a,
  0x2e,
  0x3f,
  0x00,
  0xff,
  0x1d,
  null,
];

/** ssh's escape rules, one byte at a time, as the module documents them. */
function modelEscape(escape: number | null, input: Uint8Array) {
  const out: number[] = [];
  const actions: string[] = [];
  let lineStart = true;
  let pending = false;
  let detached = false;
  for (const byte of input) {
    if (detached) break;
    if (escape === null) {
      out.push(byte);
      continue;
    }
    if (pending) {
      pending = false;
      if (byte === 0x2e) {
        detached = true;
        actions.push("detach");
        break;
      }
      if (byte === 0x3f) {
        actions.push("help");
        continue;
      }
      if (byte !== escape) out.push(escape);
      out.push(byte);
      lineStart = byte === 0x0d || byte === 0x0a;
      continue;
    }
    if (lineStart && byte === escape) {
      pending = true;
      continue;
    }
    out.push(byte);
    lineStart = byte === 0x0d || byte === 0x0a;
  }
  return { forward: new Uint8Array(out), actions, detached };
}

function runEscape(c: FuzzCase): string {
  const plan = new Rng(c.aux);
  const escape = plan.pick(ESCAPES);
  const filter = new EscapeFilter(escape);
  const forwarded: Uint8Array[] = [];
  const actions: string[] = [];
  for (const piece of chunks(plan, c.input)) {
    const copy = piece.slice();
    const result = filter.push(copy);
    check(
      result.forward.length <= copy.length + 1,
      "a push forwarded more than it was given plus one held byte",
    );
    forwarded.push(result.forward.slice());
    actions.push(...result.actions);
  }
  const model = modelEscape(escape, c.input);
  const got = concat(...forwarded);
  if (
    !equalBytes(got, model.forward) || actions.join() !== model.actions.join()
  ) {
    fail(
      `escape ${escape}: forwarded ${preview(got)} with ${
        preview(actions)
      }; ssh's rules give ${preview(model.forward)} with ${
        preview(model.actions)
      }`,
    );
  }
  check(
    filter.detached === model.detached,
    "detached flag differs from the model",
  );
  return `${model.actions.join("+") || "plain"}${
    model.detached ? ", detached" : ""
  }`;
}

/** escape.filter target. */
export const escapeTarget: Target = {
  name: "escape.filter",
  description:
    "EscapeFilter over chunked keystrokes, escape chars ~ CR LF . ? NUL 0xff ^] none: same as ssh's rules however split",
  weight: 8,
  timeoutMs: 1000,
  generate: (r) => {
    const alphabet = [
      0x7e,
      0x7e,
      0x2e,
      0x3f,
      0x0d,
      0x0a,
      0x61,
      0x00,
      0xff,
      0x1d,
    ];
    const input = new Uint8Array(r.int(r.chance(0.9) ? 24 : 3000));
    for (let i = 0; i < input.length; i++) {
      input[i] = r.chance(0.8) ? r.pick(alphabet) : r.int(256);
    }
    return { input, aux: r.u32(), origin: "keystrokes" };
  },
  run: runEscape,
};
