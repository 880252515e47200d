/**
 * Runs fuzz targets inside a worker for scripts/fuzz.ts, so a watchdog in
 * the main thread can stop a case that never returns (a synchronous
 * infinite loop no per-case deadline can interrupt). Before each case the
 * worker bumps a shared counter and copies the case there, so the
 * watchdog can report the exact input that hung.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { configureLog } from "../../src/log.ts";
import { loadCorpus, runTarget } from "./_engine.ts";
import { KNOWN_BUGS } from "./_known.ts";
import { TARGETS } from "./_targets.ts";

/** What the main thread asks of the worker. */
export interface WorkerStart {
  names: string[];
  shares: number[];
  /** Index in `names` to start from (after a hang, the next target). */
  from: number;
  seed: number;
  strict: boolean;
  minimizeMs: number;
  /** [0] case counter, [1] target index, [2] aux, [3] input length; bytes from 16. */
  heartbeat: SharedArrayBuffer;
}

/** Layout of the heartbeat buffer. */
export const HEARTBEAT_HEADER_BYTES = 16;

self.onmessage = async (event: MessageEvent<WorkerStart>) => {
  configureLog({ level: "silent" });
  const start = event.data;
  const beat = new Int32Array(start.heartbeat, 0, 4);
  const bytes = new Uint8Array(start.heartbeat, HEARTBEAT_HEADER_BYTES);
  const corpus = loadCorpus(new URL("./corpus/", import.meta.url));
  for (let i = start.from; i < start.names.length; i++) {
    const target = TARGETS.find((t) => t.name === start.names[i])!;
    Atomics.store(beat, 1, i);
    const report = await runTarget(target, start.shares[i], {
      cases: start.shares[i],
      seed: start.seed,
      strict: start.strict,
      minimizeMs: start.minimizeMs,
      known: KNOWN_BUGS,
      regressions: (name) => corpus.get(name) ?? [],
      log: (line) => self.postMessage({ kind: "log", line }),
      onCase: (_, c) => {
        const n = Math.min(c.input.length, bytes.length);
        bytes.set(c.input.subarray(0, n));
        Atomics.store(beat, 2, c.aux | 0);
        Atomics.store(beat, 3, c.input.length);
        Atomics.add(beat, 0, 1);
      },
    });
    self.postMessage({ kind: "report", index: i, report });
  }
  self.postMessage({ kind: "done" });
};
