/**
 * Eternal Terminal 7.0 (C++), the peer users compare et with, run beside et
 * and ssh in the same benchmark when its binaries are in
 * `../shared/peers/et-cpp-7.0.0/` (see the README there): its own
 * `etserver` on a free loopback port, and its `et` client reaching the
 * benchmark's sshd with `--ssh-option`s (it reads no `-F` config).
 *
 * @module
 */

import type { Sshd } from "../../tests/helpers/sshd.ts";
import { sleep } from "./util.ts";

/** Where the peer's binaries are, beside the checkout. */
export const ET_CPP_DIR = new URL(
  "../../../shared/peers/et-cpp-7.0.0/",
  import.meta.url,
).pathname;

/** A running `etserver` of ET 7.0 and how to reach it. */
export interface EtCppServer {
  /** Its TCP port on 127.0.0.1. */
  port: number;
  /** Pid of `etserver`. */
  pid: number;
  /**
   * argv of an interactive ET client to `user` (default: `sshd`'s user)
   * on this machine.
   */
  clientArgv(sshd: Sshd, user?: string): string[];
  /** Stops `etserver` and removes its files. */
  close(): Promise<void>;
}

/**
 * Why ET 7.0 cannot run here (no binaries, or a missing library: the
 * README lists the Debian packages), or null when it can.
 */
export async function etCppUnavailable(): Promise<string | null> {
  try {
    const { success, stdout, stderr } = await new Deno.Command(
      `${ET_CPP_DIR}et`,
      { args: ["--version"], stdout: "piped", stderr: "piped" },
    ).output();
    if (success && /7\.0/.test(new TextDecoder().decode(stdout))) return null;
    return `et --version failed: ${
      new TextDecoder().decode(stderr).trim().split("\n")[0]
    } (scripts/setup.sh installs its libraries)`;
  } catch (error) {
    return error instanceof Deno.errors.NotFound
      ? `not installed in ${ET_CPP_DIR}`
      : (error as Error).message;
  }
}

/** Starts ET 7.0's `etserver` on a free port of 127.0.0.1. */
export async function startEtCppServer(): Promise<EtCppServer> {
  const dir = await Deno.makeTempDir({ prefix: "et-cpp-bench-" });
  // Another user's etterminal reaches the fifo inside and logs here too.
  await Deno.chmod(dir, 0o755);
  await Deno.mkdir(`${dir}/logs`);
  await Deno.chmod(`${dir}/logs`, 0o1777);
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = probe.addr.port;
  probe.close();
  await Deno.writeTextFile(
    `${dir}/et.cfg`,
    [
      "[Networking]",
      `port = ${port}`,
      "bind_ip = 127.0.0.1",
      "[Debug]",
      "telemetry = false",
      `logdirectory = ${dir}/logs`,
      `serverfifo = ${dir}/fifo`,
      "",
    ].join("\n"),
  );
  const server = new Deno.Command(`${ET_CPP_DIR}etserver`, {
    args: ["--cfgfile", `${dir}/et.cfg`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const close = async () => {
    try {
      server.kill("SIGTERM");
    } catch {
      // Already gone.
    }
    await server.status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    await waitListening(port, server.status);
  } catch (error) {
    await close();
    throw error;
  }
  return {
    port,
    pid: server.pid,
    clientArgv: (sshd, user) => [
      `${ET_CPP_DIR}et`,
      ...["-u", user ?? sshd.user, "-p", String(port), "-l", `${dir}/logs`],
      ...["--terminal-path", `${ET_CPP_DIR}etterminal -l ${dir}/logs`],
      ...["--serverfifo", `${dir}/fifo`],
      ...["--ssh-option", `Port=${sshd.port}`],
      ...["--ssh-option", `IdentityFile=${sshd.dir}/id_ed25519`],
      ...["--ssh-option", "StrictHostKeyChecking=no"],
      ...["--ssh-option", "UserKnownHostsFile=/dev/null"],
      ...["--ssh-option", "LogLevel=ERROR"],
      "127.0.0.1",
    ],
    close,
  };
}

async function waitListening(port: number, exited: Promise<unknown>) {
  let gone = false;
  exited.then(() => gone = true);
  for (let i = 0; i < 100 && !gone; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new Error(`etserver did not listen on port ${port}`);
}
