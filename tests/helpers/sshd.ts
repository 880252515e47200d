/**
 * A private OpenSSH server on 127.0.0.1 for end-to-end tests: its own host
 * key, its own user key, its own port, and a client config that reaches it as
 * `et-test` without touching `~/.ssh` or the system's sshd.
 *
 * @module
 */

import { descendantsOf } from "../../src/platform/process_tree.ts";

const SSHD = "/usr/sbin/sshd";
const HOST_ALIAS = "et-test";
const READY_TIMEOUT_MS = 15_000;
/** Keep this much of sshd's log for error messages and {@linkcode Sshd.log}. */
const LOG_KEEP = 64 * 1024;

/** A running private sshd; see {@linkcode startSshd}. */
export interface Sshd {
  /** The port sshd listens on, on 127.0.0.1. */
  port: number;
  /**
   * The temp dir (mode 0711: other test users may reach the authorized
   * keys file, nobody may list it) holding keys, configs and the pid file.
   */
  dir: string;
  /** The user that logs in: the current one (`id -un`). */
  user: string;
  /** The `Host` name of the client config: `"et-test"`. */
  hostAlias: string;
  /** An ssh client config file that reaches this server as {@linkcode hostAlias}. */
  configPath: string;
  /** `ssh -F <configPath>`: prefix for commands, e.g. `${sshCommand} et-test true`. */
  sshCommand: string;
  /** What sshd logged (stderr, LogLevel VERBOSE), the last 64 KiB. */
  log(): string;
  /** Kills sshd and its session processes, and removes {@linkcode dir}. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startSshd}. */
export interface StartSshdOptions {
  /**
   * Authorize the generated user key. With `false` the authorized keys file
   * is empty, so every login fails (ssh exits with 255).
   * @default {true}
   */
  authorizedKeys?: boolean;
  /**
   * More variables for every session's environment (sshd's `SetEnv`,
   * which is applied after sshd's own, so it can even move `HOME`).
   * @default {{}}
   */
  env?: Record<string, string>;
  /**
   * Listen on `::1` as well as on 127.0.0.1 (same port), for IPv6 tests.
   * @default {false}
   */
  ipv6?: boolean;
}

/**
 * Starts a private sshd and resolves once logins work (or, with
 * `authorizedKeys: false`, once it greets with its SSH banner).
 *
 * Throws a clear error when OpenSSH is not installed.
 *
 * @example
 * ```ts
 * const sshd = await startSshd();
 * try {
 *   const out = await new Deno.Command("ssh", {
 *     args: ["-F", sshd.configPath, sshd.hostAlias, "echo", "hi"],
 *   }).output();
 * } finally {
 *   await sshd.stop();
 * }
 * ```
 */
export async function startSshd(options: StartSshdOptions = {}): Promise<Sshd> {
  await requireTool(SSHD, "openssh-server");
  await requireTool("ssh", "openssh-client");
  await requireTool("ssh-keygen", "openssh-client");
  // sshd refuses to start without its privilege separation dir; the Debian
  // package creates it only at boot (systemd tmpfiles) or from its init
  // script, neither of which runs in a container.
  await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 }).catch(
    () => {},
  );

  const dir = await Deno.makeTempDir({ prefix: "et-sshd-" });
  // sshd reads AuthorizedKeysFile as the user logging in: other test users
  // must be able to reach it. Private keys inside stay 0600.
  await Deno.chmod(dir, 0o711);
  try {
    const user = (await run("id", ["-un"])).trim();
    await run("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "et-test-host",
      "-f",
      `${dir}/host_ed25519`,
    ]);
    await run("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "et-test-user",
      "-f",
      `${dir}/id_ed25519`,
    ]);
    const loginsWork = options.authorizedKeys ?? true;
    const authorized = loginsWork
      ? await Deno.readTextFile(`${dir}/id_ed25519.pub`)
      : "";
    await Deno.writeTextFile(`${dir}/authorized_keys`, authorized, {
      mode: 0o644,
    });

    // A free port can be taken by someone else between probing and sshd's
    // bind; then sshd exits at once and we try another.
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = freePort();
      try {
        return await launch(
          dir,
          user,
          port,
          loginsWork,
          options.env ?? {},
          options.ipv6,
        );
      } catch (error) {
        lastError = error;
        if (!(error instanceof PortTaken)) break;
      }
    }
    throw lastError;
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
}

class PortTaken extends Error {}

async function launch(
  dir: string,
  user: string,
  port: number,
  loginsWork: boolean,
  env: Record<string, string>,
  ipv6 = false,
): Promise<Sshd> {
  const sshdConfig = `${dir}/sshd_config`;
  const configPath = `${dir}/ssh_config`;
  await Deno.writeTextFile(
    sshdConfig,
    [
      `ListenAddress 127.0.0.1`,
      ...(ipv6 ? [`ListenAddress ::1`] : []),
      `Port ${port}`,
      `HostKey "${dir}/host_ed25519"`,
      `PidFile "${dir}/sshd.pid"`,
      `AuthorizedKeysFile "${dir}/authorized_keys"`,
      `PubkeyAuthentication yes`,
      `PasswordAuthentication no`,
      `KbdInteractiveAuthentication no`,
      // Tests run as root in containers; keys only, never passwords.
      `PermitRootLogin prohibit-password`,
      // The temp dir and keys are not in the user's home with the owners
      // and modes StrictModes insists on.
      `StrictModes no`,
      // No PAM: no /etc/pam.d/sshd session stack (loginuid, motd, limits),
      // which fails or adds noise in containers.
      `UsePAM no`,
      `PrintMotd no`,
      `PrintLastLog no`,
      `UseDNS no`,
      // Sessions get sshd's compiled-in PATH otherwise, which may lack the
      // directory of `deno` and other tools the tests run over ssh.
      // PYENV_REHASH_TIMEOUT: where root's ~/.bashrc runs `pyenv init`
      // (this machine's does), every login's `pyenv rehash` waits up to
      // 60 s for a lock file that a login killed mid-rehash (tests kill
      // ssh on purpose) leaves behind; one second bounds that wait.
      `SetEnv "PATH=${
        Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin"
      }" PYENV_REHASH_TIMEOUT=1${
        Object.entries(env).map(([name, value]) => ` "${name}=${value}"`)
          .join("")
      }`,
      `AcceptEnv LANG LC_* TERM`,
      // Tests open many connections at once; the default (10:30:100) starts
      // dropping unauthenticated ones at 10.
      `MaxStartups 100`,
      `MaxSessions 100`,
      `LogLevel VERBOSE`,
      "",
    ].join("\n"),
  );
  await Deno.writeTextFile(
    configPath,
    [
      `Host ${HOST_ALIAS}`,
      `  HostName 127.0.0.1`,
      `  Port ${port}`,
      `  User ${user}`,
      `  IdentityFile "${dir}/id_ed25519"`,
      `  IdentitiesOnly yes`,
      `  StrictHostKeyChecking no`,
      `  UserKnownHostsFile /dev/null`,
      `  GlobalKnownHostsFile /dev/null`,
      `  LogLevel ERROR`,
      `  BatchMode yes`,
      `  ControlMaster no`,
      `  ControlPath none`,
      `  ConnectTimeout 10`,
      "",
    ].join("\n"),
  );

  const child = new Deno.Command(SSHD, {
    // -D: stay in the foreground as our child; -e: log to stderr, not syslog.
    args: ["-D", "-e", "-f", sshdConfig],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const logReader = child.stderr.getReader();
  const logDone = (async () => {
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await logReader.read();
        if (done) break;
        log = (log + decoder.decode(value, { stream: true })).slice(-LOG_KEEP);
      }
    } catch {
      // Cancelled by stop().
    }
  })();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });

  /** Ends sshd and its sessions; the dir stays (a retry may reuse it). */
  const halt = async () => {
    if (!exited) {
      // Per-connection sshd processes and the sessions under them outlive
      // the listener when it is killed; end them too so no shell from a
      // test lingers. (Processes that left with setsid and were reparented
      // are not found: tests that start daemons stop them themselves.)
      const descendants = await descendantsOf(child.pid);
      try {
        child.kill("SIGTERM");
      } catch {
        // Exited meanwhile.
      }
      for (const pid of descendants) {
        try {
          Deno.kill(pid, "SIGTERM");
        } catch {
          // Gone already.
        }
      }
    }
    await status;
    // Every sshd process writes its log to the same pipe; one that somehow
    // survived would hold it open forever, so give up on the rest of the log
    // after a moment rather than hang.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) =>
      timer = setTimeout(() => resolve("late"), 2000)
    );
    if (await Promise.race([logDone, late]) === "late") {
      await logReader.cancel();
    }
    clearTimeout(timer);
    await logDone;
  };

  try {
    await waitReady(port, configPath, loginsWork, () => exited);
  } catch (error) {
    await halt().catch(() => {});
    if (exited && /Address already in use|Bind to port .* failed/.test(log)) {
      throw new PortTaken(`port ${port} taken`);
    }
    throw new Error(
      `sshd on port ${port} did not become ready: ${
        (error as Error).message
      }\n--- sshd log ---\n${log}`,
    );
  }

  let stopped: Promise<void> | undefined;
  return {
    port,
    dir,
    user,
    hostAlias: HOST_ALIAS,
    configPath,
    sshCommand: `ssh -F ${configPath}`,
    log: () => log,
    stop: () =>
      stopped ??= halt().finally(() =>
        Deno.remove(dir, { recursive: true }).catch(() => {})
      ),
  };
}

/** Waits for the SSH banner, then (if logins should work) for `ssh true`. */
async function waitReady(
  port: number,
  configPath: string,
  loginsWork: boolean,
  exited: () => boolean,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastProblem = "no attempt";
  while (Date.now() < deadline) {
    if (exited()) throw new Error("sshd exited");
    const banner = await readBanner(port).catch((e: Error) => e.message);
    if (banner.startsWith("SSH-")) {
      if (!loginsWork) return;
      const probe = await new Deno.Command("ssh", {
        args: ["-F", configPath, HOST_ALIAS, "true"],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).output();
      if (probe.success) return;
      lastProblem = `ssh ${HOST_ALIAS} true: exit ${probe.code}: ${
        new TextDecoder().decode(probe.stderr).trim()
      }`;
    } else {
      lastProblem = `no banner: ${banner}`;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${READY_TIMEOUT_MS} ms (${lastProblem})`);
}

/** Connects and returns the first line the server sends (its SSH banner). */
async function readBanner(port: number): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const buf = new Uint8Array(256);
    let text = "";
    while (!text.includes("\n")) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text.trim();
  } finally {
    conn.close();
  }
}

/** A port that was free a moment ago (bound with port 0, then released). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

async function requireTool(name: string, aptPackage: string): Promise<void> {
  const found = name.startsWith("/")
    ? await Deno.stat(name).then(() => true, () => false)
    : await new Deno.Command("sh", {
      args: ["-c", `command -v "$1"`, "sh", name],
      stdout: "null",
      stderr: "null",
    }).output().then((o) => o.success);
  if (!found) {
    throw new Error(
      `${name} not found: OpenSSH is needed for end-to-end tests; run \`apt-get install -y ${aptPackage}\``,
    );
  }
}

/** Runs a command and returns its stdout; throws with its stderr on failure. */
async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdin: "null" }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (${out.code}): ${decode(out.stderr)}`,
    );
  }
  return decode(out.stdout);
}
