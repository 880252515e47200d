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
 * useless later. The attempt number and received counts ride inside the
 * proofs, so neither the resume point nor the order of attempts can be
 * forged. A REFUSE from the endpoint holding the key carries a MAC too;
 * only such a refusal can end a session, so six injected bytes cannot.
 *
 * @module
 */

import { errorMessage, logger, RefusalLog } from "../log.ts";
import { CannotResumeError } from "./backed_writer.ts";
import type { EternalConnection } from "./connection.ts";
import { prove, verifyProof } from "./crypto.ts";
import { encodeFrame, FrameError, FrameReader } from "./frame.ts";
import { type BytePipe, closeQuietly, writeAll } from "./pipe.ts";
import { toHex } from "./session_secret.ts";
import { HANDSHAKE_TIMEOUT_MS } from "./timers.ts";
import {
  decodeAccept,
  decodeAuth,
  decodeChallenge,
  decodeHello,
  decodeRefuse,
  encodeAccept,
  encodeAuth,
  encodeChallenge,
  encodeHello,
  encodeRefuse,
  encodeText,
  FrameType,
  HANDSHAKE_NONCE_BYTES,
  type Hello,
  PROTOCOL_VERSION,
  ProtocolError,
  RefuseCode,
  refuseReasonBytes,
  u32,
  u64,
} from "./wire.ts";

const log = logger("handshake");
// Anyone who saw a session id can make us refuse: at most a line a second
// per kind, so a flood cannot grow the user's log without bound.
const refusals = new RefusalLog(log);

const CLIENT_LABEL = encodeText("et/1 client proof");
const SERVER_LABEL = encodeText("et/1 server proof");
const REFUSE_LABEL = encodeText("et/1 refuse");

/**
 * Refusals that end the session when they are authenticated: only the
 * endpoint holding the key can send them, and retrying cannot help. A
 * stale-attempt refusal only abandons that attempt; bad proof and malformed
 * are never final, because an attacker on the path can provoke a genuine
 * one by altering the client's frames.
 */
const FINAL_CODES: ReadonlySet<number> = new Set([
  RefuseCode.UnknownSession,
  RefuseCode.TakenOver,
  RefuseCode.VersionMismatch,
  RefuseCode.CannotResume,
]);

/**
 * The other end said no to one attempt. Only an `authenticated` refusal
 * (signed with the session key, so nobody on the path can forge it) of a
 * kind retrying cannot fix is `final`; every other refusal is an ordinary
 * failed attempt.
 */
export class HandshakeRefusedError extends Error {
  override name = "HandshakeRefusedError";
  /** A {@link RefuseCode}. */
  readonly code: number;
  /** True when the refusal carried a MAC that verified with our key. */
  readonly authenticated: boolean;
  /** Makes a refusal error with its code. */
  constructor(code: number, message: string, authenticated = false) {
    super(message);
    this.code = code;
    this.authenticated = authenticated;
  }

  /** True when the session is over: authenticated, and not retryable. */
  get final(): boolean {
    return this.authenticated && FINAL_CODES.has(this.code);
  }
}

/**
 * A refusal's reason as it may be shown to a person: anyone on the path can
 * send one, so at most 200 characters on one line, with no control
 * characters (an escape sequence would reach the user's terminal).
 */
function printableReason(reason: string): string {
  return [...reason].slice(0, 200).join("")
    // deno-lint-ignore no-control-regex -- control characters are the point
    .replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, "?");
}

/** A one-line explanation of a refusal code, for people. */
export function describeRefusal(
  code: number,
  text: string,
  authenticated = false,
): string {
  const reason = printableReason(text);
  switch (code) {
    case RefuseCode.UnknownSession:
      return authenticated
        ? "the session has ended on the server"
        : "the server does not know this session (it ended, or the server restarted)";
    case RefuseCode.BadProof:
      return "authentication failed: wrong passkey";
    case RefuseCode.VersionMismatch:
      return `protocol version mismatch: ${reason}`;
    case RefuseCode.CannotResume:
      return `cannot resume: ${reason}`;
    case RefuseCode.StaleAttempt:
      return "a newer connection attempt is already in use";
    case RefuseCode.TakenOver:
      return "taken over by another et client";
    case RefuseCode.NextHopUnreachable:
      return `the jumphost cannot reach ${reason || "the next hop"}`;
    default:
      return `refused: ${reason || "malformed handshake"}`;
  }
}

/**
 * Runs `task`; if it takes over `ms`, closes `pipe` and rejects. The task
 * is told through `expired`, so a step still running late (a proof being
 * checked) cannot go on to attach a pipe its caller has given up.
 */
async function bounded<T>(
  pipe: BytePipe,
  ms: number,
  task: (expired: AbortSignal) => Promise<T>,
): Promise<T> {
  const expiry = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      expiry.abort();
      closeQuietly(pipe);
      reject(new Error(`handshake timed out after ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([task(expiry.signal), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What a refusal's MAC covers: everything the client sent that the refusal
 * answers, so a signed refusal can neither be replayed onto another
 * attempt nor provoked by altering the hello on the path.
 */
function refuseMacParts(
  hello: Hello,
  serverNonce: Uint8Array | null,
  code: number,
  reasonBytes: Uint8Array,
): Uint8Array[] {
  return [
    REFUSE_LABEL,
    new Uint8Array([hello.version]),
    hello.sessionId,
    hello.clientNonce,
    ...(serverNonce ? [serverNonce] : []),
    new Uint8Array([code]),
    reasonBytes,
  ];
}

/**
 * Reads the next handshake frame; a REFUSE becomes a HandshakeRefusedError,
 * authenticated when its MAC verifies against what this client sent.
 */
async function nextOrThrow(
  frames: FrameReader,
  key: CryptoKey,
  hello: Hello,
  serverNonce: Uint8Array | null,
): Promise<Uint8Array> {
  const body = await frames.next();
  if (body === null) throw new Error("connection closed during handshake");
  if (body[0] !== FrameType.Refuse) return body;
  const refusal = decodeRefuse(body);
  const authenticated = refusal.mac !== undefined &&
    await verifyProof(
      key,
      refuseMacParts(hello, serverNonce, refusal.code, refusal.reasonBytes!),
      refusal.mac,
    );
  throw new HandshakeRefusedError(
    refusal.code,
    describeRefusal(refusal.code, refusal.reason, authenticated),
    authenticated,
  );
}

function proofParts(
  label: Uint8Array,
  hello: Hello,
  serverNonce: Uint8Array,
  attempt: number,
  counts: number[],
): Uint8Array[] {
  return [
    label,
    new Uint8Array([PROTOCOL_VERSION]),
    hello.sessionId,
    hello.clientNonce,
    serverNonce,
    u32(attempt),
    ...counts.map(u64),
  ];
}

/**
 * Runs the client side on a fresh pipe and, on success, attaches the pipe
 * to `connection`, replacing the pipe in use (if any) only now that the
 * server has proved itself on the new one. Each call is a numbered attempt;
 * an attempt that completes after a newer one was attached is dropped.
 *
 * Throws HandshakeRefusedError when the server refuses (check its `final`),
 * other errors when the pipe fails. `signal` abandons the attempt;
 * `onProving` is called when the attempt sends its proof.
 *
 * @example
 * ```ts
 * await clientHandshake(connection, await Deno.connect({ hostname, port }));
 * ```
 */
export async function clientHandshake(
  connection: EternalConnection,
  pipe: BytePipe,
  signal?: AbortSignal,
  onProving?: () => void,
): Promise<void> {
  const abandon = () => closeQuietly(pipe);
  signal?.addEventListener("abort", abandon);
  const key = connection.keys.auth;
  try {
    await bounded(
      pipe,
      connection.options.handshakeTimeoutMs,
      async (expired) => {
        const attempt = connection.nextAttempt();
        const hello: Hello = {
          version: PROTOCOL_VERSION,
          sessionId: connection.sessionId,
          clientNonce: crypto.getRandomValues(
            new Uint8Array(HANDSHAKE_NONCE_BYTES),
          ),
        };
        await writeAll(pipe, encodeFrame(encodeHello(hello)));
        const frames = new FrameReader(pipe);
        const challenge = decodeChallenge(
          await nextOrThrow(frames, key, hello, null),
        );
        if (challenge.version !== PROTOCOL_VERSION) {
          // Unauthenticated: whoever answered may not be our terminal.
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
        // The pipe in use keeps working meanwhile, so this count may be
        // passed before the swap: the server then resends a few packets we
        // hold already, and the reader drops them as duplicates.
        const received = connection.receivedCount;
        const proof = await prove(
          key,
          proofParts(CLIENT_LABEL, hello, challenge.serverNonce, attempt, [
            received,
          ]),
        );
        await writeAll(
          pipe,
          encodeFrame(encodeAuth({ attempt, received, proof })),
        );
        const accept = decodeAccept(
          await nextOrThrow(frames, key, hello, challenge.serverNonce),
        );
        const genuine = await verifyProof(
          key,
          proofParts(SERVER_LABEL, hello, challenge.serverNonce, attempt, [
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
        if (signal?.aborted || expired.aborted) {
          throw new Error("attempt abandoned");
        }
        let attached: boolean;
        try {
          attached = connection.attach(pipe, frames, accept.received, {
            attempt,
          });
        } catch (error) {
          if (error instanceof CannotResumeError) {
            // The count is inside the server's verified proof: genuine.
            throw new HandshakeRefusedError(
              RefuseCode.CannotResume,
              describeRefusal(RefuseCode.CannotResume, error.message),
              true,
            );
          }
          throw error;
        }
        if (!attached) {
          throw new Error(
            connection.isClosed
              ? "the session ended during the handshake"
              : `attempt ${attempt} was overtaken by attempt ${connection.attachedAttempt}`,
          );
        }
      },
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
  /**
   * Earlier connection states of the session, retired when another client
   * took it over with a new passkey. A client still proving with one of
   * their keys gets a refusal signed with that key: final, so it stops
   * instead of retrying.
   */
  retired?: (sessionId: Uint8Array) => EternalConnection[];
}

/**
 * Sends a plain (unsigned) REFUSE, a code and a short reason, and closes
 * the pipe. For relays, which hold no key, and for refusals that must not
 * be signed; the client treats it as one failed attempt. Never throws.
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
 * Sends a REFUSE signed with the session's proof key (for the endpoint
 * that holds it), so the client can tell it from a forged one; closes the
 * pipe. Never throws.
 */
async function refuseSigned(
  pipe: BytePipe,
  connection: EternalConnection,
  hello: Hello,
  serverNonce: Uint8Array | null,
  code: number,
  reason: string,
) {
  try {
    const reasonBytes = refuseReasonBytes(reason);
    const mac = await prove(
      connection.keys.auth,
      refuseMacParts(hello, serverNonce, code, reasonBytes),
    );
    await writeAll(
      pipe,
      encodeFrame(encodeRefuse({ code, reason, reasonBytes, mac })),
    );
  } catch {
    // the peer is gone already.
  }
  closeQuietly(pipe);
}

/**
 * Runs the server side on an accepted pipe. On success the pipe is attached
 * to the session and that session is returned; on any failure the peer gets
 * a refusal (where one is due), the pipe is closed, the reason logged, and
 * null is returned. Never throws.
 *
 * The pipe in use is replaced only once the new pipe's proof verified, and
 * only by a newer attempt than the one attached: an older attempt that
 * arrives late is refused (signed, "stale attempt") and changes nothing.
 * Refusals this end can sign carry a MAC: version mismatch and unknown
 * session when the session is known (or has ended here), stale attempt and
 * cannot resume. Bad proof and malformed go unsigned: an attacker on the
 * path could provoke them, and a signed one would end the session.
 */
export async function serverHandshake(
  pipe: BytePipe,
  lookup: SessionLookup,
  options: ServerHandshakeOptions = {},
): Promise<EternalConnection | null> {
  const timeoutMs = options.timeoutMs ?? HANDSHAKE_TIMEOUT_MS;
  const peer = options.peer ?? "peer";
  const frames = new FrameReader(pipe);
  try {
    const attached = await bounded(
      pipe,
      timeoutMs,
      async (expired) => {
        const { hello } = await readHello(frames);
        const connection = lookup(hello.sessionId);
        const tag = toHex(hello.sessionId).slice(0, 8);
        if (hello.version !== PROTOCOL_VERSION) {
          refusals.refused(
            "version",
            `${peer}: refused protocol version ${hello.version}`,
          );
          const reason =
            `client speaks ${hello.version}, server ${PROTOCOL_VERSION}`;
          if (connection && !connection.isClosed) {
            await refuseSigned(
              pipe,
              connection,
              hello,
              null,
              RefuseCode.VersionMismatch,
              reason,
            );
          } else {
            await refuse(pipe, RefuseCode.VersionMismatch, reason);
          }
          return null;
        }
        if (!connection) {
          refusals.refused(
            "unknown session",
            `${peer}: refused unknown session ${tag}`,
          );
          await refuse(pipe, RefuseCode.UnknownSession, "unknown session");
          return null;
        }
        if (connection.isClosed) {
          log.info(`${peer}: refused ended session ${tag}`);
          await refuseSigned(
            pipe,
            connection,
            hello,
            null,
            RefuseCode.UnknownSession,
            "session ended",
          );
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
        const auth = decodeAuth(authBody);
        const genuine = await verifyProof(
          connection.keys.auth,
          proofParts(CLIENT_LABEL, hello, serverNonce, auth.attempt, [
            auth.received,
          ]),
          auth.proof,
        );
        if (!genuine) {
          for (const old of options.retired?.(hello.sessionId) ?? []) {
            const theirs = await verifyProof(
              old.keys.auth,
              proofParts(CLIENT_LABEL, hello, serverNonce, auth.attempt, [
                auth.received,
              ]),
              auth.proof,
            );
            if (!theirs) continue;
            log.info(`${peer}: told a replaced client of ${tag} to stop`);
            await refuseSigned(
              pipe,
              old,
              hello,
              serverNonce,
              RefuseCode.TakenOver,
              "taken over by another et client",
            );
            return null;
          }
          refusals.refused(
            "bad proof",
            `${peer}: refused bad proof for session ${tag}`,
          );
          await refuse(pipe, RefuseCode.BadProof, "bad proof");
          return null;
        }
        const signedRefusal = (code: number, reason: string) =>
          refuseSigned(pipe, connection, hello, serverNonce, code, reason);
        const stale = () => {
          log.info(
            `${peer}: refused stale attempt ${auth.attempt} (attempt ${connection.attachedAttempt} is attached)`,
          );
          return signedRefusal(
            RefuseCode.StaleAttempt,
            `attempt ${auth.attempt} is not newer than ${connection.attachedAttempt}`,
          );
        };
        if (auth.attempt <= connection.attachedAttempt) {
          await stale();
          return null;
        }
        try {
          connection.checkResume(auth.received);
        } catch (error) {
          log.error(`${peer}: ${errorMessage(error)}`);
          await signedRefusal(RefuseCode.CannotResume, errorMessage(error));
          connection.fail(error as Error);
          return null;
        }
        // The pipe in use keeps counting meanwhile: if it passes this
        // number, the client resends a few packets we drop as duplicates.
        const received = connection.receivedCount;
        const proof = await prove(
          connection.keys.auth,
          proofParts(SERVER_LABEL, hello, serverNonce, auth.attempt, [
            auth.received,
            received,
          ]),
        );
        if (expired.aborted) return null;
        if (connection.isClosed) {
          await signedRefusal(RefuseCode.UnknownSession, "session ended");
          return null;
        }
        // A newer attempt may have been attached while we signed.
        if (auth.attempt <= connection.attachedAttempt) {
          await stale();
          return null;
        }
        // From here on, synchronously: swap pipes; the ACCEPT is the first
        // thing the new pipe's writer sends, before any resent data.
        const attached = connection.attach(pipe, frames, auth.received, {
          attempt: auth.attempt,
          prelude: encodeFrame(encodeAccept({ received, proof })),
        });
        if (!attached) closeQuietly(pipe); // checked above: cannot happen
        return attached ? connection : null;
      },
    );
    // Whatever ended the attempt without a connection, its pipe is done:
    // a peer that stops after its HELLO must not leave a socket open.
    if (attached === null) closeQuietly(pipe);
    return attached;
  } catch (error) {
    if (error instanceof ProtocolError || error instanceof FrameError) {
      refusals.refused("malformed", `${peer}: refused: ${error.message}`);
      await refuse(pipe, RefuseCode.Malformed, error.message);
    } else {
      refusals.refused(
        "failed",
        `${peer}: handshake failed: ${errorMessage(error)}`,
      );
      closeQuietly(pipe);
    }
    return null;
  }
}
