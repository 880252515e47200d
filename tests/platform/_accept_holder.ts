/**
 * Test child for accept_loop_test.ts: accepts on a descriptor listener,
 * answers each connection with one byte and holds it for 300 ms. Run
 * with a low descriptor limit, it runs out of descriptors under load.
 */
import { acceptEachFd } from "../../src/platform/accept_loop.ts";
import { closeSocket, listenTcp, sendSome } from "../../src/platform/socket.ts";

const { fd, port } = listenTcp("127.0.0.1", 0);
console.log(`port ${port}`);
const stop = new AbortController();
Deno.addSignalListener("SIGTERM", () => stop.abort());
await acceptEachFd(fd, (conn) => {
  sendSome(conn.fd, new Uint8Array([42]));
  setTimeout(() => closeSocket(conn.fd), 300);
}, {
  signal: stop.signal,
  onError: (error) => console.error(`accept: ${error.message}`),
});
Deno.exit(0);
