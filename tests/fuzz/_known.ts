/**
 * Bugs the fuzzer found that are not fixed yet. Their failures are tallied
 * apart (and do not fail a run) so the suite stays green; `--strict`
 * counts them. Each has a regression case under corpus/ and an ignored
 * test in fuzz_test.ts naming the same id: when a fix lands, delete the
 * entry here and the `ignore` there.
 *
 * @module
 */

import type { KnownBug } from "./_engine.ts";

/** Known, unfixed bugs. */
export const KNOWN_BUGS: KnownBug[] = [];

/**
 * Bugs the fuzzer found that are fixed: no allowance any more, and their
 * stored cases must all pass (a regression test each in fuzz_test.ts).
 */
export const FIXED_BUGS: KnownBug[] = [
  {
    id: "handshake-pipe-left-open",
    target: "handshake.server",
    pattern: /^the server left the pipe open after giving up$/,
    summary:
      "serverHandshake returns null without closing the pipe when the client ends its stream right after the HELLO (handshake.ts: `if (authBody === null) return null;`): one leaked socket per such connection",
  },
  {
    id: "refuse-reason-unsanitized",
    target: "handshake.client",
    pattern: /message is not one printable line/,
    summary:
      "a REFUSE's reason (anyone on the path can send one) reaches HandshakeRefusedError's message, and the user's terminal, with newlines and escape sequences intact and uncapped (handshake.ts describeRefusal, wire.ts decodeRefuse)",
  },
  {
    id: "control-shared-decoder",
    target: "control.decoder",
    pattern: /^ControlDecoders share decoding state/,
    summary:
      "every ControlDecoder streams through one module-level TextDecoder (terminal_protocol.ts): one decoder's unfinished UTF-8 character corrupts another's next line",
  },
  {
    id: "control-long-line",
    target: "control.decoder",
    pattern: /^a control line over the \d+-char limit yielded a message/,
    summary:
      "a control line over CONTROL_LINE_LIMIT is parsed when it arrives in one push, dropped when split: documented as dropped whole",
  },
  {
    id: "line-reader-exact-limit",
    target: "line.reader",
    pattern: /^LineTooLongError for a line of exactly the limit/,
    summary:
      "LineReader refuses a line of exactly `limit` bytes when its newline arrives in a later read, accepts it otherwise; documented: only longer lines are errors",
  },
  {
    id: "bootstrap-env-echo",
    target: "bootstrap.decode",
    pattern:
      /^Error message is not one printable line: "malformed bootstrap line: env /,
    summary:
      "decodeBootstrap's error echoes an env variable name verbatim (newlines, escapes) into its one-line message",
  },
  {
    id: "ready-detached-coercion",
    target: "ready.decode",
    pattern: /^threw TypeError: /,
    summary:
      "decodeReady runs Number() on the remote's `detached` value: an object whose toString is not callable throws TypeError instead of the documented garbage Error",
  },
  {
    id: "parse-size-unbounded",
    target: "units.parse",
    pattern: /^parseSize\(.*\) = .*: not a byte count/,
    summary:
      "parseSize returns unsafe integers and Infinity for long digit strings (--max-backlog 99999999999999999G): JSON turns Infinity into null (silently the default), the remote refuses the rest as a malformed line",
  },
  {
    id: "destination-dash-host",
    target: "destination.parse",
    pattern: /which ssh reads as an option$/,
    summary:
      "parseDestination('[-F.evil]') gives the host '-F.evil', passed to ssh as its destination argument: ssh takes it for an option",
  },
  {
    id: "control-attach-size",
    target: "control.socket",
    pattern: /^attach handler got (cols|rows)=/,
    summary:
      "the control socket's attach accepts any integer size; SessionHost.attach retires the old client, then pty.resize throws RangeError before the new connection is wired",
  },
];
