/**
 * Network nonsense for refusal tests: random bytes, impossible lengths,
 * truncated frames, hellos for unknown sessions, HTTP, bogus packets.
 *
 * @module
 */

import { encodeFrame } from "../../src/transport/mod.ts";

/** Attacks a listener with every kind of nonsense a network can carry. */
export async function attackListener(port: number, rounds = 60) {
  const payloads: Uint8Array[] = [];
  for (let i = 0; i < rounds; i++) {
    const kind = i % 6;
    if (kind === 0) payloads.push(crypto.getRandomValues(new Uint8Array(4096)));
    if (kind === 1) {
      payloads.push(new Uint8Array([0xff, 0xff, 0xff, 0xff, 1, 2]));
    }
    if (kind === 2) {
      payloads.push(encodeFrame(new Uint8Array(100)).subarray(0, 40));
    }
    if (kind === 3) {
      // A hello for a random session, then garbage.
      const hello = new Uint8Array(50);
      hello[0] = 1;
      hello[1] = 1;
      crypto.getRandomValues(hello.subarray(2));
      payloads.push(encodeFrame(hello));
    }
    if (kind === 4) {
      payloads.push(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    }
    if (kind === 5) payloads.push(encodeFrame(new Uint8Array([0x10, 0, 0])));
  }
  await Promise.all(payloads.map(async (payload) => {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await conn.write(payload);
        const sink = new Uint8Array(1024);
        // Read what the server answers until it hangs up (bounded).
        const deadline = setTimeout(() => conn.close(), 6000);
        try {
          while ((await conn.read(sink)) !== null) { /* drain */ }
        } catch { /* closed */ }
        clearTimeout(deadline);
      } finally {
        try {
          conn.close();
        } catch { /* closed */ }
      }
    } catch { /* refused: also fine */ }
  }));
}

/**
 * Connects `count` times and resets each connection at once (RST via
 * node:net), so many die while still waiting in the listener's queue.
 */
export async function resetStorm(port: number, count = 100) {
  const { default: net } = await import("node:net");
  await Promise.all(
    Array.from({ length: count }, () =>
      new Promise<void>((resolve) => {
        const socket = net.connect(port, "127.0.0.1", () => {
          socket.resetAndDestroy();
          resolve();
        });
        socket.on("error", () => resolve());
      })),
  );
}

/** A second local account, for attacks from another uid. */
export interface LocalUser {
  /** Login name. */
  name: string;
  /** Its uid. */
  uid: number;
  /** Its primary gid. */
  gid: number;
  /**
   * Starts `deno run -A <args>` as this user (its own HOME and Deno cache;
   * stdout piped, stderr piped).
   */
  deno(args: string[]): Deno.ChildProcess;
}

async function sh(command: string): Promise<{ code: number; out: string }> {
  const output = await new Deno.Command("sh", { args: ["-c", command] })
    .output();
  return {
    code: output.code,
    out: new TextDecoder().decode(output.stdout).trim(),
  };
}

/**
 * The unprivileged account `name`, created with `useradd` if missing.
 * Needs root (CI runs as root); tests that use it are skipped otherwise.
 */
export async function localUser(name = "etattacker"): Promise<LocalUser> {
  if ((await sh(`id -u ${name} >/dev/null 2>&1`)).code !== 0) {
    const made = await sh(`useradd -m -s /bin/sh ${name}`);
    if (made.code !== 0) throw new Error(`useradd ${name} failed`);
  }
  const uid = Number((await sh(`id -u ${name}`)).out);
  const gid = Number((await sh(`id -g ${name}`)).out);
  const home = (await sh(`getent passwd ${name} | cut -d: -f6`)).out;
  const deno = Deno.execPath();
  return {
    name,
    uid,
    gid,
    deno(args) {
      return new Deno.Command(deno, {
        args: ["run", "-A", ...args],
        uid,
        gid,
        cwd: home,
        clearEnv: true,
        env: {
          HOME: home,
          PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
          DENO_DIR: `${home}/.cache/deno`,
          NO_COLOR: "1",
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    },
  };
}
