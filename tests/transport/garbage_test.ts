import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { configureLog, type LogSink } from "../../src/log.ts";
import { attackListener } from "../helpers/attack.ts";
import {
  patternBytes,
  startSessionPair,
  StreamHash,
  waitUntil,
} from "../helpers/session_pair.ts";

Deno.test("garbage at the listener is refused and logged; real sessions carry on", async () => {
  const lines: string[] = [];
  const sink: LogSink = (line) => lines.push(line);
  configureLog({ level: "warn", sink });
  const pair = await startSessionPair();
  const size = 20_000_000;
  const data = patternBytes(size, 21);
  const hash = new StreamHash();
  const reading = (async () => {
    while (hash.size < size) {
      hash.update((await pair.server.channel(1).read())!);
    }
  })();
  await Promise.all([
    pair.client.channel(1).write(data),
    attackListener(pair.serverPort),
    reading,
  ]);
  assert.equal(hash.digest(), createHash("sha256").update(data).digest("hex"));
  assert.ok(
    lines.some((line) => line.includes("refused")),
    "refusals are logged",
  );
  // The listener still takes the real client back after a drop.
  pair.client.detach("test drop");
  await waitUntil(() => pair.client.connected, 5000, "reconnect");
  await pair.stop();
  configureLog({ level: "silent" });
});
