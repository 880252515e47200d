/**
 * Every frame-body decoder of wire.ts under fuzz, and round trips through
 * the encoders.
 *
 * - wire.decode: one body (valid from an encoder, mutated with counters and
 *   attempts set to boundary values, or random) goes to every decoder.
 *   Each must accept exactly the bodies PROTOCOL.md's layout allows (type,
 *   length, u64 counters within 2^53) and throw ProtocolError otherwise;
 *   what it accepts must re-encode to the same bytes.
 * - wire.roundtrip: random valid values (drawn from a tape) through
 *   encode then decode come back equal; refusal reasons are cut to 200
 *   bytes on a character boundary.
 *
 * @module
 */

import {
  decodeAccept,
  decodeAuth,
  decodeChallenge,
  decodeHello,
  decodeMessage,
  decodeRefuse,
  encodeAccept,
  encodeAuth,
  encodeChallenge,
  encodeHello,
  encodeMessage,
  encodeRefuse,
  FrameType,
  MAX_REFUSE_REASON_BYTES,
  MessageType,
  packetCounter,
  packetHeader,
  ProtocolError,
  readU32Body,
  readU64,
  refuseReasonBytes,
  u32,
  u64,
} from "../../../src/transport/wire.ts";
import {
  concat,
  equalBytes,
  equalValue,
  preview,
  utf8Text,
} from "../_bytes.ts";
import {
  check,
  expectError,
  fail,
  type FuzzCase,
  type Target,
} from "../_engine.ts";
import { INTERESTING_U32, mutate, type Seed } from "../_mutate.ts";
import { type Random, type Rng, Tape } from "../_rng.ts";
import { specRefusal } from "../_spec.ts";

const SAFE = 2n ** 53n - 1n;

function counter(r: Random): number {
  return r.pick([
    0,
    1,
    2,
    255,
    256,
    2 ** 32,
    2 ** 53 - 2,
    2 ** 53 - 1,
    r.u32(),
    r.u32() * 2 ** 21 + r.int(2 ** 21),
  ]);
}

function reasonText(r: Random): string {
  const pieces = [
    "a",
    "Z",
    " ",
    "é",
    "€",
    "😀",
    "\n",
    "\u0000",
    "\u001b[2J",
    "\ud800",
    "x".repeat(50),
  ];
  let out = "";
  for (let i = r.int(r.chance(0.7) ? 12 : 80); i > 0; i--) {
    out += r.pick(pieces);
  }
  return out;
}

/** A valid body from the real encoders, with its integer fields marked. */
function validBody(r: Random): Seed {
  switch (r.int(9)) {
    case 0:
      return {
        bytes: encodeHello({
          version: r.chance(0.8) ? 1 : r.int(256),
          sessionId: r.bytes(16),
          clientNonce: r.bytes(32),
        }),
      };
    case 1:
      return {
        bytes: encodeChallenge({
          version: r.chance(0.8) ? 1 : r.int(256),
          serverNonce: r.bytes(32),
        }),
      };
    case 2:
      return {
        bytes: encodeAuth({
          attempt: r.pick(INTERESTING_U32),
          received: counter(r),
          proof: r.bytes(32),
        }),
        u32s: [1],
        u64s: [5],
      };
    case 3:
      return {
        bytes: encodeAccept({ received: counter(r), proof: r.bytes(32) }),
        u64s: [1],
      };
    case 4:
      return {
        bytes: encodeRefuse({
          code: r.int(128),
          reason: reasonText(r),
          mac: r.chance(0.5) ? r.bytes(32) : undefined,
        }),
      };
    case 5:
      return {
        bytes: encodeMessage({
          ack: counter(r),
          type: r.chance(0.8) ? r.pick(Object.values(MessageType)) : r.int(256),
          channel: r.pick([0, 1, 2, 3, r.u32()]),
          body: r.bytes(r.int(24)),
        }),
        u64s: [0],
        u32s: [9],
      };
    case 6:
      return { bytes: u32(r.u32()), u32s: [0] };
    default:
      return {
        bytes: concat(
          packetHeader(
            r.chance(0.5) ? FrameType.Data : FrameType.Control,
            counter(r),
          ),
          r.bytes(r.int(40)),
        ),
        u64s: [1],
      };
  }
}

function u64At(body: Uint8Array, at: number): bigint {
  return new DataView(body.buffer, body.byteOffset).getBigUint64(at);
}

/**
 * Runs `decode`; checks it accepts exactly when `shouldAccept` says, and
 * that an accepted value passes `verify`.
 */
function probe<T>(
  name: string,
  body: Uint8Array,
  shouldAccept: boolean,
  decode: (b: Uint8Array) => T,
  verify: (value: T) => void,
): boolean {
  let value: T;
  try {
    value = decode(body);
  } catch (error) {
    expectError(error, [ProtocolError]);
    check(
      !shouldAccept,
      `${name} refused a body the spec allows: ${(error as Error).message}`,
    );
    return false;
  }
  check(
    shouldAccept,
    `${name} accepted a body the spec does not allow (${body.length} bytes, type ${
      body[0]
    })`,
  );
  verify(value);
  return true;
}

function runDecode(c: FuzzCase): string {
  const b = c.input;
  const type = b[0];
  const accepted: string[] = [];
  const reencodes = (name: string, bytes: Uint8Array) =>
    check(
      equalBytes(bytes, b),
      `${name} does not re-encode to the bytes it decoded`,
    );
  if (
    probe("decodeHello", b, type === 1 && b.length === 50, decodeHello, (v) => {
      reencodes("hello", encodeHello(v));
    })
  ) accepted.push("hello");
  if (
    probe(
      "decodeChallenge",
      b,
      type === 2 && b.length === 34,
      decodeChallenge,
      (v) => {
        reencodes("challenge", encodeChallenge(v));
      },
    )
  ) accepted.push("challenge");
  if (
    probe(
      "decodeAuth",
      b,
      type === 3 && b.length === 45 && u64At(b, 5) <= SAFE,
      decodeAuth,
      (v) => {
        reencodes("auth", encodeAuth(v));
      },
    )
  ) accepted.push("auth");
  if (
    probe(
      "decodeAccept",
      b,
      type === 4 && b.length === 41 && u64At(b, 1) <= SAFE,
      decodeAccept,
      (v) => {
        reencodes("accept", encodeAccept(v));
      },
    )
  ) accepted.push("accept");
  const spec = specRefusal(b);
  if (
    probe("decodeRefuse", b, spec !== null, decodeRefuse, (v) => {
      check(
        spec !== null && v.code === spec.code,
        `decodeRefuse code ${v.code}, spec ${spec?.code}`,
      );
      check(
        (v.mac !== undefined) === spec.signed,
        "decodeRefuse MAC presence differs from the flag",
      );
      check(
        equalBytes(v.reasonBytes!, spec.reason),
        "decodeRefuse reason bytes differ from the spec's",
      );
      check(
        v.reason === utf8Text(spec.reason),
        "decodeRefuse reason text is not the reason bytes decoded",
      );
      reencodes("refuse", encodeRefuse(v));
    })
  ) accepted.push(spec!.signed ? "refuse+mac" : "refuse");
  if (
    probe(
      "decodeMessage",
      b,
      b.length >= 13 && u64At(b, 0) <= SAFE,
      decodeMessage,
      (v) => {
        reencodes("message", encodeMessage(v));
      },
    )
  ) accepted.push("message");
  if (
    probe(
      "packetCounter",
      b,
      b.length >= 9 && u64At(b, 1) <= SAFE,
      packetCounter,
      (v) => {
        check(
          BigInt(v) === u64At(b, 1),
          "packetCounter differs from the header's u64",
        );
      },
    )
  ) accepted.push("counter");
  if (
    probe("readU32Body", b, b.length === 4, readU32Body, (v) => {
      reencodes("u32", u32(v));
    })
  ) accepted.push("u32");
  return accepted.length ? accepted.join("+") : "refused";
}

function generateDecode(r: Rng): FuzzCase {
  const kind = r.int(100);
  if (kind < 15) return { input: validBody(r).bytes, aux: 0, origin: "valid" };
  if (kind < 90) {
    return { input: mutate(r, validBody(r), [], 3), aux: 0, origin: "mutated" };
  }
  const input = r.bytes(r.int(60));
  if (input.length > 0 && r.chance(0.7)) {
    input[0] = r.pick(Object.values(FrameType));
  }
  return { input, aux: 0, origin: "random" };
}

/** The decoder target. */
export const wireDecodeTarget: Target = {
  name: "wire.decode",
  description:
    "every wire.ts decoder on one body: accepts exactly the spec's layouts, throws only ProtocolError, re-encodes",
  weight: 20,
  timeoutMs: 1000,
  generate: generateDecode,
  run: runDecode,
};

function same(name: string, decoded: unknown, original: unknown) {
  if (!equalValue(decoded, original)) {
    fail(
      `${name}: decode(encode(x)) != x: ${preview(original)} came back as ${
        preview(decoded)
      }`,
    );
  }
}

function isWellFormed(text: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/
    .test(text);
}

function runRoundTrip(c: FuzzCase): string {
  const t = new Tape(c.input);
  const kind = t.int(8);
  switch (kind) {
    case 0: {
      const x = {
        version: t.int(256),
        sessionId: t.bytes(16),
        clientNonce: t.bytes(32),
      };
      same("hello", decodeHello(encodeHello(x)), x);
      return "hello";
    }
    case 1: {
      const x = { version: t.int(256), serverNonce: t.bytes(32) };
      same("challenge", decodeChallenge(encodeChallenge(x)), x);
      return "challenge";
    }
    case 2: {
      const x = { attempt: t.u32(), received: counter(t), proof: t.bytes(32) };
      same("auth", decodeAuth(encodeAuth(x)), x);
      return "auth";
    }
    case 3: {
      const x = { received: counter(t), proof: t.bytes(32) };
      same("accept", decodeAccept(encodeAccept(x)), x);
      return "accept";
    }
    case 4: {
      const code = t.int(128);
      const reason = reasonText(t) +
        (t.chance(0.3) ? "é".repeat(t.int(130)) : "");
      const mac = t.chance(0.5) ? t.bytes(32) : undefined;
      const body = encodeRefuse({ code, reason, mac });
      const back = decodeRefuse(body);
      const wire = refuseReasonBytes(reason);
      check(
        back.code === code,
        `refuse code ${code} came back as ${back.code}`,
      );
      check(
        back.reasonBytes!.length <= MAX_REFUSE_REASON_BYTES,
        `refuse reason of ${back.reasonBytes!.length} bytes`,
      );
      check(
        equalBytes(back.reasonBytes!, wire),
        "refuse reason bytes changed on the way",
      );
      if (isWellFormed(reason)) {
        check(
          reason.startsWith(back.reason),
          `refuse reason not cut on a character boundary: ${
            preview(back.reason.slice(-4))
          }`,
        );
      }
      check(
        (back.mac === undefined) === (mac === undefined) &&
          (!mac || equalBytes(back.mac!, mac)),
        "refuse MAC changed",
      );
      return wire.length < new TextEncoder().encode(reason).length
        ? "refuse cut"
        : "refuse";
    }
    case 5: {
      const x = {
        ack: counter(t),
        type: t.int(256),
        channel: t.u32(),
        body: t.bytes(t.int(48)),
      };
      same("message", decodeMessage(encodeMessage(x)), x);
      return "message";
    }
    case 6: {
      const value = counter(t);
      const back = readU64(new DataView(u64(value).buffer), 0);
      same("u64", back, value);
      const header = packetHeader(
        t.chance(0.5) ? FrameType.Data : FrameType.Control,
        value,
      );
      same("packet header", packetCounter(header), value);
      return "u64";
    }
    default: {
      const value = t.u32();
      same("u32", readU32Body(u32(value)), value);
      return "u32";
    }
  }
}

/** The round-trip target. */
export const wireRoundTripTarget: Target = {
  name: "wire.roundtrip",
  description:
    "decode(encode(x)) == x for random valid hello/challenge/auth/accept/refuse/message/counters",
  weight: 6,
  timeoutMs: 1000,
  generate: (r) => ({ input: r.bytes(8 + r.int(300)), aux: 0, origin: "tape" }),
  run: runRoundTrip,
};
