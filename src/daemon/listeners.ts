/**
 * The daemon's TCP listeners: one per bind address, all on one port. By
 * default IPv4 (`0.0.0.0`) and IPv6 (`::`, IPv6 only, beside it); a host
 * without IPv6 still starts, on IPv4, and says so in one log line.
 *
 * Two sockets rather than one dual-stack `::` socket: an IPv4 client is
 * then seen (and capped, `pending.ts`) as an IPv4 address, not a mapped
 * IPv6 one, `--bind` takes any mix of addresses the same way, and a host
 * that disables IPv6 loses only that socket.
 *
 * @module
 */

import { lookup as dnsLookup } from "node:dns/promises";
import { errorMessage, type Logger } from "../log.ts";
import {
  closeSocket,
  listenTcp,
  type ListenTcpOptions,
  parseIp,
} from "../platform/socket.ts";

/** What `et server` binds without `--bind`. */
export const DEFAULT_BIND_ADDRESSES: readonly string[] = ["0.0.0.0", "::"];

/** One bound listener. */
export interface TcpListener {
  /** The address as bound (an IP literal). */
  address: string;
  fd: number;
}

/** The listeners of a daemon, all on `port`. */
export interface BoundListeners {
  port: number;
  listeners: TcpListener[];
}

/** How a listener is made; {@link listenTcp} unless a test says otherwise. */
export type ListenFunction = (
  host: string,
  port: number,
  options: ListenTcpOptions,
) => { fd: number; port: number };

/** Options of {@link bindListeners}. */
export interface BindOptions {
  /**
   * Addresses (IP literals or names) to bind; duplicates once.
   * @default {DEFAULT_BIND_ADDRESSES}
   */
  addresses?: readonly string[];
  /** TCP port; 0 picks one free on every address. */
  port: number;
  /** Where the "no IPv6 here" line goes. */
  log: Logger;
  /** @default {listenTcp} */
  listen?: ListenFunction;
}

/** An IP literal as is; a name resolved to its first address. */
async function bindAddress(hostname: string): Promise<string> {
  if (parseIp(hostname)) return hostname;
  try {
    return (await dnsLookup(hostname)).address;
  } catch (error) {
    throw new Error(`cannot bind ${hostname}: ${errorMessage(error)}`);
  }
}

/**
 * Binds every address on one port (the first free one when `port` is 0).
 * An IPv6 address of the default set that cannot be bound is skipped with
 * a warning (a host without IPv6); any other failure closes what was bound
 * and throws a one-line Error.
 */
export async function bindListeners(
  options: BindOptions,
): Promise<BoundListeners> {
  const byDefault = options.addresses === undefined ||
    options.addresses.length === 0;
  const wanted = byDefault ? DEFAULT_BIND_ADDRESSES : options.addresses!;
  const addresses = [
    ...new Set(await Promise.all(wanted.map(bindAddress))),
  ];
  const isV6 = (address: string) => parseIp(address)!.length === 16;
  // IPv6 sockets must leave IPv4 to an IPv4 socket on the same port.
  const v6only = addresses.some((a) => !isV6(a)) ? true : undefined;
  const listen = options.listen ?? listenTcp;
  // With port 0, the first listener picks the port and the others must
  // get the same one; if another program holds it there, start over.
  for (let attempt = 0;; attempt++) {
    const listeners: TcpListener[] = [];
    let port = options.port;
    try {
      for (const address of addresses) {
        try {
          const bound = listen(address, port, { v6only });
          listeners.push({ address, fd: bound.fd });
          port = bound.port;
        } catch (error) {
          if (byDefault && isV6(address) && listeners.length > 0) {
            options.log.warn(
              `no IPv6 on this host (${
                errorMessage(error)
              }): listening on IPv4 only`,
            );
            continue;
          }
          throw error;
        }
      }
      return { port, listeners };
    } catch (error) {
      for (const { fd } of listeners) closeSocket(fd);
      const retry = options.port === 0 && listeners.length > 0 &&
        attempt < 5;
      if (!retry) throw error;
    }
  }
}
