import assert from "node:assert/strict";
import { acceptEach } from "../../src/transport/mod.ts";
import { resetStorm } from "../helpers/attack.ts";

Deno.test("connections reset in the accept queue do not stop the listener", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const accepted: Deno.Conn[] = [];
  // Fill the queue with connections that are already reset, before the
  // loop starts taking them: a plain `for await` ends at the first.
  await resetStorm(port, 100);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const loop = acceptEach(listener, (conn) => accepted.push(conn));
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  await client.write(new Uint8Array([42]));
  const deadline = Date.now() + 5000;
  let got: number | null = null;
  while (got !== 42 && Date.now() < deadline) {
    for (const conn of accepted.splice(0)) {
      const buffer = new Uint8Array(1);
      const n = await Promise.race([
        conn.read(buffer).catch(() => null),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), 100)),
      ]);
      if (n === 1 && buffer[0] === 42) got = 42;
      conn.close();
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(got, 42, "the real connection was accepted after the storm");
  client.close();
  listener.close();
  await loop;
});
