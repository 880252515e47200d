/**
 * TunnelMux over a real session pair and real loopback sockets: half-close
 * passes through, refusals stay per connection, a reset reaches the far
 * socket, and thousands of short connections leave nothing behind.
 */
import assert from "node:assert/strict";
import { configureLog } from "../../src/log.ts";
import {
  CONTROL_CHANNEL,
  ControlDecoder,
  dialEndpoint,
  encodeControl,
  type TunnelMessage,
  TunnelMux,
} from "../../src/session/mod.ts";
import type { EternalConnection } from "../../src/transport/mod.ts";
import { startSessionPair } from "../helpers/session_pair.ts";
import { waitUntil } from "../e2e/_client.ts";

configureLog({ level: "silent" });

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Feeds a connection's tunnel control messages to `mux`. */
function readControl(connection: EternalConnection, mux: TunnelMux) {
  const control = connection.channel(CONTROL_CHANNEL);
  const lines = new ControlDecoder();
  return (async () => {
    try {
      for (let data; (data = await control.read()) !== null;) {
        for (const message of lines.push(data)) {
          if (message.type.startsWith("tunnel-")) {
            mux.handle(message as TunnelMessage);
          }
        }
      }
    } catch { /* over */ }
  })();
}

/** A session pair with a mux at each end, the server dialing targets. */
async function muxPair() {
  const pair = await startSessionPair();
  const client = new TunnelMux({
    side: "client",
    dial: () => Promise.reject(new Error("no reverse tunnels here")),
  });
  const server = new TunnelMux({
    side: "server",
    dial: (request) =>
      "target" in request
        ? dialEndpoint(request.target)
        : Promise.reject(new Error("targets only")),
  });
  client.use(pair.client);
  server.use(pair.server);
  const readers = [
    readControl(pair.client, client),
    readControl(pair.server, server),
  ];
  // The "laptop" side: connections a local program makes to the tunnel.
  const local = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const localPort = (local.addr as Deno.NetAddr).port;
  // One accept at a time: pair each connect with its accept.
  let opening: Promise<unknown> = Promise.resolve();
  return {
    pair,
    client,
    server,
    /** Opens a local connection carried to 127.0.0.1:`port` on the far side. */
    async open(port: number): Promise<Deno.TcpConn> {
      const pairUp = opening.then(() =>
        Promise.all([
          Deno.connect({ hostname: "127.0.0.1", port: localPort }),
          local.accept(),
        ])
      );
      opening = pairUp.catch(() => {});
      const [mine, accepted] = await pairUp;
      client.carry(accepted, {
        target: { kind: "tcp", host: "127.0.0.1", port },
      });
      return mine;
    },
    async stop() {
      client.close();
      server.close();
      local.close();
      await pair.stop();
      await Promise.allSettled(readers);
    },
  };
}

async function readToEnd(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(64 * 1024);
  let text = "";
  for (let n; (n = await conn.read(buffer)) !== null;) {
    text += decoder.decode(buffer.subarray(0, n));
  }
  return text;
}

/** A server that reads each connection to EOF, then answers and closes. */
function answerAfterEof() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      (async () => {
        const request = await readToEnd(conn);
        await conn.write(encoder.encode(`got ${request.length}: ${request}`));
        conn.close();
      })();
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      await serving.catch(() => {});
    },
  };
}

Deno.test("a half close passes through: the answer after EOF still arrives", async () => {
  const mux = await muxPair();
  const target = answerAfterEof();
  const conn = await mux.open(target.port);
  await conn.write(encoder.encode("ping"));
  await conn.closeWrite();
  assert.equal(await readToEnd(conn), "got 4: ping");
  conn.close();
  await waitUntil(
    () => mux.client.activeCount === 0 && mux.server.activeCount === 0,
    5000,
    "both muxes idle",
  );
  await target.close();
  await mux.stop();
});

Deno.test("a refused dial ends that connection only; the next one works", async () => {
  const mux = await muxPair();
  const target = answerAfterEof();
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (closed.addr as Deno.NetAddr).port;
  closed.close();
  const refused = await mux.open(deadPort);
  // Data sent before the refusal is dropped; the local socket just ends.
  await refused.write(encoder.encode("lost"));
  assert.equal(await readToEnd(refused).catch(() => ""), "");
  refused.close();
  const good = await mux.open(target.port);
  await good.write(encoder.encode("ok"));
  await good.closeWrite();
  assert.equal(await readToEnd(good), "got 2: ok");
  good.close();
  await waitUntil(
    () =>
      mux.pair.client.channelCount <= 1 && mux.pair.server.channelCount <= 1,
    5000,
    "tunnel channels freed (control stays)",
  );
  await target.close();
  await mux.stop();
});

Deno.test("closing one end abruptly closes the far socket (not only a half close)", async () => {
  const mux = await muxPair();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let farEnded!: () => void;
  const farClosed = new Promise<void>((resolve) => farEnded = resolve);
  const serving = (async () => {
    const conn = await listener.accept();
    // An endless stream: only a teardown from the tunnel stops it.
    try {
      const chunk = new Uint8Array(32 * 1024);
      while (true) await conn.write(chunk);
    } catch {
      farEnded();
    }
  })();
  const conn = await mux.open((listener.addr as Deno.NetAddr).port);
  const buffer = new Uint8Array(1024);
  assert.ok((await conn.read(buffer))! > 0);
  conn.close();
  await farClosed;
  await waitUntil(
    () =>
      mux.client.activeCount === 0 && mux.server.activeCount === 0 &&
      mux.pair.client.channelCount <= 1 && mux.pair.server.channelCount <= 1,
    5000,
    "both muxes idle and the channel freed at both ends",
  );
  listener.close();
  await serving;
  await mux.stop();
});

Deno.test("2000 short tunnel connections leave no channel and no connection behind", async () => {
  const mux = await muxPair();
  const target = answerAfterEof();
  for (let batch = 0; batch < 20; batch++) {
    await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const conn = await mux.open(target.port);
        const text = `${batch}-${i}`;
        await conn.write(encoder.encode(text));
        await conn.closeWrite();
        assert.equal(await readToEnd(conn), `got ${text.length}: ${text}`);
        conn.close();
      }),
    );
  }
  await waitUntil(
    () =>
      mux.client.activeCount === 0 && mux.server.activeCount === 0 &&
      mux.pair.client.channelCount <= 1 && mux.pair.server.channelCount <= 1,
    10_000,
    () =>
      `idle: client ${mux.client.activeCount}/${mux.pair.client.channelCount}, server ${mux.server.activeCount}/${mux.pair.server.channelCount}`,
  );
  await target.close();
  await mux.stop();
});

Deno.test("an open on an id that is not the peer's, or not fresh, is ignored", async () => {
  const mux = await muxPair();
  const target = answerAfterEof();
  const control = mux.pair.client.channel(CONTROL_CHANNEL);
  // Odd ids are the server's own; 16 then 16 again is a reuse.
  for (const channel of [17, 16, 16]) {
    await control.write(encodeControl({
      type: "tunnel-open",
      channel,
      target: { kind: "tcp", host: "127.0.0.1", port: target.port },
    }));
  }
  await waitUntil(() => mux.server.activeCount === 1, 5000, "one open");
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(mux.server.activeCount, 1);
  await target.close();
  await mux.stop();
});

Deno.test("200 connections torn down mid-stream (both ends streaming) free every channel", async () => {
  const mux = await muxPair();
  // A far end that streams forever and reads whatever comes.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      (async () => {
        const chunk = new Uint8Array(16 * 1024);
        const reading = (async () => {
          try {
            while ((await conn.read(new Uint8Array(16 * 1024))) !== null) {
              // discarded
            }
          } catch { /* torn down */ }
        })();
        try {
          while (true) await conn.write(chunk);
        } catch { /* torn down */ }
        await reading;
        try {
          conn.close();
        } catch { /* closed */ }
      })();
    }
  })();
  const port = (listener.addr as Deno.NetAddr).port;
  for (let batch = 0; batch < 4; batch++) {
    await Promise.all(Array.from({ length: 50 }, async () => {
      const conn = await mux.open(port);
      await conn.write(new Uint8Array(100_000));
      assert.ok((await conn.read(new Uint8Array(4096)))! > 0);
      conn.close();
    }));
  }
  await waitUntil(
    () =>
      mux.client.activeCount === 0 && mux.server.activeCount === 0 &&
      mux.pair.client.channelCount <= 1 && mux.pair.server.channelCount <= 1,
    20_000,
    () =>
      `idle: client ${mux.client.activeCount}/${mux.pair.client.channelCount}, server ${mux.server.activeCount}/${mux.pair.server.channelCount}`,
  );
  listener.close();
  await mux.stop();
  await serving.catch(() => {});
});
