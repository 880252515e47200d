/**
 * The tunnel messages client and session exchange on the control channel,
 * and how tunnel connections get their channels.
 *
 * Each tunnel connection rides a channel of its own (its own credit
 * window, so a stalled one stalls nothing else). The side that accepted
 * the connection (the client for `-t`, the session for `-r`) picks the
 * channel: the client even ids from 16, the session odd ids from 17, each
 * rising and never reused, so the two never collide. It sends
 * `tunnel-open` and may send data at once; the other side dials and
 * answers only a refusal.
 *
 * @module
 */

import { type TunnelEndpoint, validateEndpoint } from "./tunnel_spec.ts";

/** First channel id the client gives a tunnel connection (then +2). */
export const FIRST_CLIENT_TUNNEL_CHANNEL = 16;
/** First channel id the session gives a tunnel connection (then +2). */
export const FIRST_SERVER_TUNNEL_CHANNEL = 17;
/** Largest channel id (u32). */
export const MAX_TUNNEL_CHANNEL = 0xffff_ffff;
/** Most tunnel connections open at once, per side of a session. */
export const MAX_TUNNEL_CONNECTIONS = 1024;
/** Most reverse tunnels (listeners on the session's host) one session asks for. */
export const MAX_REVERSE_TUNNELS = 1024;

/** Which end of the session. */
export type TunnelSide = "client" | "server";

/** A tunnel message on the control channel. */
export type TunnelMessage =
  | {
    /** Client → session (`-t`): dial `target` for the connection on `channel`. */
    type: "tunnel-open";
    channel: number;
    target: TunnelEndpoint;
  }
  | {
    /**
     * Session → client (`-r`): a connection came to reverse tunnel number
     * `tunnel` (its index in the bootstrap line); dial its target.
     */
    type: "tunnel-open";
    channel: number;
    tunnel: number;
  }
  | {
    /** The dialing side could not open the connection on `channel`. */
    type: "tunnel-refused";
    channel: number;
    error: string;
  }
  | {
    /** The connection on `channel` was torn down (not a half close). */
    type: "tunnel-close";
    channel: number;
  };

/** True for a channel id `side` may pick for a tunnel connection. */
export function isTunnelChannelOf(side: TunnelSide, id: number): boolean {
  const first = side === "client"
    ? FIRST_CLIENT_TUNNEL_CHANNEL
    : FIRST_SERVER_TUNNEL_CHANNEL;
  return Number.isInteger(id) && id >= first && id <= MAX_TUNNEL_CHANNEL &&
    id % 2 === first % 2;
}

/**
 * Parses a decoded control line as a tunnel message; null when it is none
 * (or malformed: garbage is ignored like any unknown control line).
 */
export function parseTunnelMessage(value: unknown): TunnelMessage | null {
  const v = value as Record<string, unknown> | null;
  if (typeof v?.type !== "string" || !v.type.startsWith("tunnel-")) return null;
  const channel = v.channel;
  if (
    !Number.isInteger(channel) || (channel as number) < 16 ||
    (channel as number) > MAX_TUNNEL_CHANNEL
  ) return null;
  const id = channel as number;
  switch (v.type) {
    case "tunnel-open":
      if (v.target !== undefined) {
        try {
          const target = validateEndpoint(v.target);
          if (target.kind === "env") return null;
          return { type: "tunnel-open", channel: id, target };
        } catch {
          return null;
        }
      }
      if (
        Number.isInteger(v.tunnel) && (v.tunnel as number) >= 0 &&
        (v.tunnel as number) < MAX_REVERSE_TUNNELS
      ) return { type: "tunnel-open", channel: id, tunnel: v.tunnel as number };
      return null;
    case "tunnel-refused":
      return {
        type: "tunnel-refused",
        channel: id,
        error: typeof v.error === "string"
          ? v.error.replace(/[^\x20-\x7e]/g, "?").slice(0, 200)
          : "refused",
      };
    case "tunnel-close":
      return { type: "tunnel-close", channel: id };
  }
  return null;
}

/** Checks the reverse tunnels of a bootstrap line; throws a one-line Error. */
export function decodeReverseTunnels(value: unknown): TunnelEndpoint[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || value.length > MAX_REVERSE_TUNNELS) {
    throw new Error("reverse tunnels");
  }
  return value.map((entry) => {
    try {
      return validateEndpoint(entry);
    } catch (error) {
      throw new Error(`reverse tunnel: ${(error as Error).message}`);
    }
  });
}
