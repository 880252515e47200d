/**
 * scripts/compile.ts (`deno task compile`): which targets it builds, and
 * that each way it can fail ends in one clear line: an unknown target, a
 * DENORT_BIN that fits no asked target or does not exist or is the deno
 * command rather than its runtime, and above all Deno's runtime that
 * cannot be downloaded (forced here through a dead proxy and an empty
 * DENO_DIR, so the test fails the same way on a machine with a network).
 */

import assert from "node:assert/strict";
import {
  explainCompileFailure,
  hostTarget,
  selectTargets,
  TARGETS,
} from "../../scripts/compile.ts";
import { ROOT } from "./_release.ts";

const linux = TARGETS[0];
const onLinux = { os: "linux", arch: "x86_64" };

Deno.test("compile targets: all by default, a filter by name or triple, DENORT_BIN narrows to the host", () => {
  assert.deepEqual(
    selectTargets([], undefined).targets.map((t) => t.name),
    ["linux-x86_64", "linux-aarch64", "darwin-x86_64", "darwin-aarch64"],
  );
  assert.deepEqual(
    selectTargets(["darwin-aarch64,x86_64-unknown-linux-gnu"], undefined)
      .targets.map((t) => t.name),
    ["darwin-aarch64", "linux-x86_64"],
  );
  assert.throws(
    () => selectTargets(["windows-x86_64"], undefined),
    /^Error: unknown target 'windows-x86_64' \(one of linux-x86_64, /,
  );
  const all = selectTargets([], "/opt/denort", onLinux);
  assert.deepEqual(all.targets, [linux]);
  assert.equal(
    all.note,
    "DENORT_BIN is set: building linux-x86_64 only (one runtime fits one target)",
  );
  assert.equal(
    selectTargets(["linux-x86_64"], "/opt/denort", onLinux).note,
    undefined,
  );
  assert.throws(
    () => selectTargets(["darwin-aarch64"], "/opt/denort", onLinux),
    /DENORT_BIN fits this host's target \(linux-x86_64\) only; unset it to build darwin-aarch64/,
  );
  assert.throws(
    () => selectTargets([], "/opt/denort", { os: "windows", arch: "x86_64" }),
    /is no release target/,
  );
  assert.equal(
    hostTarget({ os: "darwin", arch: "aarch64" })?.triple,
    "aarch64-apple-darwin",
  );
  assert.equal(hostTarget({ os: "windows", arch: "x86_64" }), undefined);
});

Deno.test("compile failures are explained in one line", () => {
  const offline = `Compile main.ts to dist/et-linux-x86_64
Download https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip
\x1b[1m\x1b[31merror\x1b[0m: Writing deno compile executable to temporary file 'dist/et.tmp-1'

Caused by:
    0: Setting up base binary.
    1: error sending request for url (https://dl.deno.land/release/v2.9.6/denort-x86_64-unknown-linux-gnu.zip): client error (Connect): dns error
`;
  assert.equal(
    explainCompileFailure(offline, linux, undefined),
    "cannot download Deno's runtime (denort) for linux-x86_64: compiling needs that download once per target (then it is cached), or DENORT_BIN=/path/to/denort to build this host's target",
  );
  assert.equal(
    explainCompileFailure(
      "error: Writing ...\nCaused by:\n    0: Could not find denort at '/x'\n",
      linux,
      "/x",
    ),
    "DENORT_BIN=/x does not exist",
  );
  assert.equal(
    explainCompileFailure(
      "Check main.ts\nerror: Type checking failed.\n",
      linux,
      undefined,
    ),
    "deno compile failed for linux-x86_64: error: Type checking failed.",
  );
});

async function compile(
  args: string[],
  env: Record<string, string>,
  clearEnv = false,
) {
  const out = await Deno.makeTempDir({ prefix: "et-compile-test-" });
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${ROOT}/scripts/compile.ts`, "--out", out, ...args],
      env,
      clearEnv,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    return {
      code: output.code,
      stderr,
      lines: stderr.split("\n").filter(Boolean),
      files: [...Deno.readDirSync(out)].map((e) => e.name).sort(),
    };
  } finally {
    await Deno.remove(out, { recursive: true });
  }
}

Deno.test("compile: usage errors exit 2 with one line, before any work", async () => {
  let run = await compile(["--target", "bogus"], {});
  assert.equal(run.code, 2);
  assert.equal(run.lines.length, 1, run.stderr);
  assert.match(run.lines[0], /^compile: unknown target 'bogus'/);

  const host = hostTarget();
  const other = TARGETS.find((t) => t !== host)!;
  run = await compile(["--target", other.name], { DENORT_BIN: "/opt/denort" });
  assert.equal(run.code, 2);
  assert.equal(run.lines.length, 1, run.stderr);
  assert.match(run.lines[0], /^compile: DENORT_BIN fits this host's target/);
});

Deno.test("compile: no runtime download → one line saying compiling needs it once (or DENORT_BIN)", async () => {
  const denoDir = await Deno.makeTempDir({ prefix: "et-compile-denodir-" });
  // A port nothing listens on: the download fails at once, network or not.
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const proxy = `http://127.0.0.1:${(closed.addr as Deno.NetAddr).port}`;
  closed.close();
  try {
    // Nothing of this environment: no DENORT_BIN, no NO_PROXY.
    const run = await compile(["--target", "linux-aarch64"], {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: denoDir,
      DENO_DIR: denoDir,
      HTTPS_PROXY: proxy,
      https_proxy: proxy,
    }, true);
    assert.equal(run.code, 1, run.stderr);
    assert.deepEqual(run.lines.slice(1), [
      "compile: cannot download Deno's runtime (denort) for linux-aarch64: compiling needs that download once per target (then it is cached), or DENORT_BIN=/path/to/denort to build this host's target",
    ]);
    assert.deepEqual(run.files, [], "no binary, no SHA256SUMS");
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});

Deno.test("compile: a DENORT_BIN that is missing, or is the deno command, is refused in one line", async () => {
  const host = hostTarget();
  if (!host) {
    console.log("compile_test: this host is no release target: skipped");
    return;
  }
  let run = await compile([], { DENORT_BIN: "/nonexistent/denort" });
  assert.equal(run.code, 1, run.stderr);
  assert.equal(
    run.lines.at(-1),
    "compile: DENORT_BIN=/nonexistent/denort does not exist",
  );
  assert.deepEqual(run.files, []);

  // The full deno binary makes a program that ignores its payload: the
  // host binary's --version answers as deno, and the script says why.
  run = await compile([], { DENORT_BIN: Deno.execPath() });
  assert.equal(run.code, 1, run.stderr);
  assert.equal(
    run.lines[0],
    `compile: DENORT_BIN is set: building ${host.name} only (one runtime fits one target)`,
  );
  assert.match(
    run.lines.at(-1)!,
    /^compile: .*et-[a-z0-9_-]+ --version answered 'deno [^']*', not 'et [^']*': DENORT_BIN must be Deno's runtime \(denort\), not the deno command$/,
  );
  assert.deepEqual(run.files, [], "neither the bad binary nor SHA256SUMS");
});
