/**
 * What the client and `et relay` agree on when a session is carried over
 * the stdio of an ssh process (`--over-ssh`): the relay prints
 * {@link RELAY_READY_MARKER} on a line of its own once the session took
 * its connection, and from then on its stdin and stdout carry the sealed
 * frames, byte for byte. Anything a login script printed before the
 * marker is skipped; a refusal line (`encodeRefusal`) instead of the
 * marker says why the relay could not join.
 *
 * @module
 */

/** The relay's "joined" line: sealed bytes follow it. */
export const RELAY_READY_MARKER = "ET_RELAY_READY";

/** A session id as the relay takes it: 32 lowercase hex digits. */
export const RELAY_SESSION_ID = /^[0-9a-f]{32}$/;
