/**
 * `deno task fuzz`: feeds every decoder of `et` (frames, wire bodies,
 * sealed packets, both handshake ends, bootstrap/ready/control/router
 * lines, the line reader, the control socket, units, destinations, the
 * escape filter) with valid, mutated and random inputs. See
 * tests/fuzz/README.md.
 *
 *     deno task fuzz                       # 10^6 cases, random seed
 *     deno task fuzz --seed 42             # the same run again
 *     deno task fuzz --cases 20000 --target handshake --target frame
 *     deno task fuzz --strict              # known bugs count as failures
 *     deno task fuzz --list                # the targets and what they check
 *     deno task fuzz --save                # keep what failed under tests/fuzz/corpus/
 *
 * Prints per target: cases, time, cases/s, distinct outcomes, failures and
 * known-bug hits; then each failure with the seed and its shrunk input in
 * hex; then `fuzz: N cases, F failures`. Exits 1 on any failure.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type Failure,
  failureKind,
  formatFailure,
  formatReport,
  REPORT_HEADER,
  saveCase,
  shareCases,
  type TargetReport,
} from "../tests/fuzz/_engine.ts";
import { hex } from "../tests/fuzz/_bytes.ts";
import { FIXED_BUGS, KNOWN_BUGS } from "../tests/fuzz/_known.ts";
import { randomSeed } from "../tests/fuzz/_rng.ts";
import { TARGETS } from "../tests/fuzz/_targets.ts";
import {
  HEARTBEAT_HEADER_BYTES,
  type WorkerStart,
} from "../tests/fuzz/_worker.ts";

const USAGE =
  "usage: deno task fuzz [--cases N] [--seed S] [--target NAME]... [--strict] [--minimize-ms MS] [--hang-ms MS] [--outcomes] [--save] [--list]";

function hashName(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

function main(): number | Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: Deno.args,
      options: {
        cases: { type: "string", default: "1000000" },
        seed: { type: "string" },
        target: { type: "string", multiple: true },
        strict: { type: "boolean", default: false },
        "minimize-ms": { type: "string", default: "3000" },
        "hang-ms": { type: "string", default: "30000" },
        outcomes: { type: "boolean", default: false },
        save: { type: "boolean", default: false },
        list: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
    }));
  } catch (error) {
    console.error(`fuzz: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (values.list) {
    for (const t of TARGETS) {
      console.log(`${t.name.padEnd(18)} ${t.description}`);
    }
    return 0;
  }
  const number = (text: string, what: string) => {
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(Number(text))) {
      throw new Error(`--${what} wants a whole number, not '${text}'`);
    }
    return Number(text);
  };
  try {
    return run({
      cases: number(values.cases!, "cases"),
      seed: values.seed === undefined
        ? randomSeed()
        : number(values.seed, "seed") >>> 0,
      only: values.target ?? [],
      strict: values.strict!,
      minimizeMs: number(values["minimize-ms"]!, "minimize-ms"),
      hangMs: number(values["hang-ms"]!, "hang-ms"),
      outcomes: values.outcomes!,
      save: values.save!,
    });
  } catch (error) {
    console.error(`fuzz: ${(error as Error).message}\n${USAGE}`);
    return 2;
  }
}

interface RunOptions {
  cases: number;
  seed: number;
  only: string[];
  strict: boolean;
  minimizeMs: number;
  hangMs: number;
  outcomes: boolean;
  /** Store each failure's and known bug's shrunk input under tests/fuzz/corpus/. */
  save: boolean;
}

async function run(options: RunOptions): Promise<number> {
  const selected = options.only.length
    ? TARGETS.filter((t) => options.only.some((name) => t.name.includes(name)))
    : TARGETS;
  if (selected.length === 0) {
    throw new Error(`no target matches ${options.only.join(", ")}`);
  }
  const names = selected.map((t) => t.name);
  const shares = shareCases(selected, options.cases);
  const again = [
    `--seed ${options.seed}`,
    `--cases ${options.cases}`,
    ...options.only.map((name) => `--target ${name}`),
    ...(options.strict ? ["--strict"] : []),
  ].join(" ");
  console.log(
    `fuzz: seed ${options.seed} (reproduce with: deno task fuzz ${again})`,
  );
  console.log(REPORT_HEADER);
  const reports: TargetReport[] = [];
  const hangs: Failure[] = [];
  const heartbeat = new SharedArrayBuffer(HEARTBEAT_HEADER_BYTES + 256 * 1024);
  const beat = new Int32Array(heartbeat, 0, 4);
  let from = 0;
  while (from < names.length) {
    from = await runWorker(
      {
        names,
        shares,
        from,
        seed: options.seed,
        strict: options.strict,
        minimizeMs: options.minimizeMs,
        heartbeat,
      },
      options.hangMs,
      (report) => {
        reports.push(report);
        console.log(formatReport(report));
      },
      () => {
        // The worker is stuck inside one case: report it, go on with the next target.
        const index = Atomics.load(beat, 1);
        const length = Atomics.load(beat, 3);
        const input = new Uint8Array(
          heartbeat,
          HEARTBEAT_HEADER_BYTES,
          Math.min(length, 256 * 1024),
        ).slice();
        const c = {
          input,
          aux: Atomics.load(beat, 2) >>> 0,
          origin: "watchdog",
        };
        const failure: Failure = {
          target: names[index],
          kind: "hang",
          message:
            `hang: a case did not return within ${options.hangMs} ms (a synchronous loop?)`,
          case: c,
          minimized: c,
        };
        hangs.push(failure);
        console.log(
          `${names[index].padEnd(18)} HUNG; input ${
            hex(input.subarray(0, 64))
          }`,
        );
        return index + 1;
      },
    );
  }
  const failures = [...reports.flatMap((r) => r.failures), ...hangs];
  const failureCount = reports.reduce((n, r) => n + r.failureCount, 0) +
    hangs.length;
  const total = reports.reduce((n, r) => n + r.cases + r.regressionCases, 0);
  if (options.outcomes) {
    for (const r of reports) {
      console.log(`\n${r.target} outcomes:`);
      for (
        const [label, count] of [...r.outcomes].sort((a, b) => b[1] - a[1])
      ) {
        console.log(`  ${String(count).padStart(9)}  ${label}`);
      }
    }
  }
  const known = reports.flatMap((r) => [...r.known.entries()]);
  if (known.length > 0) {
    console.log("\nknown bugs (not counted; --strict counts them):");
    for (const [id, { hits, example }] of known) {
      const bug = [...KNOWN_BUGS, ...FIXED_BUGS].find((b) => b.id === id);
      console.log(
        `  ${id}: ${hits} hits in ${example.target}. ${bug?.summary ?? ""}`,
      );
      console.log(`    e.g. ${example.message.slice(0, 160)}`);
      console.log(
        `    input ${
          hex(example.minimized.input).slice(0, 240)
        } (aux ${example.minimized.aux})`,
      );
    }
  }
  for (const failure of failures) {
    console.log("\n" + formatFailure(failure, options.seed));
  }
  if (options.save) {
    const corpus = new URL("../tests/fuzz/corpus/", import.meta.url);
    const stored = [
      ...failures.map((f) =>
        saveCase(
          corpus,
          f.target,
          `found-${hashName(failureKind(f.message))}`,
          f.minimized,
          f.message.slice(0, 300),
        )
      ),
      ...known.map(([id, { example }]) =>
        saveCase(
          corpus,
          example.target,
          id,
          example.minimized,
          example.message.slice(0, 300),
          id,
        )
      ),
    ].filter((file) => file !== null);
    for (const file of stored) console.log(`saved ${file}`);
  }
  const rate = reports.reduce((n, r) => n + r.ms, 0) / 1000;
  console.log(
    `\n(${rate.toFixed(1)} s of fuzzing; peak RSS ${
      Math.round(Math.max(0, ...reports.map((r) => r.peakRss)) / 2 ** 20)
    } MiB)`,
  );
  console.log(
    `fuzz: ${total} cases, ${failureCount} failures${
      failureCount ? ` (seed ${options.seed})` : ""
    }`,
  );
  return failureCount === 0 ? 0 : 1;
}

/**
 * Runs targets from `start.from` in a worker; resolves with the index to
 * go on from (the end, or the target after one that hung).
 */
function runWorker(
  start: WorkerStart,
  hangMs: number,
  onReport: (report: TargetReport) => void,
  onHang: () => number,
): Promise<number> {
  const worker = new Worker(
    new URL("../tests/fuzz/_worker.ts", import.meta.url),
    { type: "module" },
  );
  const beat = new Int32Array(start.heartbeat, 0, 4);
  return new Promise((resolve, reject) => {
    let last = Atomics.load(beat, 0);
    let lastChange = performance.now();
    const watchdog = setInterval(() => {
      const now = Atomics.load(beat, 0);
      if (now !== last) {
        last = now;
        lastChange = performance.now();
      } else if (performance.now() - lastChange > hangMs) {
        clearInterval(watchdog);
        worker.terminate();
        resolve(onHang());
      }
    }, 500);
    worker.onmessage = (event) => {
      const message = event.data;
      if (message.kind === "log") console.log(message.line);
      else if (message.kind === "report") {
        lastChange = performance.now();
        onReport(message.report);
      } else if (message.kind === "done") {
        clearInterval(watchdog);
        worker.terminate();
        resolve(start.names.length);
      }
    };
    worker.onerror = (event) => {
      clearInterval(watchdog);
      worker.terminate();
      event.preventDefault();
      reject(new Error(`the fuzz worker crashed: ${event.message}`));
    };
    worker.postMessage(start);
  });
}

Deno.exit(await main());
