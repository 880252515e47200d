/**
 * Tests of StdOutput through a child process whose stdout is a real pipe,
 * socket or pseudo-terminal (_std_output_child.ts).
 */

import assert from "node:assert/strict";
import { Pty } from "../../src/pty/mod.ts";
import { patternBytes } from "../helpers/session_pair.ts";
import { sha256 } from "../e2e/_client.ts";

const CHILD = new URL("./_std_output_child.ts", import.meta.url).pathname;
const LINUX_ONLY = Deno.build.os !== "linux";

function childArgs(...args: string[]): string[] {
  return ["run", "-A", "--quiet", CHILD, ...args];
}

async function withDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "std-output-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function readReport(path: string): Record<string, unknown> {
  return JSON.parse(Deno.readTextFileSync(path));
}

Deno.test({
  name:
    "a pipe made non-blocking by someone else, with a slow reader: every byte exactly once (Deno.stdout.write doubled some)",
  ignore: LINUX_ONLY,
  fn: () =>
    withDir(async (dir) => {
      const size = 2 * 1024 * 1024;
      for (let round = 0; round < 2; round++) {
        const report = `${dir}/report-${round}.json`;
        const child = new Deno.Command(Deno.execPath(), {
          args: childArgs("pattern", String(size), report),
          stdout: "piped",
        }).spawn();
        // Nobody reads for a while: the pipe fills and writes find no room.
        await new Promise((resolve) => setTimeout(resolve, 500));
        const got = new Uint8Array(
          await new Response(child.stdout).arrayBuffer(),
        );
        assert.equal((await child.status).code, 0);
        assert.equal(got.length, size, "byte count");
        assert.equal(sha256(got), sha256(patternBytes(size, 9)));
        assert.equal(readReport(report).way, "own");
      }
    }),
});

Deno.test({
  name:
    "a socket as stdout, non-blocking, with a slow reader: written with send(MSG_DONTWAIT), every byte exactly once",
  ignore: LINUX_ONLY || !hasPython(),
  fn: () =>
    withDir(async (dir) => {
      const size = 2 * 1024 * 1024;
      const report = `${dir}/report.json`;
      // Python gives the child a socketpair end as stdout (as libuv-based
      // parents do), then reads it slowly and prints length and digest.
      const script = `
import hashlib, socket, subprocess, sys, time
a, b = socket.socketpair()
child = subprocess.Popen(sys.argv[1:], stdout=b)
b.close()
time.sleep(0.5)
data = bytearray()
while True:
    chunk = a.recv(65536)
    if not chunk:
        break
    data += chunk
child.wait()
print(child.returncode, len(data), hashlib.sha256(data).hexdigest())
`;
      const { stdout, stderr, code } = await new Deno.Command("python3", {
        args: [
          "-c",
          script,
          Deno.execPath(),
          ...childArgs("pattern", String(size), report),
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(code, 0, new TextDecoder().decode(stderr));
      const [status, length, digest] = new TextDecoder().decode(stdout).trim()
        .split(" ");
      assert.equal(status, "0");
      assert.equal(Number(length), size, "byte count");
      assert.equal(digest, sha256(patternBytes(size, 9)));
      assert.equal(readReport(report).way, "socket");
    }),
});

Deno.test({
  name:
    "a full terminal is 'no room now' even when errno reads back clobbered once (the 20-session stall)",
  ignore: LINUX_ONLY,
  fn: () =>
    withDir(async (dir) => {
      const report = `${dir}/report.json`;
      // Nobody reads the child's terminal until it exited: it fills up.
      const pty = Pty.spawn({
        command: Deno.execPath(),
        args: childArgs("fill-clobbered", "", report),
        cols: 80,
        rows: 24,
      });
      try {
        assert.equal((await pty.exited).code, 0);
        const outcome = readReport(report);
        assert.equal(outcome.way, "own");
        assert.ok((outcome.filled as number) > 0, JSON.stringify(outcome));
        // A clobbered errno (ENOENT) taken at its word ended the client's
        // output for good while its session stayed up. The line discipline
        // may free some room meanwhile (it moves bytes on in a kernel
        // worker), so a try may take a little; none may throw.
        const tries = outcome.tries as string[];
        assert.equal(tries.length, 20);
        for (const each of tries) assert.match(each, /^took \d+$/);
        const full = tries.filter((each) => each === "took 0").length;
        assert.ok(full >= 10, `most tries found no room: ${tries}`);
        // Each of those read errno twice: clobbered, then the real EAGAIN.
        assert.ok((outcome.errnoReads as number) >= 2 * full);
      } finally {
        await pty.close();
      }
    }),
});

Deno.test({
  name:
    "a pipe whose reader left fails the write with BrokenPipe (the reader's choice, as '| head' makes it)",
  ignore: LINUX_ONLY,
  fn: () =>
    withDir(async (dir) => {
      const report = `${dir}/report.json`;
      const child = new Deno.Command(Deno.execPath(), {
        args: childArgs("until-failure", "", report),
        stdout: "piped",
      }).spawn();
      const reader = child.stdout.getReader();
      await reader.read(); // the child has opened its own description
      await reader.cancel();
      assert.equal((await child.status).code, 0);
      const outcome = readReport(report);
      assert.equal(outcome.way, "own");
      assert.equal(outcome.error, "BrokenPipe", JSON.stringify(outcome));
    }),
});

function hasPython(): boolean {
  try {
    return new Deno.Command("python3", { args: ["-c", ""] }).outputSync()
      .success;
  } catch {
    return false;
  }
}
