/**
 * Test child for the attacks on a live daemon: a client that knows a live
 * session's id (it travels in clear in every HELLO) but not its passkey.
 * It makes its own keys from a fresh random passkey and runs the real
 * client handshake against the daemon again and again. Prints one JSON
 * line: the outcomes, counted.
 *
 *     deno run -A _wrong_key_client.ts <port> <session id hex> <attempts> <parallel>
 *
 * @module
 */

import { configureLog } from "../../src/log.ts";
import {
  clientHandshake,
  EternalConnection,
  fromHex,
  HandshakeRefusedError,
} from "../../src/transport/mod.ts";

configureLog({ level: "silent" });

const [port, idHex, attempts, parallel] = Deno.args;
const id = fromHex(idHex, 16);
const outcomes: Record<string, number> = {};
let left = Number(attempts);

async function worker() {
  const connection = await EternalConnection.create(
    { id, passkey: crypto.getRandomValues(new Uint8Array(32)) },
    "client",
  );
  try {
    while (left > 0) {
      left--;
      let outcome: string;
      try {
        const pipe = await Deno.connect({
          hostname: "127.0.0.1",
          port: Number(port),
        });
        await clientHandshake(connection, pipe);
        outcome = "accepted";
      } catch (error) {
        outcome = error instanceof HandshakeRefusedError
          ? `refused ${error.code}${error.authenticated ? " (signed)" : ""}`
          : `failed: ${(error as Error).message.replace(/\d+/g, "N")}`;
      }
      outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
    }
  } finally {
    connection.fail(new Error("done"));
  }
}

await Promise.all(Array.from({ length: Number(parallel) }, worker));
console.log(JSON.stringify({ outcomes }));
Deno.exit(0);
