/**
 * The descriptor accept loop survives what kills others: connections reset
 * in the queue, and running out of descriptors (Deno's own node:net server
 * stops accepting for good after EMFILE; checked on Deno 2.9.6).
 */
import assert from "node:assert/strict";
import { acceptEachFd } from "../../src/platform/accept_loop.ts";
import { closeSocket, listenTcp, sendSome } from "../../src/platform/socket.ts";
import { resetStorm } from "../helpers/attack.ts";

async function readByte(conn: Deno.Conn, ms: number): Promise<number | null> {
  const byte = new Uint8Array(1);
  const timer = setTimeout(() => conn.close(), ms);
  try {
    return (await conn.read(byte)) === 1 ? byte[0] : null;
  } catch {
    return null;
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("accept loop: connections reset in the queue do not stop it; its signal does", async () => {
  const { fd, port } = listenTcp("127.0.0.1", 0);
  await resetStorm(port, 100);
  const stop = new AbortController();
  const accepted: number[] = [];
  const loop = acceptEachFd(fd, (conn) => {
    sendSome(conn.fd, new Uint8Array([42]));
    accepted.push(conn.fd);
  }, { signal: stop.signal });
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  assert.equal(await readByte(client, 5000), 42);
  client.close();
  stop.abort();
  await loop;
  for (const conn of accepted) closeSocket(conn);
  closeSocket(fd);
});

Deno.test("accept loop: out of descriptors, it pauses and carries on once some are free", async () => {
  // A child with a limit of 48 descriptors holds every connection for
  // 300 ms; 150 connections exhaust it.
  const script = new URL("./_accept_holder.ts", import.meta.url).pathname;
  const child = new Deno.Command("sh", {
    args: [
      "-c",
      `ulimit -n 48 && exec "$0" run -A "$1"`,
      Deno.execPath(),
      script,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const errors = new Response(child.stderr).text();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/port (\d+)/.test(text)) {
    const { value, done } = await lines.read();
    if (done) throw new Error(`holder died: ${text}`);
    text += value;
  }
  const port = Number(text.match(/port (\d+)/)![1]);
  const conns: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 150; i++) {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    // Some of them are answered now, the rest once descriptors free up.
    const answers = await Promise.all(conns.map((c) => readByte(c, 15_000)));
    assert.equal(answers.filter((a) => a === 42).length, 150);
    // And a late one still gets in.
    const late = await Deno.connect({ hostname: "127.0.0.1", port });
    conns.push(late);
    assert.equal(await readByte(late, 5000), 42);
  } finally {
    for (const conn of conns) {
      try {
        conn.close();
      } catch { /* closed */ }
    }
    try {
      child.kill("SIGTERM");
    } catch { /* it died: its stderr says why */ }
    const status = await child.status;
    if (status.code !== 0 && status.signal !== "SIGTERM") {
      console.error(`holder: ${status.code}: ${await errors}`);
    }
    await lines.cancel();
  }
  assert.match(await errors, /EMFILE/, "the holder did run out of descriptors");
});
