/**
 * `deno task compile`: builds the single `et` binary for every release
 * target with `deno compile`, one `dist/et-<os>-<arch>` each, and
 * `dist/SHA256SUMS` (sha256sum's format) for the binaries it built.
 *
 * ```sh
 * deno task compile                           # all four targets
 * deno task compile --target linux-x86_64     # only that one (repeatable)
 * DENORT_BIN=/path/to/denort deno task compile   # this host's target only
 * ```
 *
 * `deno compile` joins the program to Deno's runtime (`denort`), which it
 * downloads once per target from Deno's download host and then keeps in
 * `DENO_DIR`. That download is the only step of building, testing or
 * installing et that needs more than the npm and Debian registries; without
 * it, `DENORT_BIN` names a local runtime instead (one runtime fits one
 * target, so only this host's is built; the full `deno` binary is not a
 * runtime). The host's binary is run once (`--version`) to prove it is et.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { VERSION } from "../src/cli/help.ts";
import { PROTOCOL_VERSION } from "../src/transport/mod.ts";

/** A release target: our name for it and Deno's. */
export interface Target {
  /** `<os>-<arch>`: the binary is `et-<name>`. */
  name: string;
  /** What `deno compile --target` calls it. */
  triple: string;
}

/** Every release target, in build order. */
export const TARGETS: readonly Target[] = [
  { name: "linux-x86_64", triple: "x86_64-unknown-linux-gnu" },
  { name: "linux-aarch64", triple: "aarch64-unknown-linux-gnu" },
  { name: "darwin-x86_64", triple: "x86_64-apple-darwin" },
  { name: "darwin-aarch64", triple: "aarch64-apple-darwin" },
];

/** What `et --version` of this source tree prints. */
export const VERSION_LINE = `et ${VERSION} (protocol ${PROTOCOL_VERSION})`;

/** A bad request of the caller: one line, exit 2. */
class UsageError extends Error {}

/** The target of the machine this runs on, if it is a release target. */
export function hostTarget(
  build: { os: string; arch: string } = Deno.build,
): Target | undefined {
  return TARGETS.find((t) => t.name === `${build.os}-${build.arch}`);
}

/**
 * Which targets to build: those asked for (by name or triple; none: all),
 * narrowed to this host's when a local runtime is given. Returns a note to
 * show when it narrowed. Throws a one-line UsageError.
 */
export function selectTargets(
  asked: string[],
  denortBin: string | undefined,
  build: { os: string; arch: string } = Deno.build,
): { targets: Target[]; note?: string } {
  const host = hostTarget(build);
  const names = asked.flatMap((a) => a.split(",")).map((a) => a.trim())
    .filter(Boolean);
  const wanted = names.length === 0 ? [...TARGETS] : names.map((name) => {
    const target = TARGETS.find((t) => t.name === name || t.triple === name);
    if (!target) {
      throw new UsageError(
        `unknown target '${name}' (one of ${
          TARGETS.map((t) => t.name).join(", ")
        })`,
      );
    }
    return target;
  });
  const targets = wanted.filter((t, i) => wanted.indexOf(t) === i);
  if (!denortBin) return { targets };
  if (!host) {
    throw new UsageError(
      `DENORT_BIN is set, but this host (${build.os}-${build.arch}) is no release target`,
    );
  }
  if (!targets.includes(host)) {
    throw new UsageError(
      `DENORT_BIN fits this host's target (${host.name}) only; unset it to build ${
        targets.map((t) => t.name).join(", ")
      } (that needs Deno's runtime download)`,
    );
  }
  const skipped = targets.filter((t) => t !== host);
  return {
    targets: [host],
    note: names.length === 0 || skipped.length > 0
      ? `DENORT_BIN is set: building ${host.name} only (one runtime fits one target)`
      : undefined,
  };
}

/**
 * One line saying why `deno compile` failed for `target`, from its
 * stderr: above all, that Deno's runtime could not be downloaded.
 */
export function explainCompileFailure(
  stderr: string,
  target: Target,
  denortBin: string | undefined,
): string {
  const text = stripColors(stderr);
  if (denortBin && /Could not find denort/i.test(text)) {
    return `DENORT_BIN=${denortBin} does not exist`;
  }
  if (
    /denort-[\w-]+\.zip|dl\.deno\.land|error sending request/i.test(text)
  ) {
    return `cannot download Deno's runtime (denort) for ${target.name}: ` +
      `compiling needs that download once per target (then it is cached), ` +
      `or DENORT_BIN=/path/to/denort to build this host's target`;
  }
  const first = text.split("\n").map((l) => l.trim()).find((l) =>
    /^error/i.test(l)
  );
  return `deno compile failed for ${target.name}: ${
    first ?? text.trim().split("\n").at(-1) ?? "no message"
  }`;
}

function stripColors(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

/** The SHA-256 of a file, hex, read in chunks. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buffer = new Uint8Array(1 << 20);
  for (let n; (n = await file.read(buffer)) !== null;) {
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}

/** Writes `text` to `path` through a temp file and a rename. */
async function writeAtomically(path: string, text: string) {
  const temp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(temp, text);
  await Deno.rename(temp, path);
}

/** What {@linkcode compileAll} needs. */
export interface CompileOptions {
  targets: Target[];
  /** Directory of the binaries and SHA256SUMS. */
  outDir: string;
  denortBin?: string;
  /** Progress lines. */
  say(text: string): void;
}

/**
 * Compiles each target into `outDir` and writes `outDir/SHA256SUMS` for
 * them; proves the host's binary is et. Throws a one-line Error at the
 * first failure (SHA256SUMS then is absent, never stale).
 */
export async function compileAll(options: CompileOptions): Promise<string[]> {
  const root = fileURLToPath(new URL("../", import.meta.url));
  const outDir = resolve(options.outDir);
  await Deno.mkdir(outDir, { recursive: true });
  const sums = `${outDir}/SHA256SUMS`;
  await Deno.remove(sums).catch(() => {});
  const built: string[] = [];
  for (const target of options.targets) {
    const file = `et-${target.name}`;
    const output = `${outDir}/${file}`;
    options.say(`${output} (${target.triple})`);
    const result = await new Deno.Command(Deno.execPath(), {
      args: [
        "compile",
        "-A",
        // A compiled program keeps its V8 code cache in $TMPDIR, which
        // every user shares: a cache file planted there by one user would
        // be loaded by another user's et, or by the root daemon. Without
        // it each start compiles its JavaScript again, a little slower.
        "--no-code-cache",
        "--target",
        target.triple,
        "--output",
        output,
        `${root}main.ts`,
      ],
      cwd: root,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!result.success) {
      throw new Error(
        explainCompileFailure(
          new TextDecoder().decode(result.stderr),
          target,
          options.denortBin,
        ),
      );
    }
    if (target === hostTarget()) {
      await proveEt(output, options.denortBin).catch(async (error) => {
        await Deno.remove(output).catch(() => {}); // not et: not kept
        throw error;
      });
    }
    built.push(file);
  }
  const lines = [];
  for (const file of built) {
    lines.push(`${await sha256File(`${outDir}/${file}`)}  ${file}\n`);
  }
  await writeAtomically(sums, lines.join(""));
  options.say(`${sums} (${built.length} binaries)`);
  return built;
}

/** Runs the host's binary with `--version`: it must answer as et. */
async function proveEt(binary: string, denortBin: string | undefined) {
  const child = new Deno.Command(binary, {
    args: ["--version"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  const output = await child.output();
  clearTimeout(timer);
  const answer = new TextDecoder().decode(output.stdout).trim().split("\n")[0];
  if (answer !== VERSION_LINE) {
    const hint = denortBin
      ? ": DENORT_BIN must be Deno's runtime (denort), not the deno command"
      : "";
    throw new Error(
      `${binary} --version answered '${answer}', not '${VERSION_LINE}'${hint}`,
    );
  }
}

const HELP = `Usage: deno task compile [--target NAME]... [--out DIR]

Builds the single et binary with deno compile: DIR/et-<os>-<arch> for each
target (${TARGETS.map((t) => t.name).join(", ")}; default: all)
and DIR/SHA256SUMS (default DIR: dist).

deno compile downloads Deno's runtime once per target (then keeps it in
DENO_DIR): the only step of et that needs that download. Offline, set
DENORT_BIN=/path/to/denort: this host's target only is built with it.
`;

async function main(args: string[]): Promise<number> {
  const say = (text: string) => console.error(`compile: ${text}`);
  try {
    let values;
    try {
      values = parseArgs({
        args,
        options: {
          target: { type: "string", multiple: true },
          out: { type: "string" },
          help: { type: "boolean", short: "h" },
        },
        strict: true,
        allowPositionals: false,
      }).values;
    } catch (error) {
      throw new UsageError((error as Error).message.split("\n")[0]);
    }
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const denortBin = Deno.env.get("DENORT_BIN") || undefined;
    // deno compile takes an empty DENORT_BIN for a path: unset is meant.
    if (!denortBin) Deno.env.delete("DENORT_BIN");
    const { targets, note } = selectTargets(values.target ?? [], denortBin);
    if (note) say(note);
    await compileAll({
      targets,
      outDir: values.out ?? "dist",
      denortBin,
      say,
    });
    return 0;
  } catch (error) {
    say((error as Error).message);
    return error instanceof UsageError ? 2 : 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
