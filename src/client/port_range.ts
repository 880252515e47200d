/**
 * `--port-range A-B`: the ports a new session that serves itself (no-root
 * mode) may listen on.
 *
 * @module
 */

import { type PortRange, validPort } from "../session/mod.ts";

/**
 * Parses `A-B` (or a single port `A`) into a range, both ends included.
 * Throws a one-line Error naming the flag otherwise.
 *
 * @example
 * ```ts
 * parsePortRange("2022-2122"); // { first: 2022, last: 2122 }
 * parsePortRange("60001"); // { first: 60001, last: 60001 }
 * ```
 */
export function parsePortRange(text: string): PortRange {
  const match = text.trim().match(/^(\d{1,5})(?:-(\d{1,5}))?$/);
  const first = Number(match?.[1]);
  const last = match?.[2] === undefined ? first : Number(match[2]);
  if (!match || !validPort(first) || !validPort(last) || first > last) {
    throw new Error(
      `invalid --port-range '${text}' (expected A-B, ports 1-65535, A <= B)`,
    );
  }
  return { first, last };
}
