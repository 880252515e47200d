/**
 * Which way the client reaches its session: TCP (the daemon's port, or a
 * no-root session's own), or ssh's stdio through `et relay` (`--over-ssh`,
 * see ssh_relay.ts), and when it gives up on TCP for ssh by itself.
 *
 * The switch: before any TCP connect to the session's port has ever
 * succeeded, if none has succeeded {@link SWITCH_AFTER_MS} (or half the
 * connect timeout, if shorter) after the first attempt began (refused, timed out, unreachable: a firewall that lets
 * only port 22 in), every later attempt goes over ssh, with one notice.
 * Once a TCP connect has succeeded the port is known to be open, and
 * drops are healed over TCP as always: a transient fault never moves a
 * working session onto ssh (which costs a login per reconnect).
 *
 * @module
 */

import { logger } from "../log.ts";
import type { BytePipe } from "../transport/mod.ts";

const log = logger("route");

/**
 * How long the first connection tries TCP before carrying the session
 * over ssh: a few redial rounds (the loop retries every 0.1–0.5 s), far
 * above a connect's round trip, and short beside the 30 s connect
 * timeout.
 */
export const SWITCH_AFTER_MS = 3000;

/** A dial function as the redial loop takes it. */
export type Dial = (signal: AbortSignal) => Promise<BytePipe>;

/** Options of {@link routedDial}. */
export interface RouteOptions {
  /** Dials the session's TCP port. */
  tcp: Dial;
  /** Starts ssh and the relay. */
  ssh: Dial;
  /** `--over-ssh`: never try TCP. */
  overSsh: boolean;
  /**
   * How long TCP may fail before the switch.
   * @default {SWITCH_AFTER_MS}
   */
  switchAfterMs?: number;
  /** Told once, when the client switches to ssh by itself. */
  onSwitch: () => void;
}

/** The dial function that follows the rules above. */
export function routedDial(options: RouteOptions): Dial {
  const switchAfter = options.switchAfterMs ?? SWITCH_AFTER_MS;
  let overSsh = options.overSsh;
  let firstTcpAt: number | undefined;
  let tcpReached = false;
  return async (signal) => {
    if (
      !overSsh && !tcpReached && firstTcpAt !== undefined &&
      performance.now() - firstTcpAt >= switchAfter
    ) {
      overSsh = true;
      log.warn(`no TCP connect in ${switchAfter} ms: carrying over ssh`);
      options.onSwitch();
    }
    if (overSsh) return await options.ssh(signal);
    firstTcpAt ??= performance.now();
    const pipe = await options.tcp(signal);
    tcpReached = true;
    return pipe;
  };
}
