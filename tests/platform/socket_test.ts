/**
 * The descriptor-level socket helpers with real sockets: listeners, peer
 * addresses, peer credentials (from another uid too), and a TCP
 * connection passed between descriptors with SCM_RIGHTS and carried on as
 * a byte pipe.
 */
import assert from "node:assert/strict";
import { libc } from "../../src/platform/libc.ts";
import {
  accept,
  closeSocket,
  connectUnix,
  formatIp,
  listenTcp,
  listenUnix,
  parseIp,
  peerCredentials,
  receive,
  receiveWithDescriptors,
  sendSome,
  sendWithDescriptor,
  WOULD_BLOCK,
} from "../../src/platform/socket.ts";
import { reactor } from "../../src/platform/reactor.ts";
import { SocketPipe } from "../../src/platform/socket_pipe.ts";
import { localUser } from "../helpers/attack.ts";

const F_GETFD = 1;
const FD_CLOEXEC = 1;

/** Accepts one connection on `fd`, waiting for it. */
async function acceptOne(fd: number) {
  while (true) {
    const accepted = accept(fd);
    if (accepted) return accepted;
    await reactor().readable(fd);
  }
}

/** Receives exactly `n` bytes from descriptor `fd`. */
async function receiveExactly(fd: number, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let filled = 0;
  while (filled < n) {
    const got = receive(fd, out.subarray(filled));
    if (got === 0) throw new Error("end of stream");
    if (got === WOULD_BLOCK) await reactor().readable(fd);
    else filled += got;
  }
  return out;
}

async function readAll(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let filled = 0;
  while (filled < n) {
    const got = await conn.read(out.subarray(filled));
    if (got === null) throw new Error("end of stream");
    filled += got;
  }
  return out;
}

/** A connected pair of Unix stream sockets, as descriptors. */
async function unixPair(dir: string) {
  const path = `${dir}/pair-${crypto.randomUUID()}.sock`;
  const listener = listenUnix(path);
  const a = connectUnix(path);
  const b = (await acceptOne(listener)).fd;
  closeSocket(listener);
  await Deno.remove(path);
  return [a, b];
}

Deno.test("platform: IP literals parse and print in canonical form", () => {
  const cases: [string, string][] = [
    ["127.0.0.1", "127.0.0.1"],
    ["0.0.0.0", "0.0.0.0"],
    ["::", "::"],
    ["::1", "::1"],
    ["2001:db8::1", "2001:db8::1"],
    ["2001:0db8:0000:0000:0000:ff00:0042:8329", "2001:db8::ff00:42:8329"],
    ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ["1:0:0:4:0:0:0:8", "1:0:0:4::8"],
    ["::ffff:192.0.2.7", "192.0.2.7"],
  ];
  for (const [text, canonical] of cases) {
    const bytes = parseIp(text);
    assert.ok(bytes, text);
    assert.equal(formatIp(bytes), canonical, text);
  }
  for (
    const bad of [
      "1.2.3",
      "256.1.1.1",
      "1::2::3",
      "fe80::1%eth0",
      "1:2:3:4:5:6:7:8:9",
      "localhost",
      "",
    ]
  ) {
    assert.equal(parseIp(bad), null, bad);
  }
});

Deno.test("platform: a TCP listener accepts with the peer's address; reads never wait or overrun", async () => {
  const { fd, port } = listenTcp("127.0.0.1", 0);
  assert.ok(port > 0);
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const accepted = await acceptOne(fd);
    assert.equal(accepted.peer?.address, "127.0.0.1");
    assert.equal(
      accepted.peer?.port,
      (client.localAddr as Deno.NetAddr).port,
    );
    assert.equal(accepted.peer?.bytes.length, 4);
    assert.equal(receive(accepted.fd, new Uint8Array(8)), WOULD_BLOCK);
    await client.write(new Uint8Array([1, 2, 3, 4, 5, 6]));
    // A four-byte buffer takes four bytes; the rest stays in the socket.
    assert.deepEqual(
      await receiveExactly(accepted.fd, 4),
      new Uint8Array([1, 2, 3, 4]),
    );
    assert.deepEqual(
      await receiveExactly(accepted.fd, 2),
      new Uint8Array([5, 6]),
    );
    assert.equal(sendSome(accepted.fd, new Uint8Array([9])), 1);
    assert.deepEqual(await readAll(client, 1), new Uint8Array([9]));
    client.close();
    await reactor().readable(accepted.fd);
    assert.equal(receive(accepted.fd, new Uint8Array(8)), 0);
    closeSocket(accepted.fd);
  } finally {
    closeSocket(fd);
  }
});

Deno.test("platform: a Unix listener's peers carry their credentials", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/creds.sock`;
  const listener = listenUnix(path);
  try {
    const mine = connectUnix(path);
    const accepted = await acceptOne(listener);
    assert.equal(accepted.peer, null);
    assert.deepEqual(peerCredentials(accepted.fd), {
      pid: Deno.pid,
      uid: Deno.uid(),
      gid: Deno.gid(),
    });
    closeSocket(mine);
    closeSocket(accepted.fd);
  } finally {
    closeSocket(listener);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "platform: peer credentials name another user's process exactly",
  ignore: Deno.uid() !== 0,
  async fn() {
    const user = await localUser();
    const dir = await Deno.makeTempDir();
    await Deno.chmod(dir, 0o755);
    const path = `${dir}/creds.sock`;
    const listener = listenUnix(path);
    await Deno.chmod(path, 0o666);
    const script = `${dir}/connect.ts`;
    await Deno.writeTextFile(
      script,
      `import net from "node:net";
       const s = net.connect(${JSON.stringify(path)});
       s.on("data", () => s.end());
       s.on("error", () => Deno.exit(3));`,
    );
    await Deno.chmod(script, 0o644);
    const child = user.deno([script]);
    try {
      const accepted = await acceptOne(listener);
      const credentials = peerCredentials(accepted.fd);
      assert.equal(credentials.uid, user.uid);
      assert.equal(credentials.gid, user.gid);
      assert.equal(credentials.pid, child.pid);
      sendSome(accepted.fd, new Uint8Array([1]));
      closeSocket(accepted.fd);
      assert.equal((await child.output()).code, 0);
    } finally {
      closeSocket(listener);
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("platform: a TCP connection passed with SCM_RIGHTS carries on as a byte pipe", async () => {
  const dir = await Deno.makeTempDir();
  const { fd: tcpListener, port } = listenTcp("127.0.0.1", 0);
  const [sender, receiver] = await unixPair(dir);
  const client = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const accepted = await acceptOne(tcpListener);
    await client.write(new TextEncoder().encode("HELLO+rest"));
    const hello = await receiveExactly(accepted.fd, 5);
    assert.equal(
      sendWithDescriptor(
        sender,
        new TextEncoder().encode("notice\n"),
        accepted.fd,
      ),
      7,
    );
    // The sender lets go of its copy: the connection lives on in the other.
    closeSocket(accepted.fd);
    await reactor().readable(receiver);
    const descriptors: number[] = [];
    const buffer = new Uint8Array(64);
    const { count, truncated } = receiveWithDescriptors(
      receiver,
      buffer,
      descriptors,
    );
    assert.equal(
      new TextDecoder().decode(buffer.subarray(0, count)),
      "notice\n",
    );
    assert.equal(truncated, false);
    assert.equal(descriptors.length, 1);
    const flags = libc().fcntl(descriptors[0], F_GETFD, 0);
    assert.equal(flags & FD_CLOEXEC, FD_CLOEXEC, "received close-on-exec");
    const pipe = new SocketPipe(descriptors[0], hello);
    const got = new Uint8Array(10);
    let filled = 0;
    while (filled < 10) filled += (await pipe.read(got.subarray(filled)))!;
    assert.equal(new TextDecoder().decode(got), "HELLO+rest");
    // Both directions, a few MB, through the passed socket.
    const size = 64 * 65536;
    const data = crypto.getRandomValues(new Uint8Array(65536));
    const writing = (async () => {
      for (let sent = 0; sent < size; sent += data.length) {
        await pipe.write(data);
      }
    })();
    const back = await readAll(client, size);
    await writing;
    assert.deepEqual(back.subarray(0, data.length), data);
    await client.write(new Uint8Array([7]));
    const one = new Uint8Array(1);
    assert.equal(await pipe.read(one), 1);
    assert.equal(one[0], 7);
    pipe.close();
    assert.equal(await client.read(new Uint8Array(1)), null, "closed for good");
    assert.equal(await pipe.read(one), null);
    await assert.rejects(pipe.write(one));
  } finally {
    client.close();
    closeSocket(sender);
    closeSocket(receiver);
    closeSocket(tcpListener);
    await Deno.remove(dir, { recursive: true });
  }
});
