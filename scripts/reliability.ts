/**
 * The long reliability runs, beside their bounded versions in
 * tests/reliability/ (same code, bigger numbers):
 *
 * ```
 * deno task chaos     # 1000 forced disconnects on a 100 MB stream each way
 * deno task soak      # 100 sessions streaming 60 s on one daemon, then idle
 * deno run -A scripts/reliability.ts attacks   # the network attacks, x10
 * ```
 *
 * Each starts a private sshd and `et server` (tests/e2e/_world.ts), prints
 * progress on stderr and its figures on stdout, and exits non-zero when a
 * check fails (bytes lost or repeated, a session dead, memory not back).
 * `--quick` shrinks every size for a smoke run; `--seed N` changes the
 * order of the chaos.
 *
 * @module
 */

import { startWorld } from "../tests/e2e/_world.ts";
import { runChaos } from "../tests/reliability/_chaos.ts";
import { describeLoad, runLoad } from "../tests/reliability/_load.ts";
import { runAttacks } from "../tests/reliability/_attacks.ts";
import { mb } from "../tests/reliability/_proc.ts";

const args = Deno.args;
const mode = args[0];
const quick = args.includes("--quick");
const seedAt = args.indexOf("--seed");
const seed = seedAt >= 0 ? Number(args[seedAt + 1]) : 20261124;

function progress(line: string) {
  const seconds = (performance.now() / 1000).toFixed(1).padStart(7);
  Deno.stderr.writeSync(new TextEncoder().encode(`[${seconds}s] ${line}\n`));
}

function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3)
      .join(" ");
  } catch {
    return "?";
  }
}

/** The checks of a run: each failed one is printed, any makes exit 1. */
const failures: string[] = [];
function check(ok: boolean, what: string) {
  if (!ok) failures.push(what);
}

async function chaos() {
  const mix = quick
    ? { cut: 90, blackhole: 6, halfOpen: 4 }
    : { cut: 900, blackhole: 60, halfOpen: 40 };
  const bytes = quick ? 20e6 : 100e6;
  const world = await startWorld({ privateRuntime: true });
  try {
    const r = await runChaos(world, {
      bytes,
      mix,
      blackholeMs: [100, 10_000],
      seed,
      progress,
    });
    const total = Object.values(r.forced).reduce((a, b) => a + b, 0);
    const rss = (x: typeof r.daemonRss) =>
      `${mb(x.before)} before, ${mb(x.warm)} warm, ${mb(x.peak)} peak, ${
        mb(x.after)
      } after MB`;
    console.log(
      `chaos: ${total} forced disconnects ${JSON.stringify(r.forced)} in ${
        (r.durationMs / 1000).toFixed(0)
      } s (seed ${seed})`,
    );
    console.log(
      `chaos: blackholes of ${Math.min(...r.blackholeMs)}-${
        Math.max(...r.blackholeMs)
      } ms; ${r.connections} TCP connections; the client logged ${
        JSON.stringify(r.clientSaw)
      }`,
    );
    console.log(
      `chaos: ${
        mb(r.bytes)
      } MB up and back: received ${r.received} bytes (stream + 64 KiB probe), ` +
        `sha256 ${
          r.receivedHash === r.sentHash ? "equal" : "DIFFERENT"
        }; alive after: ${r.aliveAfter}; exit ${r.exitCode}`,
    );
    console.log(
      `chaos: RSS daemon ${rss(r.daemonRss)}; terminal ${
        rss(r.terminalRss)
      } ("after": ${(r.settledAfterMs / 1000).toFixed(0)} s after the stream)`,
    );
    check(r.receivedHash === r.sentHash, "sha256 differs");
    check(r.received === r.bytes + 64 * 1024, "byte count differs");
    check(r.aliveAfter && r.exitCode === 0, "session not alive after");
    check(
      r.daemonRss.after - r.daemonRss.before < 16e6,
      "daemon RSS not back",
    );
    check(
      r.terminalRss.after - r.terminalRss.before < 64e6,
      "terminal RSS not back",
    );
  } finally {
    await world.close();
  }
}

async function soak() {
  const world = await startWorld({ privateRuntime: true });
  try {
    const r = await runLoad(world, {
      sessions: quick ? 20 : 100,
      seconds: quick ? 10 : 60,
      idleSessions: 10,
      idleSeconds: 10,
      progress,
    });
    for (const line of describeLoad(r)) console.log(`soak: ${line}`);
    check(r.mismatches.length === 0, `hash mismatches ${r.mismatches}`);
    check(
      r.exitCodes["0"] === r.sessions,
      `exit codes ${JSON.stringify(r.exitCodes)}`,
    );
  } finally {
    await world.close();
  }
}

async function attacks() {
  const world = await startWorld({ privateRuntime: true });
  try {
    const r = await runAttacks(
      world,
      quick
        ? {
          replays: 300,
          injected: 10,
          flips: 12,
          wrongKey: 300,
          guesses: 5000,
        }
        : {
          replays: 3000,
          injected: 100,
          flips: 100,
          wrongKey: 3000,
          guesses: 50_000,
          returnWaitMs: 120_000,
        },
    );
    for (const p of r.phases) {
      console.log(
        `attacks: ${p.name}: ${p.count} in ${(p.ms / 1000).toFixed(1)} s -> ${
          JSON.stringify(p.outcomes)
        }; logged ${p.logged}; session reconnects ${p.reconnects}; echo max ${
          p.echoMaxMs.toFixed(0)
        } ms; daemon RSS ${mb(p.daemonRss)} MB`,
      );
    }
    console.log(
      `attacks: echo p50 ${r.echo.p50.toFixed(1)} p99 ${
        r.echo.p99.toFixed(1)
      } max ${r.echo.max.toFixed(1)} ms (${r.echo.samples} chunks); ${
        mb(r.stream.bytes)
      } MB each way, sha256 ${
        r.stream.receivedHash === r.stream.sentHash ? "equal" : "DIFFERENT"
      }; exit ${r.exitCode}`,
    );
    console.log(
      `attacks: daemon RSS ${mb(r.daemonRss.before)} before, ${
        mb(r.daemonRss.peak)
      } peak, ${mb(r.daemonRss.after)} after (${
        (r.daemonRss.returnedAfterMs / 1000).toFixed(1)
      } s of quiet); terminal RSS ${mb(r.terminalRss.before)} before, ${
        mb(r.terminalRss.peak)
      } peak, ${
        mb(r.terminalRss.after)
      } after MB; logs grew: terminal ${r.logGrowth.terminal} B, daemon ${r.logGrowth.daemon} B`,
    );
    check(r.stream.receivedHash === r.stream.sentHash, "stream differs");
    check(r.echo.max < 1000, `echo max ${r.echo.max} ms`);
    check(r.exitCode === 0, "session exit");
    check(
      r.daemonRss.peak < 200e6,
      `daemon RSS peak ${mb(r.daemonRss.peak)} MB`,
    );
    // V8 decides when to give a grown heap back: report, do not fail.
    if (r.daemonRss.after - r.daemonRss.before > 16e6) {
      console.log(
        `attacks: NOTE the daemon's RSS was still ${
          mb(r.daemonRss.after - r.daemonRss.before)
        } MB above its level before the attacks after ${
          (r.daemonRss.returnedAfterMs / 1000).toFixed(0)
        } s of quiet`,
      );
    }
  } finally {
    await world.close();
  }
}

const modes: Record<string, () => Promise<void>> = { chaos, soak, attacks };
if (!modes[mode]) {
  console.error(
    "usage: deno run -A scripts/reliability.ts chaos|soak|attacks [--quick] [--seed N]",
  );
  Deno.exit(2);
}
const started = performance.now();
progress(
  `reliability ${mode}${
    quick ? " (quick)" : ""
  }; load average ${loadAverage()} on ${navigator.hardwareConcurrency} cores`,
);
try {
  await modes[mode]();
} catch (error) {
  failures.push((error as Error).stack ?? String(error));
}
progress(
  `done in ${
    ((performance.now() - started) / 1000).toFixed(0)
  } s; load average ${loadAverage()}`,
);
for (const failure of failures) console.error(`FAILED: ${failure}`);
Deno.exit(failures.length === 0 ? 0 : 1);
