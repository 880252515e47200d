/**
 * The handshake that opens every connection and reconnection:
 *
 *     client -> HELLO(version, session id, client nonce)      (clear: routable)
 *     server -> CHALLENGE(version, server nonce)  | REFUSE
 *     client -> AUTH(client received, client proof)
 *     server -> ACCEPT(server received, server proof) | REFUSE
 *
 * Proofs are HMACs over both fresh nonces under a key derived from the
 * passkey, so nothing secret crosses the wire and a recorded handshake is
 * useless later. The received counts ride inside the proofs, so the resume
 * point cannot be forged either.
 *
 * @module
 */

import { errorMessage, logger } from "../log.ts";
import { CannotResumeError } from "./backed_writer.ts";
import type { EternalConnection } from "./connection.ts";
import { prove, verifyProof } from "./crypto.ts";
import { encodeFrame, FrameError, FrameReader } from "./frame.ts";
import { type BytePipe, closeQuietly, writeAll } from "./pipe.ts";
import { toHex } from "./session_secret.ts";
import {
  decodeChallenge,
  decodeHello,
  decodeProof,
  decodeRefuse,
  encodeChallenge,
  encodeHello,
  encodeProof,
  encodeRefuse,
  encodeText,
  FrameType,
  HANDSHAKE_NONCE_BYTES,
  type Hello,
  PROTOCOL_VERSION,
  ProtocolError,
  RefuseCode,
  u64,
} from "./wire.ts";

const log = logger("handshake");

const CLIENT_LABEL = encodeText("et/1 client proof");
const SERVER_LABEL = encodeText("et/1 server proof");

/** The other end said no; retrying the same way cannot help. */
export class HandshakeRefusedError extends Error {
  override name = "HandshakeRefusedError";
  /** A {@link RefuseCode}. */
  readonly code: number;
  /** Makes a refusal error with its code. */
  constructor(code: number, message: string) {
    super(message);
    this.code = code;
  }
}

/** A one-line explanation of a refusal code, for people. */
export function describeRefusal(code: number, reason: string): string {
  switch (code) {
    case RefuseCode.UnknownSession:
      return "the server does not know this session (it ended, or the server restarted)";
    case RefuseCode.BadProof:
      return "authentication failed: wrong passkey";
    case RefuseCode.VersionMismatch:
      return `protocol version mismatch: ${reason}`;
    case RefuseCode.CannotResume:
      return `cannot resume: ${reason}`;
    default:
      return `refused: ${reason || "malformed handshake"}`;
  }
}

/** Rejects with `message` and closes `pipe` if `task` takes over `ms`. */
async function bounded<T>(
  pipe: BytePipe,
  ms: number,
  task: Promise<T>,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      closeQuietly(pipe);
      reject(new Error(`handshake timed out after ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([task, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function nextOrThrow(frames: FrameReader): Promise<Uint8Array> {
  const body = await frames.next();
  if (body === null) throw new Error("connection closed during handshake");
  if (body[0] === FrameType.Refuse) {
    const refusal = decodeRefuse(body);
    throw new HandshakeRefusedError(
      refusal.code,
      describeRefusal(refusal.code, refusal.reason),
    );
  }
  return body;
}

function proofParts(
  label: Uint8Array,
  hello: Hello,
  serverNonce: Uint8Array,
  counts: number[],
): Uint8Array[] {
  return [
    label,
    new Uint8Array([PROTOCOL_VERSION]),
    hello.sessionId,
    hello.clientNonce,
    serverNonce,
    ...counts.map(u64),
  ];
}

/**
 * Runs the client side on a fresh pipe and, on success, attaches the pipe
 * to `connection`. Throws HandshakeRefusedError when the server refuses,
 * other errors when the pipe fails. `signal` abandons the attempt.
 */
export async function clientHandshake(
  connection: EternalConnection,
  pipe: BytePipe,
  signal?: AbortSignal,
  onProving?: () => void,
): Promise<void> {
  const abandon = () => closeQuietly(pipe);
  signal?.addEventListener("abort", abandon);
  try {
    await bounded(
      pipe,
      connection.options.handshakeTimeoutMs,
      (async () => {
        const hello: Hello = {
          version: PROTOCOL_VERSION,
          sessionId: connection.sessionId,
          clientNonce: crypto.getRandomValues(
            new Uint8Array(HANDSHAKE_NONCE_BYTES),
          ),
        };
        await writeAll(pipe, encodeFrame(encodeHello(hello)));
        const frames = new FrameReader(pipe);
        const challenge = decodeChallenge(await nextOrThrow(frames));
        if (challenge.version !== PROTOCOL_VERSION) {
          throw new HandshakeRefusedError(
            RefuseCode.VersionMismatch,
            describeRefusal(
              RefuseCode.VersionMismatch,
              `server speaks ${challenge.version}, client ${PROTOCOL_VERSION}`,
            ),
          );
        }
        if (signal?.aborted) throw new Error("attempt abandoned");
        onProving?.();
        // No packet may be counted on an old pipe after this number is sent.
        connection.detach("reconnecting");
        const received = connection.receivedCount;
        const proof = await prove(
          connection.keys.auth,
          proofParts(CLIENT_LABEL, hello, challenge.serverNonce, [received]),
        );
        await writeAll(
          pipe,
          encodeFrame(encodeProof(FrameType.Auth, { received, proof })),
        );
        const accept = decodeProof(FrameType.Accept, await nextOrThrow(frames));
        const genuine = await verifyProof(
          connection.keys.auth,
          proofParts(SERVER_LABEL, hello, challenge.serverNonce, [
            received,
            accept.received,
          ]),
          accept.proof,
        );
        if (!genuine) {
          throw new HandshakeRefusedError(
            RefuseCode.BadProof,
            "the server could not prove it knows the passkey",
          );
        }
        if (signal?.aborted) throw new Error("attempt abandoned");
        if (received !== connection.receivedCount) {
          throw new Error("received count moved during handshake");
        }
        try {
          connection.attach(pipe, frames, accept.received);
        } catch (error) {
          if (error instanceof CannotResumeError) {
            throw new HandshakeRefusedError(
              RefuseCode.CannotResume,
              describeRefusal(RefuseCode.CannotResume, error.message),
            );
          }
          throw error;
        }
      })(),
    );
  } catch (error) {
    closeQuietly(pipe);
    throw error;
  } finally {
    signal?.removeEventListener("abort", abandon);
  }
}

/** Where a server finds the session a hello names. */
export type SessionLookup = (
  sessionId: Uint8Array,
) => EternalConnection | undefined;

/** Options of {@link serverHandshake}. */
export interface ServerHandshakeOptions {
  /**
   * Longest wait for each client step.
   * @default {5000}
   */
  timeoutMs?: number;
  /** Describes the peer in logs. */
  peer?: string;
}

/**
 * Sends a REFUSE (code and a short reason) and closes the pipe. For the
 * server side and for relays; never throws.
 */
export async function refuse(pipe: BytePipe, code: number, reason: string) {
  try {
    await writeAll(pipe, encodeFrame(encodeRefuse({ code, reason })));
  } catch {
    // the peer is gone already.
  }
  closeQuietly(pipe);
}

/**
 * Reads the first frame of a connection and decodes it as a hello. Relays
 * use it to route; it throws ProtocolError/FrameError on anything else.
 */
export async function readHello(
  frames: FrameReader,
): Promise<{ hello: Hello; body: Uint8Array }> {
  const body = await frames.next();
  if (body === null) throw new ProtocolError("closed before hello");
  return { hello: decodeHello(body), body };
}

/**
 * Runs the server side on an accepted pipe. On success the pipe is attached
 * to the session and that session is returned; on any failure the peer gets
 * a refusal (where one is due), the pipe is closed, the reason logged, and
 * null is returned. Never throws.
 */
export async function serverHandshake(
  pipe: BytePipe,
  lookup: SessionLookup,
  options: ServerHandshakeOptions = {},
): Promise<EternalConnection | null> {
  const timeoutMs = options.timeoutMs ?? 5000;
  const peer = options.peer ?? "peer";
  const frames = new FrameReader(pipe);
  try {
    return await bounded(
      pipe,
      timeoutMs,
      (async () => {
        const { hello } = await readHello(frames);
        if (hello.version !== PROTOCOL_VERSION) {
          log.warn(`${peer}: refused protocol version ${hello.version}`);
          await refuse(
            pipe,
            RefuseCode.VersionMismatch,
            `client speaks ${hello.version}, server ${PROTOCOL_VERSION}`,
          );
          return null;
        }
        const connection = lookup(hello.sessionId);
        if (!connection || connection.isClosed) {
          log.warn(
            `${peer}: refused unknown session ${
              toHex(hello.sessionId).slice(0, 8)
            }`,
          );
          await refuse(pipe, RefuseCode.UnknownSession, "unknown session");
          return null;
        }
        const serverNonce = crypto.getRandomValues(
          new Uint8Array(HANDSHAKE_NONCE_BYTES),
        );
        await writeAll(
          pipe,
          encodeFrame(
            encodeChallenge({ version: PROTOCOL_VERSION, serverNonce }),
          ),
        );
        const authBody = await frames.next();
        if (authBody === null) return null;
        const auth = decodeProof(FrameType.Auth, authBody);
        const genuine = await verifyProof(
          connection.keys.auth,
          proofParts(CLIENT_LABEL, hello, serverNonce, [auth.received]),
          auth.proof,
        );
        if (!genuine) {
          log.warn(
            `${peer}: refused bad proof for session ${
              toHex(hello.sessionId).slice(0, 8)
            }`,
          );
          await refuse(pipe, RefuseCode.BadProof, "bad proof");
          return null;
        }
        try {
          connection.checkResume(auth.received);
        } catch (error) {
          log.error(`${peer}: ${errorMessage(error)}`);
          await refuse(pipe, RefuseCode.CannotResume, errorMessage(error));
          connection.fail(error as Error);
          return null;
        }
        // From here the old pipe must not count packets: the number sent
        // in ACCEPT is final.
        connection.detach("client reconnected");
        const received = connection.receivedCount;
        const proof = await prove(
          connection.keys.auth,
          proofParts(SERVER_LABEL, hello, serverNonce, [
            auth.received,
            received,
          ]),
        );
        await writeAll(
          pipe,
          encodeFrame(encodeProof(FrameType.Accept, { received, proof })),
        );
        connection.attach(pipe, frames, auth.received);
        return connection;
      })(),
    );
  } catch (error) {
    if (error instanceof ProtocolError || error instanceof FrameError) {
      log.warn(`${peer}: refused: ${error.message}`);
      await refuse(pipe, RefuseCode.Malformed, error.message);
    } else {
      log.info(`${peer}: handshake failed: ${errorMessage(error)}`);
      closeQuietly(pipe);
    }
    return null;
  }
}
