/**
 * The fuzz engine: runs each target's generated cases (after its stored
 * regression cases) under a per-case deadline, counts distinct outcomes,
 * and turns property violations, unexpected exceptions, hangs and slow
 * cases into failures, each shrunk to a small input that still fails.
 *
 * @module
 */

import { hash32, Rng } from "./_rng.ts";
import { hex, unhex } from "./_bytes.ts";

/** One fuzz input: bytes (data or a decision tape) and an auxiliary seed. */
export interface FuzzCase {
  input: Uint8Array;
  /** Seeds secondary choices (chunk boundaries, limits) kept out of `input`. */
  aux: number;
  /** Where the case came from ("valid", "mutated", "random", a file...). */
  origin: string;
}

/** A property of the target did not hold: the case is a finding. */
export class FuzzFailure extends Error {
  override name = "FuzzFailure";
}

/** Throws a FuzzFailure unless `condition` holds. */
export function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new FuzzFailure(message);
}

/** Throws a FuzzFailure. */
export function fail(message: string): never {
  throw new FuzzFailure(message);
}

/**
 * A decoder (or a conversation) under fuzz. `run` returns a short label of
 * what happened (distinct labels are the "outcomes"); it throws a
 * FuzzFailure when a property does not hold, and lets any unexpected
 * exception through (that is a failure too).
 */
// deno-lint-ignore no-explicit-any
export interface Target<C = any> {
  name: string;
  /** One line: what is fed to what, and what must hold. */
  description: string;
  /** Share of the total cases. */
  weight: number;
  /** Deadline of one case (async targets are raced against it). */
  timeoutMs: number;
  setup?(): Promise<C> | C;
  teardown?(ctx: C): Promise<void> | void;
  generate(rng: Rng, ctx: C): FuzzCase;
  run(c: FuzzCase, ctx: C, signal: AbortSignal): string | Promise<string>;
  /** Growth checks after the cases; returns failure messages. */
  checks?(ctx: C): Promise<string[]>;
}

/** A finding: the case, the failure, and the shrunk case. */
export interface Failure {
  target: string;
  /** The failure message with numbers blanked, to group repeats. */
  kind: string;
  message: string;
  case: FuzzCase;
  minimized: FuzzCase;
  /** Id of the known bug it matches, if any. */
  knownBug?: string;
}

/** A bug found earlier and not fixed yet: its failures are tallied apart. */
export interface KnownBug {
  id: string;
  target: string;
  /** Matches the failure messages this bug produces. */
  pattern: RegExp;
  summary: string;
}

/** What a target's run produced. */
export interface TargetReport {
  target: string;
  cases: number;
  regressionCases: number;
  ms: number;
  outcomes: Map<string, number>;
  /** Failures not explained by a known bug (at most a few per kind). */
  failures: Failure[];
  failureCount: number;
  /** Known bug id → hits and one example. */
  known: Map<string, { hits: number; example: Failure }>;
  /** Peak RSS and heap growth seen while it ran, in bytes. */
  peakRss: number;
  heapGrowth: number;
  /** Of `ms`, the time spent shrinking failures (not fuzzing). */
  minimizeMs: number;
}

/** Options of {@link runFuzz}. */
export interface FuzzOptions {
  /** Total generated cases, shared by the targets' weights. */
  cases: number;
  seed: number;
  /** Targets whose name contains one of these (all when empty). */
  only?: string[];
  /** Count known-bug hits as failures. */
  strict?: boolean;
  /** Time spent shrinking one failure. @default {3000} */
  minimizeMs?: number;
  /** Regression cases to replay first. */
  regressions?: FuzzCase[] | ((target: string) => FuzzCase[]);
  known?: KnownBug[];
  /** Progress lines. */
  log?: (line: string) => void;
  /** Called before each case runs (a watchdog records it). */
  onCase?: (target: string, c: FuzzCase) => void;
}

/** Groups failure messages: numbers and hex runs blanked, first line. */
export function failureKind(message: string): string {
  return message.split("\n")[0]
    .replace(/[0-9a-f]{8,}/gi, "<hex>")
    .replace(/\d+/g, "#")
    .slice(0, 100);
}

function describe(error: unknown): string {
  if (error instanceof FuzzFailure) return error.message;
  if (error instanceof Error) {
    return `unexpected ${error.name}: ${error.message}`;
  }
  return `unexpected throw of ${typeof error}: ${String(error)}`;
}

const TIMEOUT = Symbol("timeout");

/** Runs one case under its deadline; a label, or a failure message. */
export async function runCase<C>(
  target: Target<C>,
  ctx: C,
  c: FuzzCase,
): Promise<{ label?: string; failure?: string; ms: number }> {
  const started = performance.now();
  const abort = new AbortController();
  try {
    const result = target.run(c, ctx, abort.signal);
    let label: string | typeof TIMEOUT;
    if (result instanceof Promise) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const expired = new Promise<typeof TIMEOUT>((resolve) => {
        timer = setTimeout(() => resolve(TIMEOUT), target.timeoutMs);
      });
      try {
        label = await Promise.race([result, expired]);
      } finally {
        clearTimeout(timer);
      }
      if (label === TIMEOUT) {
        abort.abort();
        // Let it notice, so its pipes and timers are released.
        result.catch(() => {});
        return {
          failure: `hang: no result within ${target.timeoutMs} ms`,
          ms: performance.now() - started,
        };
      }
    } else {
      label = result;
    }
    const ms = performance.now() - started;
    if (ms > target.timeoutMs) {
      return {
        failure: `slow: a case took ${
          Math.round(ms)
        } ms (bound ${target.timeoutMs} ms)`,
        ms,
      };
    }
    return { label, ms };
  } catch (error) {
    return { failure: describe(error), ms: performance.now() - started };
  }
}

/** Shrinks `c`'s input while the same kind of failure persists. */
export async function minimize<C>(
  target: Target<C>,
  ctx: C,
  c: FuzzCase,
  kind: string,
  budgetMs: number,
): Promise<FuzzCase> {
  const deadline = performance.now() + budgetMs;
  let best = c.input;
  let tries = 0;
  const stillFails = async (input: Uint8Array) => {
    tries++;
    const result = await runCase(target, ctx, { ...c, input });
    return result.failure !== undefined &&
      failureKind(result.failure) === kind;
  };
  const inTime = () => performance.now() < deadline && tries < 20_000;
  // Remove ever smaller chunks.
  for (let size = best.length >> 1; size >= 1 && inTime(); size >>= 1) {
    for (let at = 0; at < best.length && inTime();) {
      const candidate = new Uint8Array(
        best.length - Math.min(size, best.length - at),
      );
      candidate.set(best.subarray(0, at));
      candidate.set(best.subarray(at + size), at);
      if (await stillFails(candidate)) best = candidate;
      else at += size;
    }
  }
  // Make bytes plainer: zero, then printable "a".
  for (const plain of [0x00, 0x61]) {
    for (
      let at = 0;
      at < best.length && best.length <= 4096 && inTime();
      at++
    ) {
      if (best[at] === plain) continue;
      const candidate = best.slice();
      candidate[at] = plain;
      if (await stillFails(candidate)) best = candidate;
    }
  }
  return { ...c, input: best, origin: `${c.origin}, minimized` };
}

/** Splits `total` cases over `targets` by weight (at least 10 each). */
export function shareCases(targets: Target[], total: number): number[] {
  const sum = targets.reduce((n, t) => n + t.weight, 0);
  const shares = targets.map((t) =>
    Math.max(10, Math.floor((total * t.weight) / sum))
  );
  let given = shares.reduce((n, s) => n + s, 0);
  for (let i = 0; given < total; i = (i + 1) % shares.length, given++) {
    shares[i]++;
  }
  return shares;
}

/** Runs one target: its regression cases, then `cases` generated ones. */
export async function runTarget<C>(
  target: Target<C>,
  cases: number,
  options: FuzzOptions,
): Promise<TargetReport> {
  const log = options.log ?? (() => {});
  const ctx = await target.setup?.() as C;
  const report: TargetReport = {
    target: target.name,
    cases: 0,
    regressionCases: 0,
    ms: 0,
    outcomes: new Map(),
    failures: [],
    failureCount: 0,
    known: new Map(),
    peakRss: 0,
    heapGrowth: 0,
    minimizeMs: 0,
  };
  const heapBefore = Deno.memoryUsage().heapUsed;
  const started = performance.now();
  const seenKinds = new Map<string, number>();
  const shrink = async (c: FuzzCase, kind: string) => {
    const began = performance.now();
    const minimized = await minimize(
      target,
      ctx,
      c,
      kind,
      options.minimizeMs ?? 3000,
    );
    report.minimizeMs += performance.now() - began;
    return minimized;
  };
  const record = async (c: FuzzCase, message: string) => {
    const kind = failureKind(message);
    const known = (options.known ?? []).find((bug) =>
      bug.target === target.name && bug.pattern.test(message)
    );
    const repeats = seenKinds.get(kind) ?? 0;
    seenKinds.set(kind, repeats + 1);
    if (known && !options.strict) {
      const entry = report.known.get(known.id);
      if (entry) {
        entry.hits++;
        return;
      }
      const minimized = await shrink(c, kind);
      report.known.set(known.id, {
        hits: 1,
        example: {
          target: target.name,
          kind,
          message,
          case: c,
          minimized,
          knownBug: known.id,
        },
      });
      return;
    }
    report.failureCount++;
    if (repeats >= 1 || report.failures.length >= 8) return;
    log(`  ${target.name}: FAILURE ${message}`);
    const minimized = await shrink(c, kind);
    report.failures.push({
      target: target.name,
      kind,
      message,
      case: c,
      minimized,
      knownBug: known?.id,
    });
  };
  const sample = () => {
    const usage = Deno.memoryUsage();
    report.peakRss = Math.max(report.peakRss, usage.rss);
  };
  try {
    const regressions = typeof options.regressions === "function"
      ? options.regressions(target.name)
      : options.regressions ?? [];
    for (const c of regressions) {
      options.onCase?.(target.name, c);
      const result = await runCase(target, ctx, c);
      report.regressionCases++;
      if (result.failure) await record(c, result.failure);
      else bump(report.outcomes, result.label ?? "?");
    }
    const rng = new Rng((hash32(target.name) ^ options.seed) >>> 0);
    for (let i = 0; i < cases; i++) {
      const c = target.generate(rng, ctx);
      options.onCase?.(target.name, c);
      const result = await runCase(target, ctx, c);
      report.cases++;
      if (result.failure) await record(c, result.failure);
      else bump(report.outcomes, result.label ?? "?");
      if ((i & 1023) === 0) sample();
    }
    report.ms = performance.now() - started;
    for (const message of (await target.checks?.(ctx)) ?? []) {
      await record(
        { input: new Uint8Array(), aux: 0, origin: "growth check" },
        message,
      );
    }
  } finally {
    await target.teardown?.(ctx);
  }
  sample();
  report.heapGrowth = Deno.memoryUsage().heapUsed - heapBefore;
  return report;
}

function bump(map: Map<string, number>, key: string) {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** Runs every selected target with its share of `options.cases`. */
export async function runFuzz(
  targets: Target[],
  options: FuzzOptions,
): Promise<TargetReport[]> {
  const selected = options.only?.length
    ? targets.filter((t) => options.only!.some((name) => t.name.includes(name)))
    : targets;
  const shares = shareCases(selected, options.cases);
  const reports: TargetReport[] = [];
  for (let i = 0; i < selected.length; i++) {
    reports.push(await runTarget(selected[i], shares[i], options));
    options.log?.(formatReport(reports[reports.length - 1]));
  }
  return reports;
}

/** Header of the per-target table. */
export const REPORT_HEADER =
  "target               cases      time     cases/s  outcomes  failures  known";

/** One row of the per-target table. */
export function formatReport(r: TargetReport): string {
  const total = r.cases + r.regressionCases;
  const seconds = (r.ms - r.minimizeMs) / 1000;
  const known = [...r.known.values()].reduce((n, k) => n + k.hits, 0);
  return [
    r.target.padEnd(18),
    String(total).padStart(8),
    `${seconds.toFixed(2)} s`.padStart(9),
    String(Math.round(total / Math.max(seconds, 1e-6))).padStart(11),
    String(r.outcomes.size).padStart(9),
    String(r.failureCount).padStart(9),
    String(known).padStart(6),
  ].join(" ");
}

/** A failure as printed: seed, target, message, the shrunk input in hex. */
export function formatFailure(f: Failure, seed: number): string {
  const input = hex(f.minimized.input);
  return [
    `FAIL ${f.target} (seed ${seed}): ${f.message}`,
    `  origin: ${f.case.origin}; aux ${f.case.aux}`,
    `  input (${f.minimized.input.length} bytes, shrunk from ${f.case.input.length}): ${
      input.length > 2000 ? input.slice(0, 2000) + "…" : input
    }`,
  ].join("\n");
}

/** A stored regression case (tests/fuzz/corpus/<target>/<name>.json). */
export interface StoredCase {
  target: string;
  aux: number;
  /** The input in hex. */
  input: string;
  note: string;
  /** Known bug id it reproduces, while unfixed. */
  bug?: string;
}

/** Reads every stored regression case under `dir`, by target. */
export function loadCorpus(
  dir: URL,
): Map<string, Array<FuzzCase & { note: string; bug?: string }>> {
  const byTarget = new Map<
    string,
    Array<FuzzCase & { note: string; bug?: string }>
  >();
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return byTarget;
    throw error;
  }
  for (const folder of entries.filter((e) => e.isDirectory)) {
    const folderUrl = new URL(`${folder.name}/`, dir);
    for (
      const file of [...Deno.readDirSync(folderUrl)].sort((a, b) =>
        a.name.localeCompare(b.name)
      )
    ) {
      if (!file.name.endsWith(".json")) continue;
      const stored = JSON.parse(
        Deno.readTextFileSync(new URL(file.name, folderUrl)),
      ) as StoredCase;
      const list = byTarget.get(stored.target) ?? [];
      list.push({
        input: unhex(stored.input),
        aux: stored.aux >>> 0,
        origin: `corpus/${folder.name}/${file.name}`,
        note: stored.note,
        bug: stored.bug,
      });
      byTarget.set(stored.target, list);
    }
  }
  return byTarget;
}

/**
 * Stores a case as a regression case (never overwriting one); returns the
 * file written, or null when one of that name exists.
 */
export function saveCase(
  dir: URL,
  target: string,
  name: string,
  c: FuzzCase,
  note: string,
  bug?: string,
): string | null {
  const folder = new URL(`${target}/`, dir);
  Deno.mkdirSync(folder, { recursive: true });
  const file = new URL(
    `${name.replace(/[^a-z0-9.-]+/gi, "-").slice(0, 60)}.json`,
    folder,
  );
  try {
    Deno.statSync(file);
    return null;
  } catch {
    // free: write it.
  }
  const stored: StoredCase = {
    target,
    aux: c.aux,
    input: hex(c.input),
    note,
    ...(bug ? { bug } : {}),
  };
  Deno.writeTextFileSync(file, JSON.stringify(stored, null, 2) + "\n");
  return file.pathname;
}

/** True when `text` is one line of printable characters (no controls). */
export function isOneLine(text: string): boolean {
  // deno-lint-ignore no-control-regex
  return !/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(text);
}

/**
 * Classifies an exception a decoder may throw: the label `Name` when it is
 * an instance of one of `allowed` (exact class, not a subclass of another
 * kind) with a one-line printable message matching `message`; otherwise
 * throws a FuzzFailure naming what was thrown.
 */
export function expectError(
  error: unknown,
  // deno-lint-ignore no-explicit-any
  allowed: Array<abstract new (...args: any[]) => Error>,
  message?: RegExp,
): string {
  if (error instanceof FuzzFailure) throw error;
  const ok = error instanceof Error &&
    allowed.some((type) => Object.getPrototypeOf(error) === type.prototype);
  if (!ok) {
    const name = error instanceof Error ? error.name : typeof error;
    const text = error instanceof Error ? error.message : String(error);
    fail(`threw ${name}: ${text.slice(0, 200)}`);
  }
  if (!isOneLine(error.message)) {
    fail(
      `${error.name} message is not one printable line: ${
        JSON.stringify(error.message.slice(0, 200))
      }`,
    );
  }
  if (message && !message.test(error.message)) {
    fail(
      `${error.name} with an undocumented message: ${
        error.message.slice(0, 200)
      }`,
    );
  }
  return error.name;
}
