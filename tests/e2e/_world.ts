/**
 * A whole `et` world on this machine for end-to-end tests: a private sshd,
 * an `et server` daemon (from source; or none, for no-root mode), and the
 * command lines that run the client against them — optionally through the
 * fault proxy.
 *
 * @module
 */

import { type Sshd, startSshd } from "../helpers/sshd.ts";
import {
  HOST_PROCESS_NAME,
  hostPaths,
  hostRequest,
} from "../../src/terminal/host_socket.ts";

/** The repository root. */
export const ROOT = new URL("../../", import.meta.url).pathname.replace(
  /\/$/,
  "",
);
/**
 * Runs `et` from source; with `ET_PROFILE_DIR` set, every et process a test
 * or the benchmark starts writes a V8 CPU profile there as it exits
 * (`scripts/bench/profile_summary.ts` reads them).
 */
export const ET = [
  Deno.execPath(),
  "run",
  ...profileFlags(Deno.env.get("ET_PROFILE_DIR")),
  "-A",
  `${ROOT}/main.ts`,
];

function profileFlags(dir: string | undefined): string[] {
  return dir ? ["--cpu-prof", `--cpu-prof-dir=${dir}`] : [];
}

/**
 * Options for every end-to-end `Deno.test`: a world's daemons, sshd and
 * clients are child processes and sockets that outlive single ops, so the
 * resource and op sanitizers are off.
 */
export const E2E_TEST = { sanitizeResources: false, sanitizeOps: false };

/**
 * True under `deno task test:long` (`ET_LONG=1`): tests with a long
 * variant run it (a 60 s outage, chaos with 10 s blackholes) instead of
 * the bounded one the suite runs within its 15 minutes.
 */
export const LONG_VARIANT = Deno.env.get("ET_LONG") === "1";

/** Options of {@linkcode startWorld}. */
export interface WorldOptions {
  /**
   * Give this world's terminals their own runtime directory (sessions,
   * control sockets, terminal logs) inside {@linkcode EtWorld.dir}, so that
   * `--list`, `--attach` and `-x` see only this world's sessions, never
   * those of tests running beside it, and so that their files go with the
   * world (`/tmp/et-<uid>` gathered thousands of dead worlds' sockets,
   * locks and logs). A login as another user gets a directory of its own
   * beside it. With `false`, the user's shared `/tmp/et-<uid>`.
   * @default {true}
   */
  privateRuntime?: boolean;
  /**
   * Run the daemon as this unprivileged user (with `setpriv`), as the
   * systemd unit does with DynamicUser: it must need no privilege.
   * @default {undefined} (the daemon runs as we do)
   */
  daemonUser?: string;
  /**
   * Start the daemon. With `false` no daemon ever listens on the world's
   * router socket (terminals still name it), so sessions serve themselves
   * (no-root mode); {@linkcode EtWorld.daemonPort} is then 0 and clients
   * name no port.
   * @default {true}
   */
  daemon?: boolean;
  /**
   * More environment for every ssh session (see `StartSshdOptions.env`),
   * e.g. a `HOME` of the world's own.
   * @default {{}}
   */
  sshEnv?: Record<string, string>;
  /**
   * Whether bash reads `~/.bashrc` for the commands ssh runs (et's
   * bootstrap, `ssh host cmd`), as it does by default when run by sshd.
   * Off by default here: those logins skip it (sshd sets `SHLVL=1`, and
   * bash reads it only at shell level 1), since on a machine whose root
   * `.bashrc` runs `pyenv init` that costs ~0.2 s per login, hundreds of
   * times a suite. Interactive shells (the sessions' own) still read it;
   * tests of noisy login scripts, and the bench, turn it on.
   * @default {false}
   */
  commandRcFiles?: boolean;
  /**
   * sshd listens on `::1` too, and the daemon binds `127.0.0.1` and `::1`.
   * @default {false}
   */
  ipv6?: boolean;
  /**
   * `ET_HOST_LINGER` for this world's terminals (e.g. `"0"`: the user's
   * host exits with its last session; `"2s"`), as a user would set it in
   * the login environment.
   * @default {undefined} (unset: the host's default, 10 minutes)
   */
  hostLinger?: string;
}

/** A process of this world's terminal role (launcher or host process). */
export interface TerminalProcess {
  pid: number;
  /** Its command line, words joined by spaces. */
  cmdline: string;
  /** Its name (`/proc/<pid>/comm`): {@link HOST_PROCESS_NAME} for a host. */
  name: string;
}

/** A session inside one of this world's host processes. */
export interface HostedSessionProcess extends TerminalProcess {
  /** The session's id, hex. */
  id: string;
  /** Its program's process id. */
  programPid: number;
}

/** A running world. */
export interface EtWorld {
  sshd: Sshd;
  /** Temp dir of this world (router socket, logs, data files). */
  dir: string;
  /**
   * The daemon's TCP port (the same after {@linkcode restartDaemon}); 0 in
   * a world without a daemon.
   */
  daemonPort: number;
  routerPath: string;
  /**
   * Where this world's terminals keep their control sockets and logs
   * (`terminal-<id8>.log`).
   */
  runtimeDir: string;
  /**
   * Where the clients this test process starts keep their runtime files
   * (`share-*.sock`): a private directory while a world is open (see
   * {@linkcode openClientRuntime}).
   */
  clientRuntimeDir: string;
  /**
   * The runtime directory of this world's terminals that log in as `user`
   * ({@linkcode runtimeDir} for us).
   */
  runtimeDirOf(user?: string): string;
  /**
   * Client argv (program first) for `[user@]et-test:<port>` plus `extra`;
   * `env` adds variables for the terminals it starts over ssh (the
   * launcher, and a host that the launcher starts), e.g.
   * `{ ET_HOST_LINGER: "0" }`.
   */
  client(
    extra?: string[],
    options?: { port?: number; user?: string; env?: Record<string, string> },
  ): string[];
  /**
   * Every live process whose environment names this world's router socket:
   * launchers (`et terminal`) and host processes (named
   * {@link HOST_PROCESS_NAME}: `et terminal --host`, or a launcher that
   * became the host).
   */
  terminalProcesses(): Promise<TerminalProcess[]>;
  /**
   * The live sessions, one entry per session, each with the pid and
   * command line of the host process that holds it
   * (what used to be one session process per session).
   */
  sessionProcesses(): Promise<HostedSessionProcess[]>;
  /**
   * Kills the daemon with `signal` and starts it again on the same TCP port
   * and router path; resolves once it listens again. Throws in a world
   * without a daemon.
   */
  restartDaemon(signal?: Deno.Signal): Promise<void>;
  /**
   * Stops the daemon and sshd, kills stray terminal processes. With
   * `ET_TEST_KEEP_WORLD=1` in the environment the world's directory (logs)
   * is kept and its path printed.
   */
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

/** Every live process whose environment names our router socket. */
export async function findTerminals(
  routerPath: string,
): Promise<TerminalProcess[]> {
  const found: TerminalProcess[] = [];
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const env = await Deno.readTextFile(`/proc/${entry.name}/environ`);
      if (!env.split("\0").includes(`ET_ROUTER_SOCKET=${routerPath}`)) {
        continue;
      }
      const cmdline = await Deno.readTextFile(`/proc/${entry.name}/cmdline`);
      // A zombie has an empty command line: it is gone already.
      if (cmdline === "") continue;
      found.push({
        pid: Number(entry.name),
        cmdline: cmdline.split("\0").join(" ").trim(),
        name: (await Deno.readTextFile(`/proc/${entry.name}/comm`)).trim(),
      });
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/**
 * The sessions of the host processes among `terminals`, asked over each
 * host's socket (in its user's runtime directory, as the host found it).
 */
async function hostedSessions(
  terminals: TerminalProcess[],
  routerPath: string,
): Promise<HostedSessionProcess[]> {
  const found: HostedSessionProcess[] = [];
  for (const process of terminals) {
    if (process.name !== HOST_PROCESS_NAME) continue;
    try {
      const env = (await Deno.readTextFile(`/proc/${process.pid}/environ`))
        .split("\0");
      const runtimeBase = env.find((v) => v.startsWith("ET_RUNTIME_DIR="))
        ?.slice(15);
      const uid = (await Deno.readTextFile(`/proc/${process.pid}/status`))
        .match(/^Uid:\s+(\d+)/m)?.[1];
      const dir = runtimeBase ? `${runtimeBase}/et` : `/tmp/et-${uid}`;
      const { socket } = await hostPaths(dir, routerPath);
      const status = JSON.parse(
        await hostRequest(socket, { op: "status" }, 5000),
      );
      if (status.pid !== process.pid) continue;
      for (const session of status.sessions) {
        found.push({ ...process, id: session.id, programPid: session.pid });
      }
    } catch {
      // gone meanwhile, or closing
    }
  }
  return found;
}

/** Kills every process whose environment names our router socket. */
async function killTerminals(routerPath: string) {
  for (const { pid } of await findTerminals(routerPath)) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
}

/** A running daemon process and the pipe of its log. */
export interface DaemonProcess {
  child: Deno.ChildProcess;
  port: number;
  /** Settles once its stderr is drained into daemon.log. */
  draining: Promise<void>;
}

/**
 * Starts `et server` on `port` (0: any) and waits until it listens; its
 * log goes to `dir`/daemon.log.
 */
export async function spawnDaemon(
  dir: string,
  routerPath: string,
  port: number,
  user?: [number, number],
  binds: string[] = ["127.0.0.1"],
): Promise<DaemonProcess> {
  // As another user: that user's own Deno cache, everything else as ours.
  const asUser = user
    ? [
      "setpriv",
      `--reuid=${user[0]}`,
      `--regid=${user[1]}`,
      "--clear-groups",
      "--",
    ]
    : [];
  const argv = [...asUser, ...ET];
  const child = new Deno.Command(argv[0], {
    env: user ? { DENO_DIR: `${dir}/daemon-deno-dir` } : undefined,
    args: [
      ...argv.slice(1),
      "server",
      "--port",
      String(port),
      ...binds.flatMap((address) => ["--bind", address]),
      "--router",
      routerPath,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const match = await waitForLine(
    child.stderr,
    /listening on port (\d+)/,
    20_000,
  ).catch(async (error) => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    throw error;
  });
  // Keep draining the daemon's log so it never blocks on a full pipe; a
  // restarted daemon appends to the same file.
  const logFile = await Deno.open(`${dir}/daemon.log`, {
    create: true,
    append: true,
  });
  const draining = child.stderr.pipeTo(logFile.writable).catch(() => {});
  return { child, port: Number(match[1]), draining };
}

/** Stops a daemon with `signal` and waits for it and its log. */
export async function stopDaemon(daemon: DaemonProcess, signal: Deno.Signal) {
  try {
    daemon.child.kill(signal);
  } catch { /* gone */ }
  await daemon.child.status;
  await daemon.draining;
}

/** Starts sshd and the daemon. */
export async function startWorld(options: WorldOptions = {}): Promise<EtWorld> {
  const sshd = await startSshd({
    env: {
      ...(options.commandRcFiles ? {} : { SHLVL: "1" }),
      ...options.sshEnv,
    },
    ipv6: options.ipv6,
  });
  const binds = options.ipv6 ? ["127.0.0.1", "::1"] : ["127.0.0.1"];
  const dir = await Deno.makeTempDir({ prefix: "et-world-" });
  // Other test users' terminals must reach the router socket inside.
  await Deno.chmod(dir, 0o755);
  const daemonUser = options.daemonUser
    ? userIds(options.daemonUser)
    : undefined;
  // The router's directory belongs to the daemon's user, as /run/et does.
  const routerDir = `${dir}/run-et`;
  await Deno.mkdir(routerDir, { mode: 0o755 });
  if (daemonUser) {
    await Deno.chown(routerDir, ...daemonUser);
    await Deno.mkdir(`${dir}/daemon-deno-dir`);
    await Deno.chown(`${dir}/daemon-deno-dir`, ...daemonUser);
  }
  const routerPath = `${routerDir}/router.sock`;
  let daemon = options.daemon === false
    ? null
    : await spawnDaemon(dir, routerPath, 0, daemonUser, binds);
  const daemonPort = daemon?.port ?? 0;
  let envWords = `ET_ROUTER_SOCKET=${routerPath}`;
  if (options.hostLinger !== undefined) {
    envWords += ` ET_HOST_LINGER=${options.hostLinger}`;
  }
  let runtimeDir = `/tmp/et-${Deno.uid() ?? 0}`;
  const privateRuntime = options.privateRuntime ?? true;
  if (privateRuntime) {
    await Deno.mkdir(`${dir}/run`, { mode: 0o700 });
    runtimeDir = `${dir}/run/et`;
  }
  /** The terminal path for a login as `user` (undefined: as we are). */
  const terminalPathFor = (user?: string) => {
    const base = privateRuntime ? runtimeBaseFor(dir, user) : undefined;
    const words = base ? `${envWords} ET_RUNTIME_DIR=${base}` : envWords;
    return `env ${words} ${ET.join(" ")}`;
  };
  const clientRuntime = await openClientRuntime();
  return {
    sshd,
    dir,
    daemonPort,
    routerPath,
    runtimeDir,
    clientRuntimeDir: `${Deno.env.get("ET_RUNTIME_DIR")}/et`,
    runtimeDirOf(user?: string) {
      const base = privateRuntime ? runtimeBaseFor(dir, user) : undefined;
      if (base) return `${base}/et`;
      return user === undefined ? runtimeDir : `/tmp/et-${userId(user)}`;
    },
    client(extra = [], options = {}) {
      const port = options.port ?? daemonPort;
      const target = `${options.user ? options.user + "@" : ""}${
        port ? `${sshd.hostAlias}:${port}` : sshd.hostAlias
      }`;
      const more = Object.entries(options.env ?? {})
        .map(([name, value]) => ` ${name}=${value}`).join("");
      return [
        ...ET,
        "--ssh",
        sshd.sshCommand,
        "--terminal-path",
        terminalPathFor(options.user).replace(/^env /, `env${more} `),
        "--log-file",
        `${dir}/client.log`,
        "-v",
        ...extra,
        target,
      ];
    },
    terminalProcesses: () => findTerminals(routerPath),
    async sessionProcesses() {
      return await hostedSessions(await findTerminals(routerPath), routerPath);
    },
    async restartDaemon(signal: Deno.Signal = "SIGKILL") {
      if (!daemon) throw new Error("this world has no daemon");
      await stopDaemon(daemon, signal);
      daemon = await spawnDaemon(
        dir,
        routerPath,
        daemonPort,
        daemonUser,
        binds,
      );
    },
    async close() {
      await killTerminals(routerPath);
      if (daemon) await stopDaemon(daemon, "SIGTERM");
      await sshd.stop();
      await clientRuntime.close();
      if (Deno.env.get("ET_TEST_KEEP_WORLD")) {
        console.log(`world kept: ${dir}`);
      } else {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    },
  };
}

/**
 * Starts a world with `options`, runs `body` in it and always tears the
 * world down ({@linkcode EtWorld.close}), whether `body` resolves or throws.
 *
 * @example
 * ```ts
 * await withWorld({ privateRuntime: true }, async (world) => {
 *   const argv = world.client(["--list"]);
 *   // … run the client, check what it did …
 * });
 * ```
 */
export async function withWorld<T>(
  options: WorldOptions,
  body: (world: EtWorld) => Promise<T>,
): Promise<T> {
  const world = await startWorld(options);
  try {
    return await body(world);
  } finally {
    await world.close();
  }
}

/**
 * The `ET_RUNTIME_DIR` of this world's logins as `user`: the world's own
 * for us; for another user a directory of that user's beside it, made
 * here (the product wants its runtime directory owned by its user, mode
 * 0700). Undefined for a user this machine does not have (its login fails
 * before any runtime directory matters).
 */
function runtimeBaseFor(dir: string, user?: string): string | undefined {
  if (user === undefined) return `${dir}/run`;
  const uid = userId(user);
  if (uid === undefined) return undefined;
  if (uid === Deno.uid()) return `${dir}/run`;
  const base = `${dir}/run-${uid}`;
  try {
    Deno.mkdirSync(base, { mode: 0o700 });
    Deno.chownSync(base, uid, userId(user, "-g") ?? null);
  } catch (error) {
    if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
  }
  return base;
}

/** A local user's uid (with `-g`: gid); undefined if there is none. */
function userId(user: string, flag: "-u" | "-g" = "-u"): number | undefined {
  const out = new Deno.Command("id", { args: [flag, user], stderr: "null" })
    .outputSync();
  return out.success
    ? Number(new TextDecoder().decode(out.stdout).trim())
    : undefined;
}

/**
 * Clients that tests start inherit this process's environment: while a
 * world is open, `ET_RUNTIME_DIR` names a private directory for them
 * (their session-sharing sockets, `share-*.sock`), removed when the last
 * open world closes; otherwise every client killed by a test left its
 * socket in `/tmp/et-<uid>`. Left alone when the environment sets it.
 */
let clientRuntime: { dir: string; worlds: number } | null = null;

/** Takes a share of the clients' runtime directory; close gives it back. */
async function openClientRuntime(): Promise<{ close(): Promise<void> }> {
  if (clientRuntime === null) {
    if (Deno.env.get("ET_RUNTIME_DIR") !== undefined) {
      return { close: async () => {} };
    }
    const dir = await Deno.makeTempDir({ prefix: "et-clients-" });
    Deno.env.set("ET_RUNTIME_DIR", dir);
    clientRuntime = { dir, worlds: 0 };
  }
  const held = clientRuntime;
  held.worlds++;
  let closed = false;
  return {
    async close() {
      if (closed) return;
      closed = true;
      if (--held.worlds > 0 || clientRuntime !== held) return;
      clientRuntime = null;
      Deno.env.delete("ET_RUNTIME_DIR");
      await Deno.remove(held.dir, { recursive: true }).catch(() => {});
    },
  };
}

/** The uid and gid of a local user. */
function userIds(user: string): [number, number] {
  const uid = userId(user);
  const gid = userId(user, "-g");
  if (uid === undefined || gid === undefined) {
    throw new Error(`no user ${user}`);
  }
  return [uid, gid];
}

/** Quotes argv for a shell command line (tmux runs a string). */
export function shellQuote(argv: string[]): string {
  return argv.map((arg) =>
    /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`
  )
    .join(" ");
}

/** The account {@linkcode stockRcUser} logs in as. */
export const STOCK_RC_USER = "etstock";

/**
 * A local account with the distribution's stock rc files (`useradd -m`
 * copies `/etc/skel`; Debian's `.bashrc` returns at once when not
 * interactive), whose login is the world's key (sshd's authorized keys
 * file is the world's, for every user). Idempotent: an existing account is
 * reused and its rc files are put back to `/etc/skel`'s. Its own Deno
 * cache is filled by running `et --version` as the user here, not over
 * ssh: a launcher over ssh with an empty cache took 2.3 s every time (it
 * did not fill the cache). Needs root (CI runs as root). Returns the
 * account's name.
 */
export async function stockRcUser(name = STOCK_RC_USER): Promise<string> {
  const sh = async (command: string) =>
    (await new Deno.Command("sh", { args: ["-c", command] }).output()).code;
  if (await sh(`id -u ${name} >/dev/null 2>&1`) !== 0) {
    if (await sh(`useradd -m -s /bin/bash ${name}`) !== 0) {
      throw new Error(`useradd ${name} failed`);
    }
  }
  // A new account is locked ("!"), which sshd without PAM refuses even for
  // key logins; "*" allows keys and still no password.
  if (await sh(`usermod -p '*' ${name}`) !== 0) {
    throw new Error(`usermod ${name} failed`);
  }
  const restored = await sh(
    `home=$(getent passwd ${name} | cut -d: -f6) && ` +
      `cp /etc/skel/.bashrc /etc/skel/.profile "$home/" && ` +
      `chown ${name}: "$home/.bashrc" "$home/.profile"`,
  );
  if (restored !== 0) throw new Error(`cannot restore ${name}'s rc files`);
  const [uid, gid] = userIds(name);
  const passwd = await new Deno.Command("getent", {
    args: ["passwd", name],
    stdout: "piped",
  }).output();
  const home = new TextDecoder().decode(passwd.stdout).split(":")[5];
  const warmed = await new Deno.Command(ET[0], {
    args: [...ET.slice(1), "--version"],
    uid,
    gid,
    cwd: home,
    env: { HOME: home, USER: name, LOGNAME: name },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!warmed.success) {
    throw new Error(
      `et --version as ${name} failed: ${
        new TextDecoder().decode(warmed.stderr).trim()
      }`,
    );
  }
  return name;
}
