/**
 * Times the remote half of a new session: `et terminal` run by hand (no
 * ssh) from its bootstrap line to its ready line, for a first session (no
 * host runs yet: the launcher starts one) and a second one beside it (the
 * host runs: one request on its socket). The program is `sleep 1000` on
 * pipes in no-root mode (no daemon needed); both sessions are ended over
 * their control sockets between rounds. Prints `[[first, second], …]` in
 * ms.
 *
 * Usage: `deno run -A scripts/bench/launcher_new.ts [repo root] [rounds]`
 * (the root defaults to this repository's; another checkout's root times
 * that one, e.g. an older commit's).
 *
 * @module
 */

const root = Deno.args[0] ??
  new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
const rounds = Number(Deno.args[1] ?? 5);
const { encodeBootstrap } = await import(
  `${root}/src/session/terminal_protocol.ts`
);
const { generateSessionSecret } = await import(
  `${root}/src/transport/session_secret.ts`
);
const { controlRequest } = await import(
  `${root}/src/terminal/control_socket.ts`
);

const runtimeBase = await Deno.makeTempDir({ prefix: "et-launcher-bench-" });
await Deno.chmod(runtimeBase, 0o700);
const env = {
  ET_RUNTIME_DIR: runtimeBase,
  ET_ROUTER_SOCKET: `${runtimeBase}/no-daemon.sock`,
};

/** Runs one launcher for a new session; resolves with its wall time. */
async function launch(): Promise<number> {
  const line = encodeBootstrap({
    op: "new",
    secret: generateSessionSecret(),
    program: {
      command: "sleep 1000",
      pty: false,
      term: "xterm",
      cols: 80,
      rows: 24,
      env: {},
    },
    limits: {
      connectTimeoutMs: 60_000,
      sessionTimeoutMs: 0,
      maxBacklogBytes: 1 << 20,
    },
    killOthers: false,
    daemon: "never",
    portRange: { first: 20000, last: 30000 },
  });
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}/main.ts`, "terminal"],
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(line));
  await writer.close();
  const out = await child.output();
  const ms = performance.now() - started;
  if (!new TextDecoder().decode(out.stdout).includes("ET_TERMINAL_READY")) {
    throw new Error(new TextDecoder().decode(out.stderr));
  }
  return Math.round(ms);
}

/** Ends every session of the runtime directory and lets them go. */
async function endAll() {
  for await (const entry of Deno.readDir(`${runtimeBase}/et`)) {
    if (!entry.name.endsWith(".ctl")) continue;
    await controlRequest(`${runtimeBase}/et/${entry.name}`, { op: "end" })
      .catch(() => {});
  }
  await new Promise((resolve) => setTimeout(resolve, 1500));
}

try {
  const times: number[][] = [];
  for (let i = 0; i < rounds; i++) {
    const first = await launch();
    const second = await launch();
    times.push([first, second]);
    await endAll();
  }
  console.log(JSON.stringify(times));
} finally {
  await Deno.remove(runtimeBase, { recursive: true }).catch(() => {});
}
