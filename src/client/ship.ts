/**
 * "Ship yourself": when `et` is missing on the remote (the bootstrap's
 * command was not found), the client installs a binary for the remote's
 * platform there over ssh, then goes on in no-root mode.
 *
 * - {@link probeRemote} asks the remote (over ssh) for `uname -sm` and the
 *   version of an `et` already at `~/.local/bin/et` (a non-interactive ssh
 *   PATH rarely holds `~/.local/bin`, so that is called by its path).
 * - {@link binaryFor} finds a binary for that platform: this program
 *   itself when it is a compiled et for the same platform, or
 *   `et-<os>-<arch>` (the release artifacts' names) in `--binaries DIR`.
 * - {@link installRemote} streams it over ssh's stdin into a temp file
 *   beside `~/.local/bin/et`, checks its sha256 there, and only then
 *   moves it into place.
 *
 * @module
 */

import { logger } from "../log.ts";

const log = logger("ship");

/** Where an installed et lives on the remote, as the user reads it. */
export const REMOTE_ET_SHOWN = "~/.local/bin/et";

/** The same for the remote's shell: the command that runs it. */
export const REMOTE_ET_COMMAND = '"$HOME/.local/bin/et"';

/** A platform as `uname -sm` names it, and as our artifacts do. */
export interface Platform {
  /** `uname -sm` as the remote printed it, e.g. "Linux x86_64". */
  uname: string;
  /** The artifact name's part, e.g. "linux-x86_64"; null if we build none. */
  artifact: string | null;
}

/** Maps `uname -sm` to a release artifact's `<os>-<arch>`. */
export function platformOf(uname: string): Platform {
  const [system = "", machine = ""] = uname.trim().split(/\s+/);
  const os = ({ Linux: "linux", Darwin: "darwin" } as Record<string, string>)[
    system
  ];
  const arch = ({
    x86_64: "x86_64",
    amd64: "x86_64",
    aarch64: "aarch64",
    arm64: "aarch64",
  } as Record<string, string>)[machine];
  return {
    uname: uname.trim(),
    artifact: os && arch ? `${os}-${arch}` : null,
  };
}

/** What the remote said to {@link probeRemote}. */
export interface RemoteProbe {
  platform: Platform;
  /** `~/.local/bin/et --version`'s line, or null when none runs there. */
  installed: string | null;
}

/** Marks where the probe's answer starts, after any login noise. */
const PROBE_MARKER = "ET_PROBE";

/**
 * Runs one ssh: `uname -sm`, and the version of `~/.local/bin/et` if it
 * runs. Throws a one-line Error when ssh fails.
 */
export async function probeRemote(
  ssh: string[],
  target: string,
): Promise<RemoteProbe> {
  const script = `echo ${PROBE_MARKER}; uname -sm; ` +
    `if [ -x ${REMOTE_ET_COMMAND} ]; then ${REMOTE_ET_COMMAND} --version ` +
    `2>/dev/null; fi; true`;
  const [program, ...args] = ssh;
  const output = await new Deno.Command(program, {
    args: [...args, target, `sh -c '${script}'`],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const lines = new TextDecoder().decode(output.stdout).split("\n");
  const at = lines.findIndex((line) => line.trim() === PROBE_MARKER);
  if (!output.success || at < 0 || !lines[at + 1]?.trim()) {
    throw new Error(
      `could not ask ${target} for its platform (uname -sm over ssh, exit ${output.code})`,
    );
  }
  const installed = lines[at + 2]?.trim() || null;
  return { platform: platformOf(lines[at + 1]), installed };
}

/** Where the binary to ship comes from. */
export interface BinarySource {
  /** `--binaries DIR`: release artifacts named `et-<os>-<arch>`. */
  binariesDir?: string;
  /** This program: compiled (`Deno.build.standalone`) and its platform. */
  self?: { standalone: boolean; path: string; os: string; arch: string };
}

/**
 * The local path of a binary for `platform`, or null: from `--binaries`
 * first, else this program when it is a compiled et for that platform.
 */
export async function binaryFor(
  platform: Platform,
  source: BinarySource,
): Promise<string | null> {
  if (platform.artifact === null) return null;
  if (source.binariesDir !== undefined) {
    const path = `${source.binariesDir}/et-${platform.artifact}`;
    try {
      if ((await Deno.stat(path)).isFile) return path;
    } catch { /* not there */ }
  }
  const self = source.self ?? {
    standalone: Deno.build.standalone,
    path: Deno.execPath(),
    os: Deno.build.os,
    arch: Deno.build.arch,
  };
  if (self.standalone && `${self.os}-${self.arch}` === platform.artifact) {
    return self.path;
  }
  return null;
}

/** Hex sha256 of a local file, read in chunks. */
export async function fileSha256(path: string): Promise<string> {
  // Loaded here: every client loads this module, few ever install.
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  const buffer = new Uint8Array(1 << 20);
  for (let n; (n = await file.read(buffer)) !== null;) {
    hash.update(buffer.subarray(0, n));
  }
  return hash.digest("hex");
}

/**
 * The remote side of an install, for `sh -c '…'` (no single quote in
 * it): the binary from stdin into a temp file next to its place, its
 * sha256 checked there (sha256sum, or shasum on macOS), then `mv` into
 * place; the temp file is removed on any failure.
 */
export function installScript(sha256: string): string {
  return [
    "set -e",
    'd="$HOME/.local/bin"',
    'mkdir -p "$d"',
    't="$d/.et-install.$$"',
    'trap "rm -f \\"$t\\"" EXIT',
    'cat > "$t"',
    "if command -v sha256sum >/dev/null 2>&1; " +
    'then s=$(sha256sum < "$t"); else s=$(shasum -a 256 < "$t"); fi',
    's="${s%% *}"',
    `if [ "$s" != "${sha256}" ]; then echo "ET_INSTALL_MISMATCH $s"; exit 3; fi`,
    'chmod 755 "$t"',
    'mv -f "$t" "$d/et"',
    "trap - EXIT",
    "echo ET_INSTALLED",
  ].join("; ");
}

/**
 * Copies the binary at `path` to `~/.local/bin/et` on `target` over ssh,
 * verified by its sha256 on the remote before it is moved into place.
 * Throws a one-line Error when it did not land.
 */
export async function installRemote(
  ssh: string[],
  target: string,
  path: string,
): Promise<void> {
  const sha256 = await fileSha256(path);
  const [program, ...args] = ssh;
  const child = new Deno.Command(program, {
    args: [...args, target, `sh -c '${installScript(sha256)}'`],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const file = await Deno.open(path);
  const sending = file.readable.pipeTo(child.stdin).catch(() => {});
  const output = await child.output();
  await sending;
  const text = new TextDecoder().decode(output.stdout);
  if (/^ET_INSTALLED$/m.test(text)) {
    log.warn(`installed ${path} (sha256 ${sha256}) on ${target}`);
    return;
  }
  const mismatch = text.match(/^ET_INSTALL_MISMATCH (\S*)$/m);
  throw new Error(
    mismatch
      ? `the copy of et on ${target} has sha256 ${
        mismatch[1]
      }, not ${sha256}: nothing installed`
      : `installing et on ${target} failed (ssh exit ${output.code}); nothing installed`,
  );
}

/**
 * Asks `question` on the terminal and reads the answer; true for y/yes.
 * Only called when stdin is a terminal.
 */
export async function confirm(question: string): Promise<boolean> {
  const encoder = new TextEncoder();
  Deno.stderr.writeSync(encoder.encode(`${question} [y/N] `));
  const buffer = new Uint8Array(256);
  let answer = "";
  while (!answer.includes("\n")) {
    const n = await Deno.stdin.read(buffer);
    if (n === null) break;
    answer += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return /^\s*y(es)?\s*$/i.test(answer.split("\n")[0]);
}

/** Options of {@link ensureRemoteEt}. */
export interface EnsureOptions {
  ssh: string[];
  /** The ssh destination. */
  target: string;
  /** The terminal command that was not found there (for messages). */
  command: string;
  /** This client's `et --version` line: what an installed et must print. */
  versionLine: string;
  /** The et version, for the question. */
  version: string;
  /** Whether installing is allowed at all (a new session: yes). */
  mayInstall: boolean;
  /** `--install-remote`: install without asking. */
  installRemote: boolean;
  /** `--binaries DIR`. */
  binariesDir?: string;
  /** Tells the user one line. */
  say: (text: string) => void;
}

/**
 * After the bootstrap found no et on the remote: makes sure
 * `~/.local/bin/et` runs there (an et of this version already there is
 * used as it is; otherwise one is installed, after asking unless
 * `installRemote`), so the caller can run it by that path. Throws one
 * line when it cannot.
 */
export async function ensureRemoteEt(options: EnsureOptions): Promise<void> {
  const { target } = options;
  const missing = `'${options.command}' was not found on ${target}`;
  const probe = await probeRemote(options.ssh, target);
  log.info(
    `${target}: ${probe.platform.uname}; ${REMOTE_ET_SHOWN}: ${
      probe.installed ?? "none"
    }`,
  );
  if (probe.installed === options.versionLine) return;
  if (!options.mayInstall) {
    if (probe.installed !== null) return;
    throw new Error(`${missing} (nor ${REMOTE_ET_SHOWN})`);
  }
  const { uname, artifact } = probe.platform;
  const binary = await binaryFor(probe.platform, {
    binariesDir: options.binariesDir,
  });
  if (binary === null) {
    throw new Error(
      artifact === null
        ? `${missing}, and et has no build for ${uname}`
        : `${missing}, and there is no et binary for ${uname} here to install: pass --binaries DIR holding et-${artifact} (or --terminal-path)`,
    );
  }
  const what = `et ${options.version} for ${uname} to ${REMOTE_ET_SHOWN}`;
  if (!options.installRemote) {
    if (!Deno.stdin.isTerminal()) {
      throw new Error(
        `${missing}: pass --install-remote to install ${what} there`,
      );
    }
    if (!await confirm(`install ${what} on ${target}?`)) {
      throw new Error(`${missing}; nothing installed`);
    }
  }
  await installRemote(options.ssh, target, binary);
  options.say(`installed ${what} on ${target} (sha256 checked there)`);
}
