/**
 * openPacket under fuzz, with real keys: DATA and CONTROL frames sealed by
 * sealPacket (plaintexts around the 4096-byte switch between node:crypto
 * and WebCrypto, counters up to 2^53), then mutated. Whatever opens must be
 * exactly what the key holder would have sealed (re-sealing the plaintext
 * under the same counter gives the same bytes: nothing is malleable), the
 * opener must agree with an independent WebCrypto implementation of
 * section 5 in both directions, and the only exception is ProtocolError
 * for a header that cannot hold a counter.
 *
 * @module
 */

import {
  deriveSessionKeys,
  type SessionKeys,
} from "../../../src/transport/crypto.ts";
import {
  openPacket,
  type PacketType,
  sealPacket,
} from "../../../src/transport/packet.ts";
import { FrameType, ProtocolError } from "../../../src/transport/wire.ts";
import { be32, concat, equalBytes } from "../_bytes.ts";
import { check, expectError, type FuzzCase, type Target } from "../_engine.ts";
import { mutate, type Seed } from "../_mutate.ts";
import { Rng } from "../_rng.ts";
import { type SpecKeys, specKeys, specOpen } from "../_spec.ts";

const SAFE = 2n ** 53n - 1n;

/** A fixed session secret, so stored inputs reopen under the same keys. */
export const FUZZ_SECRET = {
  id: new Uint8Array(16).map((_, i) => 0x10 + i),
  passkey: new Uint8Array(32).map((_, i) => 0xa0 + i),
};

interface Ctx {
  client: SessionKeys;
  server: SessionKeys;
  spec: SpecKeys;
  seeds: Seed[];
}

const SIZES = [0, 1, 8, 13, 20, 100, 1000, 4095, 4096, 4097, 5000, 20_000];

async function setup(): Promise<Ctx> {
  const client = await deriveSessionKeys(FUZZ_SECRET, "client");
  const server = await deriveSessionKeys(FUZZ_SECRET, "server");
  const spec = await specKeys(FUZZ_SECRET.id, FUZZ_SECRET.passkey);
  const r = new Rng(1);
  const seeds: Seed[] = [];
  for (let i = 0; i < 240; i++) {
    const type: PacketType = i % 3 === 0 ? FrameType.Control : FrameType.Data;
    const size = type === FrameType.Control ? 8 : SIZES[i % SIZES.length];
    const counter = r.pick([0, 1, 2, 1000, 2 ** 32, 2 ** 53 - 1, r.u32()]);
    const frame = await sealPacket(client.send, type, counter, r.bytes(size));
    seeds.push({ bytes: frame.subarray(4), u64s: [1] });
  }
  return { client, server, spec, seeds };
}

function generate(r: Rng, ctx: Ctx): FuzzCase {
  const seed = r.pick(ctx.seeds);
  const kind = r.int(100);
  if (kind < 10) return { input: seed.bytes, aux: r.u32(), origin: "valid" };
  if (kind < 95) {
    return {
      input: mutate(r, seed, ctx.seeds.slice(0, 8).map((s) => s.bytes), 2),
      aux: r.u32(),
      origin: "mutated",
    };
  }
  const input = r.bytes(r.int(60));
  if (input.length) {
    input[0] = r.chance(0.5) ? FrameType.Data : FrameType.Control;
  }
  return { input, aux: r.u32(), origin: "random" };
}

async function run(c: FuzzCase, ctx: Ctx): Promise<string> {
  const body = c.input;
  const header = body[0];
  const type: PacketType =
    header === FrameType.Data || header === FrameType.Control
      ? header
      : (c.aux & 1 ? FrameType.Data : FrameType.Control);
  let plain: Uint8Array | null;
  try {
    plain = await openPacket(ctx.server.receive, type, body);
  } catch (error) {
    expectError(error, [ProtocolError]);
    const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
    check(
      body.length < 9 || view.getBigUint64(1) > SAFE,
      `openPacket threw ProtocolError on a header that holds a valid counter: ${
        (error as Error).message
      }`,
    );
    return "refused header";
  }
  check(body.length >= 9, "openPacket accepted a body shorter than its header");
  const spec = await specOpen(ctx.spec.clientToServer, body);
  if (plain === null) {
    check(
      spec === null || type !== header,
      "openPacket rejected a packet that opens by the spec",
    );
    return "rejected";
  }
  check(
    type === header,
    `a packet of type ${header} opened in the nonce space of type ${type}`,
  );
  check(
    spec !== null && equalBytes(spec, plain),
    "openPacket opened a packet the spec rejects, or to other bytes",
  );
  const counter = Number(
    new DataView(body.buffer, body.byteOffset).getBigUint64(1),
  );
  const resealed = await sealPacket(ctx.client.send, type, counter, plain);
  check(
    equalBytes(resealed, concat(be32(body.length), body)),
    "an opened packet is not what sealing its plaintext gives: malleable",
  );
  return type === FrameType.Data ? "opened data" : "opened control";
}

async function checks(ctx: Ctx): Promise<string[]> {
  const failures: string[] = [];
  const r = new Rng(3);
  for (const size of [...SIZES, 65_536, 65_536 + 13]) {
    for (const type of [FrameType.Data, FrameType.Control] as PacketType[]) {
      const plain = r.bytes(size);
      const counter = r.pick([0, 7, 2 ** 53 - 1]);
      const frame = await sealPacket(ctx.client.send, type, counter, plain);
      const length = new DataView(frame.buffer).getUint32(0);
      if (length !== frame.length - 4) {
        failures.push(
          `sealPacket framed ${length} for ${frame.length - 4} bytes`,
        );
      }
      const back = await openPacket(
        ctx.server.receive,
        type,
        frame.subarray(4),
      );
      if (!back || !equalBytes(back, plain)) {
        failures.push(`open(seal(x)) != x for ${size} bytes`);
      }
      const spec = await specOpen(ctx.spec.clientToServer, frame.subarray(4));
      if (!spec || !equalBytes(spec, plain)) {
        failures.push(`the spec cannot open a sealed packet of ${size} bytes`);
      }
      if (
        await openPacket(ctx.client.receive, type, frame.subarray(4)) !== null
      ) {
        failures.push("a packet opened under the other direction's key");
      }
    }
  }
  return failures;
}

/** The target. */
export const packetOpenTarget: Target<Ctx> = {
  name: "packet.open",
  description:
    "openPacket on mutated sealed DATA/CONTROL frames: opens only what re-seals identically, agrees with the spec, ProtocolError only",
  weight: 6,
  timeoutMs: 2000,
  setup,
  generate,
  run,
  checks,
};
