import assert from "node:assert/strict";
import {
  deriveSessionKeys,
  encodeFrame,
  encodeRefuse,
  EternalConnection,
  FrameReader,
  generateSessionSecret,
  HandshakeRefusedError,
  keepConnected,
  RefuseCode,
} from "../../src/transport/mod.ts";
import { decodeRefuse } from "../../src/transport/wire.ts";
import { configureLog } from "../../src/log.ts";
import { OnPathPipe } from "../helpers/on_path.ts";
import { listenForSessions } from "../helpers/session_listener.ts";
import { FlakyRelay } from "../helpers/flaky_relay.ts";
import { waitUntil } from "../helpers/session_pair.ts";

configureLog({ level: "silent" });

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A REFUSE frame as an attacker on the path would inject it. */
function forgedRefuse(code: number, mac?: Uint8Array): Uint8Array {
  return encodeFrame(encodeRefuse({ code, reason: "go away", mac }));
}

async function echo(
  from: EternalConnection,
  to: EternalConnection,
  text: string,
) {
  await from.channel(1).write(encoder.encode(text));
  assert.equal(decoder.decode((await to.channel(1).read())!), text);
}

Deno.test("the REFUSE decoder reads both forms: plain (relays) and signed", () => {
  const plain = decodeRefuse(
    encodeRefuse({
      code: RefuseCode.UnknownSession,
      reason: "unknown session",
    }),
  );
  assert.equal(plain.code, RefuseCode.UnknownSession);
  assert.equal(plain.reason, "unknown session");
  assert.equal(plain.mac, undefined);
  // The exact bytes a relay sent before this change still decode.
  const old = new Uint8Array([0x05, 1, ...encoder.encode("unknown session")]);
  assert.deepEqual(decodeRefuse(old).reason, "unknown session");
  const mac = crypto.getRandomValues(new Uint8Array(32));
  const signed = encodeRefuse({ code: 6, reason: "stale", mac });
  assert.equal(signed[1], 0x86, "the high bit of the code says: MAC follows");
  const decoded = decodeRefuse(signed);
  assert.equal(decoded.code, 6);
  assert.equal(decoded.reason, "stale");
  assert.deepEqual(decoded.mac, mac);
  // A long reason is cut on a character boundary, the MAC kept whole.
  const long = decodeRefuse(
    encodeRefuse({ code: 3, reason: "é".repeat(150), mac }),
  );
  assert.equal(long.reason, "é".repeat(100));
  assert.deepEqual(long.mac, mac);
});

Deno.test("forged refusals on the path (plain, or with a wrong MAC) do not end the session", async () => {
  const secret = generateSessionSecret();
  const server = await EternalConnection.create(secret, "server");
  const client = await EternalConnection.create(secret, "client");
  const listener = listenForSessions(server);
  const badMac = () => crypto.getRandomValues(new Uint8Array(32));
  // Each dial meets one forgery, in place of the CHALLENGE or the ACCEPT.
  const forgeries: Array<[string, Uint8Array]> = [
    ["hello", forgedRefuse(RefuseCode.UnknownSession)],
    ["hello", forgedRefuse(RefuseCode.UnknownSession, badMac())],
    ["auth", forgedRefuse(RefuseCode.CannotResume, badMac())],
    ["auth", forgedRefuse(RefuseCode.BadProof)],
    ["auth", forgedRefuse(RefuseCode.VersionMismatch, badMac())],
  ];
  const queue = [...forgeries];
  const failures: Error[] = [];
  const loop = keepConnected(client, {
    dial: async () => {
      const pipe = new OnPathPipe(
        await Deno.connect({ hostname: "127.0.0.1", port: listener.port }),
      );
      const forgery = queue.shift();
      if (forgery?.[0] === "hello") pipe.injectRead(forgery[1]);
      if (forgery?.[0] === "auth") {
        pipe.onWrite = (data) => {
          if (data[4] === 0x03) pipe.injectRead(forgery[1]);
        };
      }
      return pipe;
    },
    onAttemptFailed: (error) => failures.push(error),
  });
  await waitUntil(() => client.connected, 10_000, "connect");
  assert.equal(client.isClosed, false);
  assert.equal(failures.length, forgeries.length);
  await echo(client, server, "connected");
  // Once connected, the path drops; the reconnects meet forgeries too.
  queue.push(forgeries[0], forgeries[2]);
  server.detach("test: path cut");
  await waitUntil(() => queue.length === 0, 10_000, "forged reconnects");
  await waitUntil(() => client.connected, 10_000, "reconnect");
  assert.equal(failures.length, forgeries.length + 2);
  for (const failure of failures) {
    assert.ok(failure instanceof HandshakeRefusedError);
    assert.equal(failure.authenticated, false);
    assert.equal(failure.final, false);
  }
  await echo(client, server, "unharmed");
  await echo(server, client, "both ways");
  client.fail(new Error("done"));
  server.fail(new Error("done"));
  await loop;
  await listener.close();
});

Deno.test("a signed refusal replayed into another attempt does not verify", async () => {
  const secret = generateSessionSecret();
  const server = await EternalConnection.create(secret, "server");
  const client = await EternalConnection.create(secret, "client");
  const listener = listenForSessions(server);
  // The attacker gets a genuinely signed refusal for this session: a hello
  // of another version, with the attacker's own nonce.
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: listener.port,
  });
  const hello = new Uint8Array(50);
  hello[0] = 0x01;
  hello[1] = 9;
  hello.set(secret.id, 2);
  crypto.getRandomValues(hello.subarray(18));
  await conn.write(encodeFrame(hello));
  const body = (await new FrameReader(conn).next())!.slice();
  conn.close();
  assert.equal(body[0], 0x05);
  assert.equal(body[1], 0x80 | RefuseCode.VersionMismatch, "signed");
  // The MAC is HMAC(proof key, "et/1 refuse" || version || session id ||
  // client nonce || code || reason): check the wire format by hand.
  const refusal = decodeRefuse(body);
  const keys = await deriveSessionKeys(secret, "server");
  const expected = new Uint8Array(
    await crypto.subtle.sign(
      "HMAC",
      keys.auth,
      new Uint8Array([
        ...encoder.encode("et/1 refuse"),
        9,
        ...hello.subarray(2),
        RefuseCode.VersionMismatch,
        ...refusal.reasonBytes!,
      ]),
    ),
  );
  assert.deepEqual(refusal.mac, expected);
  // Replayed into the client's attempt it fails: another nonce, another
  // version. One failed attempt, then the session connects.
  const failures: Error[] = [];
  let dials = 0;
  const loop = keepConnected(client, {
    dial: async () => {
      const pipe = new OnPathPipe(
        await Deno.connect({ hostname: "127.0.0.1", port: listener.port }),
      );
      if (dials++ === 0) pipe.injectRead(encodeFrame(body));
      return pipe;
    },
    onAttemptFailed: (error) => failures.push(error),
  });
  await waitUntil(() => client.connected, 10_000, "connect");
  assert.equal(failures.length, 1);
  assert.ok(failures[0] instanceof HandshakeRefusedError);
  assert.equal(failures[0].code, RefuseCode.VersionMismatch);
  assert.equal(failures[0].authenticated, false);
  await echo(client, server, "still fine");
  client.fail(new Error("done"));
  server.fail(new Error("done"));
  await loop;
  await listener.close();
});

Deno.test("an authenticated refusal ends the session at once, in one clear line", async () => {
  const secret = generateSessionSecret();
  const server = await EternalConnection.create(secret, "server");
  // The terminal still holds the key, but its session is over.
  server.fail(new Error("shell gone"));
  const listener = listenForSessions(server);
  const client = await EternalConnection.create(secret, "client");
  let dials = 0;
  const started = performance.now();
  const loop = keepConnected(client, {
    dial: () => {
      dials++;
      return Deno.connect({ hostname: "127.0.0.1", port: listener.port });
    },
  });
  const end = await client.closed;
  await loop;
  assert.ok(end.error instanceof HandshakeRefusedError);
  assert.equal(end.error.code, RefuseCode.UnknownSession);
  assert.equal(end.error.authenticated, true);
  assert.equal(end.error.final, true);
  assert.equal(end.reason, "the session has ended on the server");
  assert.equal(dials, 1);
  assert.ok(performance.now() - started < 1000);
  await listener.close();
});

Deno.test("a daemon that does not know the session for 2 s (restart), then relays again: the session carries on", async () => {
  const secret = generateSessionSecret();
  const server = await EternalConnection.create(secret, "server");
  const client = await EternalConnection.create(secret, "client");
  const listener = listenForSessions(server);
  const relay = new FlakyRelay(listener.port);
  const loop = keepConnected(client, {
    dial: () => Deno.connect({ hostname: "127.0.0.1", port: relay.port }),
    connectTimeoutMs: 5000,
    awayTimeoutMs: 10_000,
  });
  await waitUntil(() => client.connected && server.connected, 5000, "connect");
  await echo(client, server, "before");
  // The daemon restarts: every relayed connection drops, and until the
  // terminal registers again it answers "unknown session" (unsigned: it
  // holds no key).
  relay.setRefusing(true);
  relay.cutAll();
  await waitUntil(() => !client.connected, 5000, "drop");
  const during = client.channel(1).write(encoder.encode("typed while away"));
  await new Promise((resolve) => setTimeout(resolve, 2000));
  assert.equal(client.isClosed, false);
  assert.ok(relay.refused >= 4, `only ${relay.refused} refusals`);
  assert.match(
    loop.status.lastReason ?? "",
    /^the server does not know this session/,
  );
  assert.ok(loop.status.failedAttempts >= 4);
  relay.setRefusing(false);
  await waitUntil(() => client.connected, 5000, "reconnect");
  assert.equal(loop.status.lastError, null);
  await during;
  assert.equal(
    decoder.decode((await server.channel(1).read())!),
    "typed while away",
  );
  await echo(server, client, "after");
  assert.equal(server.channel(1).pendingBytes, 0, "nothing twice");
  client.fail(new Error("done"));
  server.fail(new Error("done"));
  await loop;
  await relay.close();
  await listener.close();
});
