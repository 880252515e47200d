/**
 * The one-line state of a connection and its channels (the SIGUSR2 debug
 * dump, docs/ARCHITECTURE.md): it must tell a reader that stopped reading
 * from a writer that stopped writing, over a real session pair.
 */

import assert from "node:assert/strict";
import { configureLog } from "../../src/log.ts";
import {
  patternBytes,
  startSessionPair,
  waitUntil,
} from "../helpers/session_pair.ts";

configureLog({ level: "silent" });

Deno.test("describe: unread bytes at the receiver, spent credit and a waiting writer at the sender", async () => {
  const pair = await startSessionPair();
  try {
    const up = pair.client.channel(1);
    const down = pair.server.channel(1);
    // More than the 512 KiB window: the writer must wait for credit that
    // an unread channel never grants.
    const writing = up.write(patternBytes(700_000, 3));
    await waitUntil(
      () => down.pendingBytes >= 512 * 1024 - 64 * 1024,
      5000,
      "the window's worth arrived",
    );
    const server = pair.server.describe();
    const client = pair.client.describe();
    assert.match(server, /\/server: attached /);
    assert.match(
      server,
      new RegExp(`ch1 credit=\\d+ unread=${down.pendingBytes}/`),
    );
    assert.match(client, /ch1 credit=\d+ .*writer-waits-credit/);
    assert.match(client, /received=\d+ ack-owed=\d+ held=\d+\/\d+/);
    // Reading it all grants credit back: the writer finishes, nothing unread.
    let got = 0;
    while (got < 700_000) got += (await down.read())!.length;
    await writing;
    assert.match(pair.server.describe(), /ch1 credit=\d+ unread=0\/0 /);
    assert.doesNotMatch(pair.client.describe(), /writer-waits-credit/);
  } finally {
    await pair.stop();
  }
});
