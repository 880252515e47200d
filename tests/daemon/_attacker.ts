/**
 * Test child for security_test.ts, run as a second local user (or as
 * root, to play a terminal that dies): what a hostile local account can
 * do to the daemon's router. Prints one JSON line with what it saw.
 *
 *     register <router> <id> <hold ms>     register (as a terminal would)
 *     swap <router> <id> <target> <ms>     register, then swap a socket for
 *                                          a symlink to <target> in a loop
 *     flood <router> <connections> <ms>    endless lines, reconnecting
 *
 * @module
 */

import net from "node:net";
import { DaemonRegistration } from "../../src/terminal/daemon_registration.ts";

const [mode, router, ...rest] = Deno.args;

function report(value: unknown) {
  console.log(JSON.stringify(value));
}

/** Registers; accepts handed connections until `ms` passes, counting them. */
async function registerAndHold(id: string, ms: number) {
  let registration: DaemonRegistration;
  try {
    registration = await DaemonRegistration.register(router, id);
  } catch (error) {
    return { ok: false, error: (error as Error).message, handed: 0 };
  }
  let handed = 0;
  const serving = (async () => {
    for (let c; (c = await registration.accept()) !== null;) {
      handed++;
      c.pipe.close();
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, ms));
  registration.close();
  await serving;
  return { ok: true, handed };
}

/** Sends one raw line to the router; resolves with what it answers. */
function rawRequest(line: string): Promise<string> {
  return new Promise((resolve) => {
    let answer = "";
    const socket = net.connect(router, () => socket.write(line + "\n"));
    socket.on("data", (chunk) => answer += chunk.toString());
    socket.on("error", () => {});
    socket.on("close", () => resolve(answer));
    setTimeout(() => socket.destroy(), 3000);
  });
}

async function swap(id: string, target: string, ms: number) {
  const uid = Deno.uid()!;
  const dir = `/tmp/et-${uid}`;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const name = Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const path = `${dir}/${name}.sock`;
  // The old way in: name a socket path for the daemon to connect to.
  const oldStyle = await rawRequest(
    JSON.stringify({
      op: "register",
      id: crypto.randomUUID().replaceAll("-", ""),
      socket: path,
    }),
  );
  const holding = registerAndHold(id, ms + 500);
  let swaps = 0;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const listener = Deno.listen({ transport: "unix", path: `${path}.new` });
    Deno.renameSync(`${path}.new`, path);
    listener.close();
    try {
      Deno.removeSync(`${path}.link`);
    } catch { /* absent */ }
    Deno.symlinkSync(target, `${path}.link`);
    Deno.renameSync(`${path}.link`, path);
    swaps++;
    if (swaps % 20 === 0) await new Promise((r) => setTimeout(r, 0));
  }
  const held = await holding;
  await Deno.remove(path).catch(() => {});
  return { oldStyle, swaps, ...held };
}

/**
 * Keeps `count` router connections streaming a line without end,
 * reopening each one the router closes, for `ms`.
 */
async function flood(count: number, ms: number) {
  const answers: Record<string, number> = {};
  let opened = 0;
  let closedByRouter = 0;
  let stopped = false;
  const open = new Set<net.Socket>();
  const chunk = Buffer.alloc(1024, 0x61);
  function connect() {
    if (stopped) return;
    opened++;
    const socket = net.connect(router);
    open.add(socket);
    let answer = "";
    const timer = setInterval(() => {
      if (!socket.destroyed) socket.write(chunk);
    }, 5);
    socket.on("data", (data) => answer += data.toString());
    socket.on("error", () => {});
    socket.on("close", () => {
      clearInterval(timer);
      open.delete(socket);
      if (stopped) return;
      closedByRouter++;
      const error = answer.match(/"error":"([^"]*)"/)?.[1] ?? "(no answer)";
      const key = error.replace(/\d+/g, "N");
      answers[key] = (answers[key] ?? 0) + 1;
      setTimeout(connect, 1);
    });
  }
  for (let i = 0; i < count; i++) connect();
  await new Promise((resolve) => setTimeout(resolve, ms));
  stopped = true;
  for (const socket of open) socket.destroy();
  return { opened, closedByRouter, answers };
}

if (mode === "register") {
  report(await registerAndHold(rest[0], Number(rest[1])));
} else if (mode === "swap") {
  report(await swap(rest[0], rest[1], Number(rest[2])));
} else if (mode === "flood") {
  report(await flood(Number(rest[0]), Number(rest[1])));
} else {
  throw new Error(`unknown mode ${mode}`);
}
Deno.exit(0);
