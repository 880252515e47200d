/**
 * A whole `et` world on this machine for end-to-end tests: a private sshd,
 * an `et server` daemon (from source), and the command lines that run the
 * client against them — optionally through the fault proxy.
 *
 * @module
 */

import { type Sshd, startSshd } from "../helpers/sshd.ts";

/** The repository root. */
export const ROOT = new URL("../../", import.meta.url).pathname.replace(
  /\/$/,
  "",
);
/** Runs `et` from source. */
export const ET = [Deno.execPath(), "run", "-A", `${ROOT}/main.ts`];

/** A running world. */
export interface EtWorld {
  sshd: Sshd;
  /** Temp dir of this world (router socket, logs, data files). */
  dir: string;
  /** The daemon's TCP port. */
  daemonPort: number;
  routerPath: string;
  /** Client argv (program first) for `[user@]et-test:<port>` plus `extra`. */
  client(
    extra?: string[],
    options?: { port?: number; user?: string },
  ): string[];
  /** Stops the daemon and sshd, kills stray terminal processes. */
  close(): Promise<void>;
}

async function waitForLine(
  stream: ReadableStream<Uint8Array>,
  pattern: RegExp,
  timeoutMs: number,
): Promise<RegExpMatchArray> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const timer = setTimeout(() => reader.cancel().catch(() => {}), timeoutMs);
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`daemon did not start: ${text}`);
      text += decoder.decode(value);
      const match = text.match(pattern);
      if (match) return match;
    }
  } finally {
    clearTimeout(timer);
    reader.releaseLock();
  }
}

/** Kills every process whose environment names our router socket. */
async function killTerminals(routerPath: string) {
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const env = await Deno.readTextFile(`/proc/${entry.name}/environ`);
      if (env.split("\0").includes(`ET_ROUTER_SOCKET=${routerPath}`)) {
        Deno.kill(Number(entry.name), "SIGKILL");
      }
    } catch {
      // gone, or not ours to read
    }
  }
}

/** Starts sshd and the daemon. */
export async function startWorld(): Promise<EtWorld> {
  const sshd = await startSshd();
  const dir = await Deno.makeTempDir({ prefix: "et-world-" });
  // Other test users' terminals must reach the router socket inside.
  await Deno.chmod(dir, 0o755);
  const routerPath = `${dir}/router.sock`;
  const daemon = new Deno.Command(ET[0], {
    args: [
      ...ET.slice(1),
      "server",
      "--port",
      "0",
      "--bind",
      "127.0.0.1",
      "--router",
      routerPath,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const match = await waitForLine(
    daemon.stderr,
    /listening on port (\d+)/,
    20_000,
  );
  const daemonPort = Number(match[1]);
  // Keep draining the daemon's log so it never blocks on a full pipe.
  const logFile = await Deno.open(`${dir}/daemon.log`, {
    create: true,
    write: true,
  });
  const draining = daemon.stderr.pipeTo(logFile.writable).catch(() => {});
  const terminalPath = `env ET_ROUTER_SOCKET=${routerPath} ${ET.join(" ")}`;
  return {
    sshd,
    dir,
    daemonPort,
    routerPath,
    client(extra = [], options = {}) {
      const target = `${
        options.user ? options.user + "@" : ""
      }${sshd.hostAlias}:${options.port ?? daemonPort}`;
      return [
        ...ET,
        "--ssh",
        sshd.sshCommand,
        "--terminal-path",
        terminalPath,
        "--log-file",
        `${dir}/client.log`,
        "-v",
        ...extra,
        target,
      ];
    },
    async close() {
      await killTerminals(routerPath);
      try {
        daemon.kill("SIGTERM");
      } catch { /* gone */ }
      await daemon.status;
      await draining;
      await sshd.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Quotes argv for a shell command line (tmux runs a string). */
export function shellQuote(argv: string[]): string {
  return argv.map((arg) =>
    /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`
  )
    .join(" ");
}
