/**
 * A stand-in release for installer tests: an HTTP server on 127.0.0.1
 * serving `et-<os>-<arch>` binaries and a SHA256SUMS, logging each request,
 * and a helper that runs `scripts/install.sh` against it.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { VERSION } from "../../src/cli/help.ts";
import { PROTOCOL_VERSION } from "../../src/transport/mod.ts";

/** The repository root. */
export const ROOT = new URL("../../", import.meta.url).pathname.replace(
  /\/$/,
  "",
);

/** The installer under test. */
export const INSTALL_SH = `${ROOT}/scripts/install.sh`;

/** What `et --version` prints. */
export const VERSION_LINE = `et ${VERSION} (protocol ${PROTOCOL_VERSION})`;

/** This machine's release name: `et-<os>-<arch>`. */
export function hostArtifact(): string {
  const arch = Deno.build.arch === "aarch64" ? "aarch64" : "x86_64";
  return `et-${Deno.build.os}-${arch}`;
}

/**
 * A stand-in with et's `--version` contract: a small sh script (no
 * compiled binary is needed to test the installer).
 */
export function standInBinary(tag = "stand-in"): Uint8Array {
  return new TextEncoder().encode(
    `#!/bin/sh\n# ${tag}\ncase "$1" in\n--version) echo "${VERSION_LINE}" ;;\n*) echo "et ${tag}: $*" ;;\nesac\n`,
  );
}

/** A SHA256SUMS file for `files`, as sha256sum writes it. */
export function sha256sums(files: Record<string, Uint8Array>): string {
  return Object.entries(files).map(([name, bytes]) =>
    `${createHash("sha256").update(bytes).digest("hex")}  ${name}\n`
  ).join("");
}

/** A running stand-in release server. */
export interface ReleaseServer {
  /** `http://127.0.0.1:<port>`: the ET_DOWNLOAD_BASE. */
  base: string;
  /** Paths requested so far. */
  requests: string[];
  /** Files served, by name (change them between runs). */
  files: Map<string, Uint8Array>;
  close(): Promise<void>;
}

/** Serves `files` (name → bytes) on 127.0.0.1, any free port. */
export function serveRelease(
  files: Record<string, Uint8Array | string>,
): ReleaseServer {
  const served = new Map<string, Uint8Array>();
  for (const [name, body] of Object.entries(files)) {
    served.set(
      name,
      typeof body === "string" ? new TextEncoder().encode(body) : body,
    );
  }
  const requests: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const name = new URL(request.url).pathname.replace(/^\//, "");
      requests.push(name);
      const body = served.get(name);
      return body
        ? new Response(body.slice())
        : new Response("not found\n", { status: 404 });
    },
  );
  return {
    base: `http://127.0.0.1:${server.addr.port}`,
    requests,
    files: served,
    close: () => server.shutdown(),
  };
}

/** A finished run of the installer. */
export interface InstallRun {
  code: number;
  stdout: string;
  stderr: string;
  /** The installer's own lines on stderr ("et install: …"). */
  lines: string[];
}

/** Options of {@linkcode runInstaller}. */
export interface RunOptions {
  /** ET_DOWNLOAD_BASE. */
  base?: string;
  /** The script fed on stdin to `sh -s --` (as `curl … | sh` does). */
  stdin?: string;
  /** Directory put first on PATH (fake `uname`, `systemctl`). */
  pathFirst?: string;
  /** Program that runs the command line (e.g. `["unshare", "-m"]`). */
  wrapper?: string[];
}

/**
 * Runs `sh scripts/install.sh ARGS` (or, with `stdin`, `sh -s -- ARGS`
 * reading the script from stdin).
 */
export async function runInstaller(
  args: string[],
  options: RunOptions = {},
): Promise<InstallRun> {
  const env: Record<string, string> = {};
  if (options.base) env.ET_DOWNLOAD_BASE = options.base;
  if (options.pathFirst) {
    env.PATH = `${options.pathFirst}:${
      Deno.env.get("PATH") ?? "/usr/bin:/bin"
    }`;
  }
  const argv = options.stdin === undefined
    ? ["sh", INSTALL_SH, ...args]
    : ["sh", "-s", "--", ...args];
  const full = [...(options.wrapper ?? []), ...argv];
  const child = new Deno.Command(full[0], {
    args: full.slice(1),
    env,
    stdin: options.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (options.stdin !== undefined) {
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode(options.stdin));
    await writer.close();
  }
  const output = await child.output();
  const stderr = new TextDecoder().decode(output.stderr);
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr,
    lines: stderr.split("\n").filter((line) => line.startsWith("et install:")),
  };
}

/** Every path under `dir` (relative, directories ending in "/"), sorted. */
export async function tree(dir: string): Promise<string[]> {
  const found: string[] = [];
  async function walk(at: string, prefix: string) {
    for await (const entry of Deno.readDir(at)) {
      if (entry.isDirectory) {
        found.push(`${prefix}${entry.name}/`);
        await walk(`${at}/${entry.name}`, `${prefix}${entry.name}/`);
      } else {
        found.push(`${prefix}${entry.name}`);
      }
    }
  }
  try {
    await walk(dir, "");
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return found.sort();
}

/** Writes an executable sh script. */
export async function writeScript(path: string, body: string) {
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}`);
  await Deno.chmod(path, 0o755);
}
