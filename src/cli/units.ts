/**
 * Parsers of the values people type on the command line: durations,
 * sizes, the escape character, the keepalive, ssh options. Each throws a
 * one-line Error naming the bad value.
 *
 * @module
 */

import {
  livenessForKeepalive,
  MAX_KEEPALIVE_MS,
  MIN_KEEPALIVE_MS,
} from "../transport/timers.ts";

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Parses a duration: `500ms`, `30s`, `5m`, `2h`, `7d`, or a bare number of
 * seconds; `0` stays 0. Returns milliseconds.
 */
export function parseDuration(text: string, what: string): number {
  const match = text.trim().match(/^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/);
  if (!match) {
    throw new Error(
      `invalid ${what} '${text}' (expected e.g. 30s, 5m, 2h, 7d or 0)`,
    );
  }
  const ms = Number(match[1]) * DURATION_UNITS[match[2] ?? "s"];
  if (!Number.isSafeInteger(Math.round(ms))) {
    throw new Error(`${what} '${text}' is too large`);
  }
  return Math.round(ms);
}

const SIZE_UNITS: Record<string, number> = {
  "": 1,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
};

/** Parses a size: `512K`, `64M`, `1G` (binary units), or bytes. */
export function parseSize(text: string, what: string): number {
  const match = text.trim().match(/^(\d+)([kmg])?(?:i?b)?$/i);
  if (!match) {
    throw new Error(`invalid ${what} '${text}' (expected e.g. 64M or 1G)`);
  }
  const bytes = Number(match[1]) * SIZE_UNITS[(match[2] ?? "").toLowerCase()];
  if (!Number.isSafeInteger(bytes)) {
    throw new Error(`${what} '${text}' is too large`);
  }
  return bytes;
}

/** Parses an escape character: one character, `^X` for a control key, or `none`. */
export function parseEscapeChar(text: string): number | null {
  if (text === "none") return null;
  if (/^\^[@-_a-z]$/.test(text)) {
    return text.toUpperCase().charCodeAt(1) & 0x1f;
  }
  if (text.length === 1 && text.charCodeAt(0) < 0x80) {
    return text.charCodeAt(0);
  }
  throw new Error(
    `invalid escape character '${text}' (expected one character, ^X or none)`,
  );
}

/**
 * `-k SECONDS`: the keepalive interval (a bare number is seconds, units
 * allowed), and the liveness policy that scales with it.
 */
export function parseKeepalive(
  text: string,
): { keepaliveMs: number; deadAfterMs: number } {
  const ms = parseDuration(text, "--keepalive");
  if (ms < MIN_KEEPALIVE_MS || ms > MAX_KEEPALIVE_MS) {
    throw new Error(
      `--keepalive '${text}' is out of range (${MIN_KEEPALIVE_MS / 1000}s to ${
        MAX_KEEPALIVE_MS / 1000
      }s)`,
    );
  }
  return livenessForKeepalive(ms);
}

/**
 * `--ssh-option OPT`: what ssh gets as `-o OPT`. One option, `Key=value`
 * or `Key value`; nothing ssh could read as another argument.
 */
export function checkSshOption(option: string): string {
  if (
    !/^[A-Za-z][A-Za-z0-9]*(=|\s+)\S/.test(option) || /[\0\n\r]/.test(option)
  ) {
    throw new Error(
      `invalid --ssh-option '${option}' (expected Key=value, e.g. SetEnv=FOO=bar)`,
    );
  }
  return option;
}
