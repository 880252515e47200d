/**
 * `deno task demo`: watch a session survive on one machine. Starts a
 * private sshd on 127.0.0.1, an `et server`, and a proxy between the client
 * and the server that cuts the connection every few seconds; then opens an
 * `et` session to this machine in your terminal. Type as usual (try
 * `top`, or `seq 1000000`); `exit` ends the demo and cleans up.
 *
 * @module
 */

import { chaos, FaultProxy } from "../tests/helpers/fault_proxy.ts";
import { startWorld } from "../tests/e2e/_world.ts";

const say = (text: string) => console.error(`demo: ${text}`);

if (!Deno.stdin.isTerminal()) {
  say("run this in a terminal: it opens an interactive et session");
  Deno.exit(2);
}

say("starting a private sshd on 127.0.0.1 and an et server …");
const world = await startWorld({ commandRcFiles: true });
const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
say(`sshd on port ${world.sshd.port}, et server on ${world.daemonPort}`);
say(
  `a proxy on ${proxy.port} cuts the connection every 3-8 s (RST), and now and`,
);
say("then goes silent; et reconnects and resends what was lost.");
let cuts = 0;
const stop = chaos(proxy, {
  minMs: 3000,
  maxMs: 8000,
  blackholeMaxMs: 3000,
  kinds: ["cut", "cut", "blackhole"],
  onFault: () => cuts++,
});
say("opening the session: type `exit` to end the demo.\n");
const status = await new Deno.Command(
  world.client([], { port: proxy.port })[0],
  {
    args: world.client([], { port: proxy.port }).slice(1),
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  },
).spawn().status;
await stop();
await proxy.close();
await world.close();
say(
  `session ended with status ${status.code} after ${cuts} injected faults; cleaned up.`,
);
Deno.exit(0);
