/**
 * The handshake under fuzz, over in-memory pipes with real connections.
 *
 * - handshake.hello: readHello (what the daemon routes by) on mutated
 *   client streams: a hello exactly when the first frame is one, else
 *   ProtocolError/FrameError; the hello frame re-encoded plus takeBuffered
 *   is exactly what was read (what the relay forwards).
 * - handshake.server: serverHandshake with a real session fed either
 *   mutated bytes of a recorded real client, or a live client that follows
 *   the protocol (spec proofs over the server's nonce) and then breaks it
 *   at one step (hello version/id, attempt, received count, proof, frame
 *   bytes, retired passkey, early end, stall). It must settle within its
 *   timeout, never throw, and answer exactly as section 4 says: the
 *   refusal code, signed or not, with a MAC that verifies per the spec,
 *   and a connection only for a valid, fresh, resumable proof.
 * - handshake.client: clientHandshake with a real session against a live
 *   fuzz server (valid challenge/accept by the spec, or refusals plain,
 *   signed and forged, versions, garbage, early end, stall) or mutated
 *   recorded server bytes. It must settle within its timeout, send a hello
 *   and auth that conform to the spec, succeed exactly on a valid accept,
 *   and be final only on a refusal signed with the session key.
 *
 * @module
 */

import {
  clientHandshake,
  encodeFrame,
  EternalConnection,
  FrameError,
  FrameReader,
  HandshakeRefusedError,
  ProtocolError,
  readHello,
  serverHandshake,
} from "../../../src/transport/mod.ts";
import {
  encodeAccept,
  encodeChallenge,
  encodeHello,
  encodeRefuse,
} from "../../../src/transport/wire.ts";
import { be32, be64, concat, equalBytes, utf8Bytes } from "../_bytes.ts";
import {
  check,
  expectError,
  fail,
  type FuzzCase,
  type Target,
} from "../_engine.ts";
import { chunks, mutate, type Seed } from "../_mutate.ts";
import { PipeClosedError, pipePair, ScriptedPipe } from "../_pipes.ts";
import { type Random, Rng, Tape } from "../_rng.ts";
import {
  clientProof,
  frame,
  refuseMac,
  serverProof,
  specFrames,
  type SpecKeys,
  specKeys,
  specRefusal,
} from "../_spec.ts";
import { FUZZ_SECRET } from "./packet.ts";

const SAFE = 2n ** 53n - 1n;
/** Refusal codes that end the session when signed (section 4, and 7). */
const FINAL_CODES = new Set([1, 3, 4, 7]);
/** A passkey the session had before a takeover (same id). */
const RETIRED_PASSKEY = new Uint8Array(32).map((_, i) => 0x55 ^ i);
const STALL_TIMEOUT_MS = 40;
const TIMEOUT_MS = 2000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** What a recorded real handshake (and a little data) put on the wire. */
interface Recording {
  client: Seed;
  server: Seed;
}

function seedOf(bytes: Uint8Array): Seed {
  const lengths: number[] = [];
  let at = 0;
  for (const body of specFrames(bytes).frames) {
    lengths.push(at);
    at += 4 + body.length;
  }
  return { bytes, lengths };
}

function sameId(id: Uint8Array): boolean {
  return equalBytes(id, FUZZ_SECRET.id);
}

/**
 * Runs a real client and server handshake over an in-memory pair, sends a
 * few bytes each way, and returns what each side wrote.
 */
export async function recordHandshake(): Promise<Recording> {
  const [a, b] = pipePair();
  const client = await EternalConnection.create(FUZZ_SECRET, "client");
  const server = await EternalConnection.create(FUZZ_SECRET, "server");
  try {
    const served = serverHandshake(b, (id) => sameId(id) ? server : undefined);
    await clientHandshake(client, a);
    if (await served !== server) {
      throw new Error("recording: the server refused");
    }
    await client.channel(1).write(utf8Bytes("ls -l\n"));
    await server.channel(1).read();
    await server.channel(1).write(utf8Bytes("total 0\n"));
    await client.channel(1).read();
    await sleep(30); // acks and a keepalive
    return {
      client: seedOf(concat(...a.written)),
      server: seedOf(concat(...b.written)),
    };
  } finally {
    client.fail(new Error("recorded"));
    server.fail(new Error("recorded"));
    a.close();
    b.close();
  }
}

// ---------------------------------------------------------------------------
// handshake.hello

interface HelloCtx {
  recording: Recording;
}

function randomHello(r: Random): Uint8Array {
  return encodeFrame(encodeHello({
    version: r.chance(0.9) ? 1 : r.int(256),
    sessionId: r.chance(0.5) ? FUZZ_SECRET.id : r.bytes(16),
    clientNonce: r.bytes(32),
  }));
}

function generateHello(r: Rng, ctx: HelloCtx): FuzzCase {
  const kind = r.int(100);
  const aux = r.u32();
  const recorded = ctx.recording.client;
  if (kind < 10) return { input: recorded.bytes, aux, origin: "recorded" };
  if (kind < 20) {
    return {
      input: concat(randomHello(r), r.bytes(r.int(80))),
      aux,
      origin: "valid",
    };
  }
  if (kind < 70) {
    return {
      input: mutate(r, recorded, [], 3),
      aux,
      origin: "mutated recording",
    };
  }
  if (kind < 95) {
    return {
      input: mutate(r, seedOf(randomHello(r)), [recorded.bytes], 3),
      aux,
      origin: "mutated hello",
    };
  }
  return { input: r.bytes(r.int(70)), aux, origin: "random" };
}

async function runHello(c: FuzzCase): Promise<string> {
  const pipe = new ScriptedPipe(chunks(new Rng(c.aux), c.input));
  const frames = new FrameReader(pipe);
  const spec = specFrames(c.input);
  const first = spec.frames[0];
  const isHello = first !== undefined && first[0] === 1 && first.length === 50;
  let read;
  try {
    read = await readHello(frames);
  } catch (error) {
    const name = expectError(error, [ProtocolError, FrameError]);
    check(
      !isHello,
      `readHello refused a stream that starts with a hello: ${
        (error as Error).message
      }`,
    );
    if (first === undefined) {
      const expected = spec.end === "clean" ? "ProtocolError" : "FrameError";
      check(
        name === expected,
        `readHello threw ${name} on a stream that ends ${spec.end} before any frame`,
      );
    } else {
      check(
        name === "ProtocolError",
        `readHello threw ${name} on a complete first frame`,
      );
    }
    return name;
  }
  check(isHello, "readHello accepted a first frame that is not a hello");
  check(
    read.hello.version === first[1],
    "hello version differs from the frame",
  );
  check(
    equalBytes(read.hello.sessionId, first.subarray(2, 18)),
    "hello session id differs from the frame",
  );
  check(
    equalBytes(read.hello.clientNonce, first.subarray(18, 50)),
    "hello nonce differs from the frame",
  );
  const relayed = concat(encodeFrame(read.body), frames.takeBuffered());
  check(
    equalBytes(relayed, c.input.subarray(0, pipe.delivered)),
    "the hello frame plus takeBuffered() is not what was read: a relay would alter the stream",
  );
  return read.hello.version === 1 ? "hello" : "hello, other version";
}

/** readHello target. */
export const helloTarget: Target<HelloCtx> = {
  name: "handshake.hello",
  description:
    "readHello on mutated client streams: exact hello or ProtocolError/FrameError; relayed bytes unchanged",
  weight: 8,
  timeoutMs: 2000,
  setup: async () => ({ recording: await recordHandshake() }),
  generate: generateHello,
  run: runHello,
};

// ---------------------------------------------------------------------------
// handshake.server

type LookupKind = "known" | "unknown" | "closed";

interface ServerCtx {
  recording: Recording;
  spec: SpecKeys;
  retiredSpec: SpecKeys;
  server: EternalConnection;
  closed: EternalConnection;
  retired: EternalConnection;
  made: EternalConnection[];
}

async function newServer(
  ctx: Pick<ServerCtx, "made">,
  passkey = FUZZ_SECRET.passkey,
) {
  const connection = await EternalConnection.create({
    id: FUZZ_SECRET.id,
    passkey,
  }, "server");
  ctx.made.push(connection);
  return connection;
}

async function setupServer(): Promise<ServerCtx> {
  const made: EternalConnection[] = [];
  const recording = await recordHandshake();
  const closed = await newServer({ made });
  closed.fail(new Error("ended before the fuzz"));
  return {
    recording,
    spec: await specKeys(FUZZ_SECRET.id, FUZZ_SECRET.passkey),
    retiredSpec: await specKeys(FUZZ_SECRET.id, RETIRED_PASSKEY),
    server: await newServer({ made }),
    closed,
    retired: await newServer({ made }, RETIRED_PASSKEY),
    made,
  };
}

function teardownServer(ctx: ServerCtx) {
  for (const connection of ctx.made) connection.fail(new Error("fuzz over"));
}

function lookupFor(ctx: ServerCtx, kind: LookupKind) {
  return (id: Uint8Array) => {
    if (!sameId(id) || kind === "unknown") return undefined;
    return kind === "closed" ? ctx.closed : ctx.server;
  };
}

/** What section 4 says the server answers to a client stream. */
interface ServerExpectation {
  challenge: boolean;
  refuse?: { code: number; signer: "session" | "retired" | null };
  accept?: boolean;
  /** The session must end (a verified claim of data never sent). */
  ends?: boolean;
  /** The hello as sent (for MACs), when there was one. */
  hello?: Uint8Array;
  auth?: Uint8Array;
}

interface ProofVerdicts {
  /** The auth's proof verifies under the session key / the retired key. */
  session: boolean;
  retired: boolean;
}

function expectServer(
  stream: Uint8Array,
  ended: boolean,
  lookup: LookupKind,
  attachedBefore: number,
  proof: ProofVerdicts,
): ServerExpectation {
  const spec = specFrames(stream);
  const [hello, auth] = spec.frames;
  const malformed = { code: 5, signer: null } as const;
  // A stream that stops before a whole frame: malformed if it ended or
  // broke, silence (the server's timeout) if it just waits.
  const short = (challenge: boolean): ServerExpectation =>
    spec.end === "bad-length" || (ended && spec.end === "cut") ||
      (ended && !challenge)
      ? { challenge, refuse: malformed }
      : { challenge };
  if (!hello) return short(false);
  if (hello[0] !== 1 || hello.length !== 50) {
    return { challenge: false, refuse: malformed };
  }
  const known = sameId(hello.subarray(2, 18)) && lookup !== "unknown";
  const open = known && lookup === "known";
  if (hello[1] !== 1) {
    return {
      challenge: false,
      refuse: { code: 3, signer: open ? "session" : null },
      hello,
    };
  }
  if (!known) {
    return { challenge: false, refuse: { code: 1, signer: null }, hello };
  }
  if (!open) {
    return { challenge: false, refuse: { code: 1, signer: "session" }, hello };
  }
  if (!auth) {
    const out = short(true);
    // A clean end right after the hello is a quiet goodbye, not malformed.
    if (ended && spec.end === "clean") delete out.refuse;
    return { ...out, hello };
  }
  const view = new DataView(auth.buffer, auth.byteOffset, auth.byteLength);
  if (auth[0] !== 3 || auth.length !== 45 || view.getBigUint64(5) > SAFE) {
    return { challenge: true, refuse: malformed, hello };
  }
  if (!proof.session) {
    return {
      challenge: true,
      refuse: proof.retired
        ? { code: 7, signer: "retired" }
        : { code: 2, signer: null },
      hello,
      auth,
    };
  }
  if (view.getUint32(1) <= attachedBefore) {
    return {
      challenge: true,
      refuse: { code: 6, signer: "session" },
      hello,
      auth,
    };
  }
  // The fuzzed server session never sends data: any count above 0 is
  // data never sent.
  if (view.getBigUint64(5) > 0n) {
    return {
      challenge: true,
      refuse: { code: 4, signer: "session" },
      ends: true,
      hello,
      auth,
    };
  }
  return { challenge: true, accept: true, hello, auth };
}

/** Checks one REFUSE body against an expectation; the label. */
async function checkRefusal(
  body: Uint8Array,
  expected: { code: number; signer: "session" | "retired" | null },
  keys: { session: SpecKeys; retired: SpecKeys },
  hello: Uint8Array | undefined,
  serverNonce: Uint8Array | null,
): Promise<string> {
  const refusal = specRefusal(body);
  check(
    refusal !== null,
    `the server sent a malformed REFUSE (${body.length} bytes)`,
  );
  check(
    refusal.code === expected.code,
    `REFUSE code ${refusal.code}, section 4 says ${expected.code}`,
  );
  check(
    refusal.signed === (expected.signer !== null),
    `REFUSE ${refusal.code} is ${
      refusal.signed ? "" : "not "
    }signed; section 4 says it ${expected.signer ? "is" : "is not"}`,
  );
  check(
    refusal.reason.length <= 200,
    `REFUSE reason of ${refusal.reason.length} bytes`,
  );
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(refusal.reason);
  } catch {
    fail("REFUSE reason is not UTF-8");
  }
  if (refusal.signed) {
    check(hello !== undefined, "a signed REFUSE without a hello to sign");
    const key = expected.signer === "retired"
      ? keys.retired.proof
      : keys.session.proof;
    const mac = await refuseMac(key, {
      version: hello[1],
      sessionId: hello.subarray(2, 18),
      clientNonce: hello.subarray(18, 50),
      serverNonce,
      code: refusal.code,
      reason: refusal.reason,
    });
    check(
      equalBytes(mac, refusal.mac!),
      `the MAC of REFUSE ${refusal.code} does not verify per section 4 (${
        serverNonce ? "with" : "without"
      } the server nonce)`,
    );
  }
  return `refuse ${refusal.code}${refusal.signed ? " signed" : ""}`;
}

/** Checks what the server wrote and returned against the expectation. */
async function checkServer(
  ctx: ServerCtx,
  expected: ServerExpectation,
  written: Uint8Array,
  result: EternalConnection | null,
  closedPipe: boolean,
  attempt: number,
): Promise<string> {
  const sent = specFrames(written);
  check(
    sent.end !== "bad-length",
    "the server wrote a frame of impossible length",
  );
  const frames = [...sent.frames];
  let serverNonce: Uint8Array | null = null;
  if (expected.challenge) {
    const challenge = frames.shift();
    check(
      challenge !== undefined && challenge[0] === 2 &&
        challenge.length === 34 && challenge[1] === 1,
      `expected a CHALLENGE (version 1), got ${
        challenge
          ? `type ${challenge[0]}, ${challenge.length} bytes`
          : "nothing"
      }`,
    );
    serverNonce = challenge.subarray(2);
  }
  const keys = { session: ctx.spec, retired: ctx.retiredSpec };
  if (expected.refuse) {
    const body = frames.shift();
    check(
      body !== undefined,
      `expected REFUSE ${expected.refuse.code}, the server sent nothing more`,
    );
    check(
      body[0] === 5,
      `expected REFUSE ${expected.refuse.code}, got a frame of type ${body[0]}`,
    );
    const label = await checkRefusal(
      body,
      expected.refuse,
      keys,
      expected.hello,
      serverNonce,
    );
    check(frames.length === 0, "the server wrote frames after its REFUSE");
    check(
      result === null,
      "serverHandshake refused, yet returned a connection",
    );
    check(closedPipe, "the server left a refused pipe open");
    if (expected.ends) {
      check(
        ctx.server.isClosed,
        "a verified claim of unsent data did not end the session",
      );
    }
    return label;
  }
  if (expected.accept) {
    const accept = frames.shift();
    check(
      accept !== undefined && accept[0] === 4 && accept.length === 41,
      `expected an ACCEPT, got ${accept ? `type ${accept[0]}` : "nothing"}`,
    );
    check(
      result === ctx.server,
      "a valid, fresh auth did not return the session",
    );
    check(
      ctx.server.attachedAttempt === attempt,
      `attached attempt ${ctx.server.attachedAttempt}, sent ${attempt}`,
    );
    const hello = expected.hello!;
    const auth = expected.auth!;
    const view = new DataView(accept.buffer, accept.byteOffset);
    const good = await serverProof(ctx.spec.proof, {
      sessionId: hello.subarray(2, 18),
      clientNonce: hello.subarray(18, 50),
      serverNonce: serverNonce!,
      attempt,
      clientReceived: new DataView(auth.buffer, auth.byteOffset).getBigUint64(
        5,
      ),
    }, view.getBigUint64(1));
    check(
      equalBytes(good, accept.subarray(9)),
      "the ACCEPT proof does not verify per section 4",
    );
    return "accept";
  }
  check(
    frames.length === 0,
    `the server sent an unexpected frame of type ${frames[0]?.[0]}`,
  );
  check(
    result === null,
    "serverHandshake returned a connection without accepting",
  );
  check(closedPipe, "the server left the pipe open after giving up");
  return expected.challenge ? "challenge, then silence" : "silence";
}

/** Replays mutated recorded client bytes; the server can never accept them. */
async function runServerReplay(
  c: FuzzCase,
  ctx: ServerCtx,
  signal: AbortSignal,
): Promise<string> {
  const plan = new Rng(c.aux);
  const lookup: LookupKind = plan.pick([
    "known",
    "known",
    "known",
    "unknown",
    "closed",
  ]);
  const stall = plan.chance(0.02);
  const bytes = c.input.subarray(1);
  const pipe = new ScriptedPipe(chunks(plan, bytes), { stall });
  signal.addEventListener("abort", () => pipe.close());
  const attachedBefore = ctx.server.attachedAttempt;
  const result = await serverHandshake(pipe, lookupFor(ctx, lookup), {
    timeoutMs: stall ? STALL_TIMEOUT_MS : TIMEOUT_MS,
    retired: () => [ctx.retired],
  });
  if (result) result.detach("fuzz case over");
  const expected = expectServer(bytes, !stall, lookup, attachedBefore, {
    session: false,
    retired: false,
  });
  const label = await checkServer(
    ctx,
    expected,
    concat(...pipe.written),
    result,
    pipe.closed,
    0,
  );
  return `replay: ${label}`;
}

/** A client that follows the protocol, then breaks it where the tape says. */
async function runServerLive(
  c: FuzzCase,
  ctx: ServerCtx,
  signal: AbortSignal,
): Promise<string> {
  const t = new Tape(c.input.subarray(1));
  const lookup: LookupKind = t.chance(0.9)
    ? "known"
    : t.chance(0.5)
    ? "unknown"
    : "closed";
  const stall = t.chance(0.015);
  const [client, serverEnd] = pipePair();
  signal.addEventListener("abort", () => {
    client.close();
    serverEnd.close();
  });
  const attachedBefore = ctx.server.attachedAttempt;
  const serving = serverHandshake(serverEnd, lookupFor(ctx, lookup), {
    timeoutMs: stall ? STALL_TIMEOUT_MS : TIMEOUT_MS,
    retired: () => [ctx.retired],
  });
  let ended = false;
  let attempt = 0;
  const proofs: ProofVerdicts = { session: false, retired: false };
  const send = async (bytes: Uint8Array) => {
    for (const piece of chunks(t, bytes)) {
      try {
        await client.write(piece);
      } catch (error) {
        if (!(error instanceof PipeClosedError)) throw error;
      }
    }
  };
  // Ends the stream unless it is meant to stall; a stream whose frame is
  // incomplete must end, or the server would wait out its timeout.
  const finish = () => {
    if (!stall) {
      client.shutdown();
      ended = true;
    }
  };
  try {
    if (stall) {
      // Part of a hello (a strict prefix), then silence: only the
      // server's own deadline can end this, and it must say nothing.
      const helloFrame = encodeFrame(
        encodeHello({
          version: 1,
          sessionId: FUZZ_SECRET.id,
          clientNonce: t.bytes(32),
        }),
      );
      await send(helloFrame.subarray(0, t.int(helloFrame.length)));
      const result = await serving;
      const closedPipe = serverEnd.closed;
      if (result) result.detach("fuzz case over");
      const expected = expectServer(
        concat(...client.written),
        false,
        lookup,
        attachedBefore,
        proofs,
      );
      const label = await checkServer(
        ctx,
        expected,
        concat(...serverEnd.written),
        result,
        closedPipe,
        0,
      );
      return `stalled: ${label}`;
    }
    // HELLO
    const clientNonce = t.bytes(32);
    const hello = {
      version: 1,
      sessionId: FUZZ_SECRET.id.slice(),
      clientNonce,
    };
    const helloEdit = t.int(20);
    if (helloEdit === 1) hello.version = t.int(256);
    if (helloEdit === 2) hello.sessionId[t.int(16)] ^= 1 + t.int(255);
    let helloFrame = encodeFrame(encodeHello(hello));
    if (helloEdit === 3) helloFrame = mutate(t, seedOf(helloFrame), [], 2);
    await send(helloFrame);
    if (helloEdit === 4 || specFrames(helloFrame).frames.length === 0) finish();
    // Each reply is raced against the server settling: a server that
    // gives up without closing the pipe must show as a failure, not hang.
    const replies = new FrameReader(client);
    const SETTLED = Symbol("settled");
    const settled = serving.then(() => SETTLED);
    let pending: Promise<Uint8Array | null> | null = null;
    const reply = async (): Promise<Uint8Array | null> => {
      pending ??= replies.next().catch(() => null);
      const answer = await Promise.race([pending, settled]);
      if (typeof answer === "symbol") return null;
      pending = null;
      return answer;
    };
    const first = await reply();
    if (first && first[0] === 2 && first.length === 34 && !ended) {
      // AUTH, with a real proof over the server's nonce.
      const serverNonce = first.subarray(2).slice();
      const pick = t.int(20);
      attempt = pick === 1
        ? attachedBefore
        : pick === 2
        ? 0
        : pick === 3
        ? 0xffff_ffff
        : pick === 4
        ? Math.max(0, attachedBefore - t.int(3))
        : attachedBefore + 1 + (t.chance(0.1) ? t.int(1000) : 0);
      attempt = Math.min(attempt, 0xffff_ffff);
      const receivedPick = t.int(40);
      const received = receivedPick === 1
        ? 1n + BigInt(t.int(5))
        : receivedPick === 2
        ? SAFE
        : receivedPick === 3
        ? SAFE + 1n
        : 0n;
      const useRetired = t.int(30) === 0;
      const proofInput = {
        sessionId: hello.sessionId,
        clientNonce,
        serverNonce,
        attempt,
        clientReceived: received,
      };
      const proof = await clientProof(
        useRetired ? ctx.retiredSpec.proof : ctx.spec.proof,
        proofInput,
      );
      let auth = concat(
        new Uint8Array([3]),
        be32(attempt),
        be64(received),
        proof,
      );
      const authEdit = t.int(25);
      if (authEdit === 1) auth[13 + t.int(32)] ^= 1 << t.int(8);
      if (authEdit === 2) auth.set(be32(t.u32()), 1);
      if (authEdit === 3) auth.set(be64(BigInt(t.u32())), 5);
      if (authEdit === 4) auth = auth.subarray(0, t.int(auth.length));
      if (authEdit === 5) auth = concat(auth, t.bytes(1 + t.int(4)));
      if (authEdit === 6) auth[0] = t.pick([1, 2, 4, 5, 0x10, 0x11]);
      let authFrame = auth.length > 0 ? frame(auth) : new Uint8Array();
      if (authEdit === 7) authFrame = mutate(t, seedOf(authFrame), [], 2);
      if (t.int(10) === 0) authFrame = concat(authFrame, t.bytes(t.int(40)));
      if (authEdit !== 8) await send(authFrame);
      // What the server will verify: the fields exactly as they went.
      const [helloSent, sent] = specFrames(concat(...client.written)).frames;
      if (
        sent && sent[0] === 3 && sent.length === 45 && helloSent.length === 50
      ) {
        const view = new DataView(sent.buffer, sent.byteOffset);
        const asSent = {
          sessionId: helloSent.subarray(2, 18),
          clientNonce: helloSent.subarray(18, 50),
          serverNonce,
          attempt: view.getUint32(1),
          clientReceived: view.getBigUint64(5),
        };
        attempt = asSent.attempt;
        proofs.session = equalBytes(
          await clientProof(ctx.spec.proof, asSent),
          sent.subarray(13),
        );
        proofs.retired = equalBytes(
          await clientProof(ctx.retiredSpec.proof, asSent),
          sent.subarray(13),
        );
      }
      if (authEdit === 8 || authEdit === 9 || !sent) finish();
      // An attached pipe's ACCEPT comes from the session's writer, after
      // serverHandshake has returned: wait for it before looking.
      const answer = await reply();
      if (answer === null && pending && await serving) await pending;
    }
    const result = await serving;
    const closedPipe = serverEnd.closed;
    if (result) result.detach("fuzz case over");
    const expected = expectServer(
      concat(...client.written),
      ended,
      lookup,
      attachedBefore,
      proofs,
    );
    const label = await checkServer(
      ctx,
      expected,
      concat(...serverEnd.written),
      result,
      closedPipe,
      attempt,
    );
    return `live: ${label}`;
  } finally {
    client.close();
    serverEnd.close();
    if (ctx.server.isClosed || ctx.server.attachedAttempt >= 0xffff_ff00) {
      ctx.server = await newServer(ctx);
    }
  }
}

function generateServer(r: Rng, ctx: ServerCtx): FuzzCase {
  if (r.chance(0.3)) {
    const recorded = ctx.recording.client;
    const input = r.chance(0.1) ? recorded.bytes : mutate(r, recorded, [], 3);
    return {
      input: concat(new Uint8Array([0]), input),
      aux: r.u32(),
      origin: "mutated recording",
    };
  }
  return {
    input: concat(new Uint8Array([1]), r.bytes(48 + r.int(64))),
    aux: 0,
    origin: "live client tape",
  };
}

/** serverHandshake target. */
export const serverTarget: Target<ServerCtx> = {
  name: "handshake.server",
  description:
    "serverHandshake vs mutated recorded clients and a live spec client breaking one step: exact refusals, signed MACs, timely",
  weight: 1.5,
  timeoutMs: TIMEOUT_MS + 1000,
  setup: setupServer,
  teardown: teardownServer,
  generate: generateServer,
  run: (c, ctx, signal) =>
    c.input[0] === 0
      ? runServerReplay(c, ctx, signal)
      : runServerLive(c, ctx, signal),
};

// ---------------------------------------------------------------------------
// handshake.client

interface ClientCtx {
  recording: Recording;
  spec: SpecKeys;
  client: EternalConnection;
  /** Same session, short handshake timeout: for stalling servers. */
  hasty: EternalConnection;
  lastAttempt: Map<EternalConnection, number>;
  made: EternalConnection[];
}

async function setupClient(): Promise<ClientCtx> {
  const made: EternalConnection[] = [];
  const make = async (handshakeTimeoutMs: number) => {
    const connection = await EternalConnection.create(FUZZ_SECRET, "client", {
      handshakeTimeoutMs,
    });
    made.push(connection);
    return connection;
  };
  return {
    recording: await recordHandshake(),
    spec: await specKeys(FUZZ_SECRET.id, FUZZ_SECRET.passkey),
    client: await make(TIMEOUT_MS),
    hasty: await make(STALL_TIMEOUT_MS),
    lastAttempt: new Map(),
    made,
  };
}

const CLIENT_ERRORS = [
  HandshakeRefusedError,
  ProtocolError,
  FrameError,
  Error,
  PipeClosedError,
];
const PLAIN_ERROR =
  /^(connection closed during handshake|handshake timed out after \d+ ms|attempt abandoned|the session ended during the handshake|attempt \d+ was overtaken by attempt \d+)$/;

type Settled = { ok: true } | { ok: false; error: unknown };

function settle(promise: Promise<void>): Promise<Settled> {
  return promise.then(
    () => ({ ok: true as const }),
    (error) => ({ ok: false as const, error }),
  );
}

/** Checks the client's first frame is the spec's HELLO; its nonce. */
function checkClientHello(body: Uint8Array | null): Uint8Array {
  check(body !== null, "the client sent no hello");
  check(
    body[0] === 1 && body.length === 50,
    `the client's hello is ${body.length} bytes of type ${body[0]}`,
  );
  check(body[1] === 1, `the client's hello says version ${body[1]}`);
  check(
    sameId(body.subarray(2, 18)),
    "the client's hello names another session",
  );
  return body.slice(18);
}

function reasonBytes(t: Random): Uint8Array {
  const pieces = [
    utf8Bytes("session gone"),
    utf8Bytes(" "),
    utf8Bytes("é"),
    new Uint8Array([0x0a]),
    new Uint8Array([0x1b, 0x5b, 0x32, 0x4a]),
    new Uint8Array([0xff, 0xfe]),
    new Uint8Array([0xc3]),
    new Uint8Array(60).fill(0x41),
  ];
  const parts: Uint8Array[] = [];
  for (let i = t.int(t.chance(0.7) ? 3 : 12); i > 0; i--) {
    parts.push(t.pick(pieces));
  }
  return concat(...parts);
}

interface SentRefusal {
  code: number;
  /** The MAC verifies with the session key over what the client sent. */
  genuine: boolean;
}

/** Builds a REFUSE as a server (or an attacker) might. */
async function makeRefusal(
  t: Random,
  ctx: ClientCtx,
  clientNonce: Uint8Array,
  serverNonce: Uint8Array | null,
): Promise<{ body: Uint8Array; sent: SentRefusal }> {
  const code = t.chance(0.8) ? 1 + t.int(7) : t.int(128);
  const reason = reasonBytes(t);
  const how = t.int(4); // 0 plain, 1 signed, 2 forged MAC, 3 signed over the wrong nonces
  if (how === 0) {
    return {
      body: concat(new Uint8Array([5, code]), reason),
      sent: { code, genuine: false },
    };
  }
  let mac: Uint8Array;
  if (how === 2) mac = t.bytes(32);
  else {
    mac = await refuseMac(ctx.spec.proof, {
      version: 1,
      sessionId: FUZZ_SECRET.id,
      clientNonce: how === 3 ? t.bytes(32) : clientNonce,
      serverNonce: how === 3 ? (serverNonce ? null : t.bytes(32)) : serverNonce,
      code,
      reason,
    });
  }
  return {
    body: encodeRefuse({ code, reason: "", reasonBytes: reason, mac }),
    sent: { code, genuine: how === 1 },
  };
}

/** What the fuzz server did, for the oracle. */
interface ServerScript {
  /** The client must succeed. */
  accepts: boolean;
  /** A refusal it sent, if the client must stop on it. */
  refusal?: SentRefusal;
  /** A verified accept claiming data the client never sent. */
  cannotResume?: boolean;
  /** An unauthenticated refusal the client makes of a bad step. */
  implied?: number;
}

async function runClientLive(
  c: FuzzCase,
  ctx: ClientCtx,
  signal: AbortSignal,
): Promise<string> {
  const t = new Tape(c.input.subarray(1));
  const stall = t.chance(0.015);
  const connection = stall ? ctx.hasty : ctx.client;
  const [clientEnd, server] = pipePair();
  signal.addEventListener("abort", () => {
    clientEnd.close();
    server.close();
  });
  const handshake = settle(clientHandshake(connection, clientEnd));
  const script: ServerScript = { accepts: false };
  const write = async (bytes: Uint8Array) => {
    for (const piece of chunks(t, bytes)) {
      try {
        await server.write(piece);
      } catch (error) {
        if (!(error instanceof PipeClosedError)) throw error;
      }
    }
  };
  const stop = () => {
    if (!stall) server.shutdown();
  };
  let attempt = 0;
  try {
    const frames = new FrameReader(server);
    const clientNonce = checkClientHello(await frames.next());
    if (stall) {
      const challenge = encodeFrame(
        encodeChallenge({ version: 1, serverNonce: t.bytes(32) }),
      );
      await write(challenge.subarray(0, t.int(challenge.length)));
      const settled = await handshake;
      check(!settled.ok, "clientHandshake succeeded against a silent server");
      expectError(settled.error, [Error], /^handshake timed out after \d+ ms$/);
      return "stalled: timed out";
    }
    const step1 = t.int(40);
    let serverNonce: Uint8Array | null = null;
    if (step1 < 30) {
      serverNonce = t.bytes(32);
      await write(encodeFrame(encodeChallenge({ version: 1, serverNonce })));
    } else if (step1 < 32) {
      await write(
        encodeFrame(
          encodeChallenge({
            version: 2 + t.int(254),
            serverNonce: t.bytes(32),
          }),
        ),
      );
      script.implied = 3;
    } else if (step1 < 36) {
      const refusal = await makeRefusal(t, ctx, clientNonce, null);
      await write(frame(refusal.body));
      script.refusal = refusal.sent;
    } else if (step1 < 38) {
      await write(
        mutate(
          t,
          seedOf(
            encodeFrame(
              encodeChallenge({ version: 1, serverNonce: t.bytes(32) }),
            ),
          ),
          [],
          2,
        ),
      );
      stop();
    } else {
      stop();
    }
    if (serverNonce) {
      const auth = await frames.next();
      check(auth !== null, "the client sent no auth after a valid challenge");
      check(
        auth[0] === 3 && auth.length === 45,
        `the client's auth is ${auth.length} bytes of type ${auth[0]}`,
      );
      const view = new DataView(auth.buffer, auth.byteOffset);
      attempt = view.getUint32(1);
      const received = view.getBigUint64(5);
      const previous = ctx.lastAttempt.get(connection) ?? 0;
      check(
        attempt > previous,
        `the client's attempt ${attempt} is not above its previous ${previous}`,
      );
      ctx.lastAttempt.set(connection, attempt);
      check(
        received === BigInt(connection.receivedCount),
        `the client claims ${received} packets received`,
      );
      const proofInput = {
        sessionId: FUZZ_SECRET.id,
        clientNonce,
        serverNonce,
        attempt,
        clientReceived: received,
      };
      const expectedProof = await clientProof(ctx.spec.proof, proofInput);
      check(
        equalBytes(expectedProof, auth.subarray(13)),
        "the client's proof does not verify per section 4",
      );
      const step2 = t.int(40);
      if (step2 < 28 || step2 === 28) {
        const serverReceived = step2 === 28 ? 1n + BigInt(t.int(9)) : 0n;
        const proof = await serverProof(
          ctx.spec.proof,
          proofInput,
          serverReceived,
        );
        await write(
          encodeFrame(
            encodeAccept({ received: Number(serverReceived), proof }),
          ),
        );
        if (t.int(8) === 0) {
          await write(concat(frame(t.bytes(1 + t.int(30))), t.bytes(t.int(9))));
        }
        if (serverReceived === 0n) script.accepts = true;
        else script.cannotResume = true;
      } else if (step2 < 31) {
        const proof = t.bytes(32);
        await write(encodeFrame(encodeAccept({ received: 0, proof })));
        script.implied = 2;
      } else if (step2 < 36) {
        const refusal = await makeRefusal(t, ctx, clientNonce, serverNonce);
        await write(frame(refusal.body));
        script.refusal = refusal.sent;
      } else if (step2 < 38) {
        const proof = await serverProof(ctx.spec.proof, proofInput, 0n);
        const valid = encodeAccept({ received: 0, proof });
        const mutated = mutate(t, seedOf(encodeFrame(valid)), [], 2);
        await write(mutated);
        stop();
        // An edit may leave the accept intact (junk after it, a no-op swap).
        const first = specFrames(mutated).frames[0];
        if (first && equalBytes(first, valid)) script.accepts = true;
      } else {
        stop();
      }
    }
    const settled = await handshake;
    return checkClient(settled, script, connection, attempt, "live");
  } finally {
    if (connection.attachedAttempt > 0) connection.detach("fuzz case over");
    clientEnd.close();
    server.close();
  }
}

function checkClient(
  settled: Settled,
  script: ServerScript,
  connection: EternalConnection,
  attempt: number,
  mode: string,
): string {
  if (settled.ok) {
    check(script.accepts, "clientHandshake succeeded without a valid ACCEPT");
    check(
      connection.attachedAttempt === attempt,
      `attached attempt ${connection.attachedAttempt}, not ${attempt}`,
    );
    return `${mode}: attached`;
  }
  const error = settled.error;
  const name = expectError(
    error,
    CLIENT_ERRORS,
    error instanceof Error && Object.getPrototypeOf(error) === Error.prototype
      ? PLAIN_ERROR
      : undefined,
  );
  check(
    !script.accepts,
    `clientHandshake failed on a valid ACCEPT: ${name}: ${
      (error as Error).message
    }`,
  );
  if (error instanceof HandshakeRefusedError) {
    if (error.authenticated) {
      check(
        script.cannotResume || script.refusal?.genuine,
        `an unauthenticated REFUSE ${error.code} was taken as authenticated`,
      );
    }
    if (error.final) {
      check(
        script.cannotResume ||
          (script.refusal?.genuine && FINAL_CODES.has(script.refusal.code)),
        `REFUSE ${error.code} was final without a valid signature`,
      );
    }
    if (script.refusal) {
      check(
        error.code === script.refusal.code,
        `REFUSE ${script.refusal.code} surfaced as code ${error.code}`,
      );
      check(
        error.authenticated === script.refusal.genuine,
        `a ${
          script.refusal.genuine ? "genuine" : "forged or plain"
        } REFUSE was ${error.authenticated ? "" : "not "}authenticated`,
      );
      check(
        error.final ===
          (script.refusal.genuine && FINAL_CODES.has(script.refusal.code)),
        "finality differs from section 4",
      );
      return `${mode}: refused ${error.code}${
        error.authenticated ? " signed" : ""
      }`;
    }
    if (script.cannotResume) {
      check(
        error.code === 4 && error.final,
        "a verified accept of unsent data did not end the session",
      );
      return `${mode}: cannot resume`;
    }
    if (script.implied !== undefined) {
      check(
        error.code === script.implied && !error.authenticated,
        `expected an unauthenticated refusal ${script.implied}`,
      );
      return `${mode}: implied ${error.code}`;
    }
    check(!error.authenticated, "an authenticated refusal from garbage");
    return `${mode}: refused ${error.code}`;
  }
  check(
    !script.refusal && !script.cannotResume,
    `a REFUSE surfaced as ${name}: ${(error as Error).message}`,
  );
  return `${mode}: ${name}`;
}

async function runClientReplay(
  c: FuzzCase,
  ctx: ClientCtx,
  signal: AbortSignal,
): Promise<string> {
  const plan = new Rng(c.aux);
  const stall = plan.chance(0.02);
  const connection = stall ? ctx.hasty : ctx.client;
  const bytes = c.input.subarray(1);
  const pipe = new ScriptedPipe(chunks(plan, bytes), { stall });
  signal.addEventListener("abort", () => pipe.close());
  const settled = await settle(clientHandshake(connection, pipe));
  try {
    const written = specFrames(concat(...pipe.written)).frames;
    checkClientHello(written[0] ?? null);
    check(pipe.closed, "the client left a failed pipe open");
    // Recorded server bytes answer another nonce: nothing may verify.
    check(!settled.ok, "clientHandshake accepted a replayed server");
    return checkClient(settled, { accepts: false }, connection, 0, "replay");
  } finally {
    if (settled.ok) connection.detach("fuzz case over");
  }
}

function generateClient(r: Rng, ctx: ClientCtx): FuzzCase {
  if (r.chance(0.25)) {
    const recorded = ctx.recording.server;
    const input = r.chance(0.1) ? recorded.bytes : mutate(r, recorded, [], 3);
    return {
      input: concat(new Uint8Array([0]), input),
      aux: r.u32(),
      origin: "mutated recording",
    };
  }
  return {
    input: concat(new Uint8Array([1]), r.bytes(32 + r.int(64))),
    aux: 0,
    origin: "live server tape",
  };
}

/** clientHandshake target. */
export const clientTarget: Target<ClientCtx> = {
  name: "handshake.client",
  description:
    "clientHandshake vs a live spec server (refusals plain/signed/forged, bad proofs, garbage, stalls) and mutated recordings",
  weight: 1.5,
  timeoutMs: TIMEOUT_MS + 1000,
  setup: setupClient,
  teardown: (ctx) => {
    for (const connection of ctx.made) connection.fail(new Error("fuzz over"));
  },
  generate: generateClient,
  run: (c, ctx, signal) =>
    c.input[0] === 0
      ? runClientReplay(c, ctx, signal)
      : runClientLive(c, ctx, signal),
};
