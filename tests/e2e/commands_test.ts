/**
 * Commands run through `et host cmd`: stdin, stdout and stderr exact and
 * apart without a pty, the exit status passed through, a pty exactly when
 * ssh would give one, and a large output byte-identical even when the path
 * fails while it streams and while the command ends.
 */

import assert from "node:assert/strict";
import type { FaultProxy } from "../helpers/fault_proxy.ts";
import { PtyProcess } from "../helpers/pty_process.ts";
import { patternBytes } from "../helpers/session_pair.ts";
import {
  parseSessionList,
  PipedClient,
  runToEnd,
  sha256,
  shellAnswers,
  sleep,
  waitUntil,
  withProxiedSession,
} from "./_client.ts";
import { E2E_TEST, withWorld } from "./_world.ts";

const encoder = new TextEncoder();

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

Deno.test({
  ...E2E_TEST,
  name:
    "--no-pty: stdout and stderr arrive apart and exact, binary stdin reaches the command, its EOF ends cat, the exit status passes through",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const input = patternBytes(300_000, 7); // every byte value, binary
      const client = new PipedClient([
        ...world.client(["--no-pty", "--connect-timeout", "10s"]),
        "printf 'to-stdout\\n'; printf 'to-stderr\\n' >&2; cat; " +
        "echo cat-ended; printf 'late-stderr\\n' >&2; exit 7",
      ], true);
      try {
        await client.type(input);
        await client.endInput();
        assert.equal(await client.exit(30_000), 7, `stderr: ${client.stderr}`);
        const expected = concat(
          encoder.encode("to-stdout\n"),
          input,
          encoder.encode("cat-ended\n"),
        );
        const got = client.bytes();
        assert.equal(got.length, expected.length, "stdout byte count");
        assert.equal(sha256(got), sha256(expected), "stdout bytes");
        assert.equal(client.stderr, "to-stderr\nlate-stderr\n");
      } finally {
        await client.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "a command gets a pty between two terminals, --no-pty overrides it, --pty forces one on pipes, pipes alone get none",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const command = "tty; exit 3";
      // Both stdio ends are a terminal: a pty, like ssh.
      let term = PtyProcess.spawn([...world.client(), command]);
      try {
        await term.waitFor(/\/dev\/pts\/\d+/, { timeoutMs: 30_000 });
        assert.equal((await term.wait(30_000)).code, 3);
      } finally {
        await term.close();
      }
      // --no-pty between two terminals: none.
      term = PtyProcess.spawn([...world.client(["--no-pty"]), command]);
      try {
        await term.waitFor("not a tty", { timeoutMs: 30_000 });
        assert.equal((await term.wait(30_000)).code, 3);
        assert.doesNotMatch(term.text, /\/dev\/pts\//);
      } finally {
        await term.close();
      }
      // --pty on pipes: one.
      let piped = new PipedClient([...world.client(["--pty"]), command]);
      try {
        assert.equal(await piped.exit(30_000), 3, `stderr: ${piped.stderr}`);
        assert.match(piped.stdout, /^\/dev\/pts\/\d+\r\n$/);
      } finally {
        await piped.close();
      }
      // Pipes, no flag: none.
      piped = new PipedClient([...world.client(), command]);
      try {
        assert.equal(await piped.exit(30_000), 3, `stderr: ${piped.stderr}`);
        assert.equal(piped.stdout, "not a tty\n");
      } finally {
        await piped.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "--no-pty with a detached session on the host: stderr still carries only the command's bytes",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      // A session whose client died: detached.
      const old = new PipedClient(world.client());
      try {
        await shellAnswers(old);
        old.kill();
        await old.exit();
      } finally {
        await old.close();
      }
      await waitUntil(
        async () => {
          const list = await runToEnd(world.client(["--list"]));
          return parseSessionList(list.stdout)[0]?.state === "detached";
        },
        15_000,
        "the old session to show detached",
      );

      const client = new PipedClient([
        ...world.client(["--no-pty"]),
        "printf 'only-this' >&2; printf 'out'",
      ]);
      try {
        await client.endInput();
        assert.equal(await client.exit(30_000), 0, `stderr: ${client.stderr}`);
        assert.equal(client.stdout, "out");
        assert.equal(
          client.stderr,
          "only-this",
          "stderr is the remote command's own stream",
        );
      } finally {
        await client.close();
      }
    }),
});

/** Local `seq 1 300000`: what the remote one must print. */
async function localSeq(): Promise<Uint8Array> {
  const output = await new Deno.Command("seq", {
    args: ["1", "300000"],
    stdout: "piped",
  }).output();
  return output.stdout;
}

Deno.test({
  ...E2E_TEST,
  name: "seq 1 300000 (--no-pty): stdout byte-identical to a local seq, exit 0",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const expected = await localSeq();
      const client = new PipedClient(
        [...world.client(["--no-pty"]), "seq 1 300000"],
        true,
      );
      try {
        // stdin stays open, as a terminal's would: the command's end ends et.
        assert.equal(await client.exit(60_000), 0, `stderr: ${client.stderr}`);
        assert.equal(client.stdoutBytes, expected.length, "byte count");
        assert.equal(sha256(client.bytes()), sha256(expected));
        assert.equal(client.stderr, "");
      } finally {
        await client.close();
      }
    }),
});

/**
 * Runs `seq 1 300000; exit 0` through the proxy; `fault` starts once the
 * first 16 KiB of output pass the proxy (from the tap, so before they are
 * forwarded). Asserts byte-identical stdout and exit 0.
 */
async function seqThroughFault(
  fault: (proxy: FaultProxy, client: PipedClient) => Promise<void>,
): Promise<void> {
  const expected = await localSeq();
  await withProxiedSession({
    privateRuntime: true,
    extra: ["--no-pty"],
    command: "seq 1 300000; exit 0",
    keepBytes: true,
    waitForShell: false,
  }, async ({ proxy, client }) => {
    let down = 0;
    let started: () => void = () => {};
    const outputStarted = new Promise<void>((resolve) => started = resolve);
    let faulting: Promise<void> = Promise.resolve();
    try {
      proxy.setTap((up, bytes) => {
        if (up) return;
        down += bytes;
        if (down >= 16 * 1024) {
          proxy.setTap(null);
          started();
          faulting = fault(proxy, client);
        }
      });
      await outputStarted;
      const atFault = client.stdoutBytes;
      const code = await client.exit(60_000);
      await faulting;
      assert.equal(code, 0, `stderr: ${client.stderr}`);
      assert.equal(client.stdoutBytes, expected.length, "byte count");
      assert.equal(sha256(client.bytes()), sha256(expected));
      assert.ok(
        atFault < expected.length,
        `the fault began before the output was complete (${atFault} bytes)`,
      );
      console.log(
        `fault began with ${atFault} of ${expected.length} bytes delivered; ` +
          `cuts: ${proxy.stats.cuts}, connections: ${proxy.stats.accepted}`,
      );
    } finally {
      proxy.setTap(null);
    }
  });
}

Deno.test({
  ...E2E_TEST,
  name:
    "seq 1 300000; exit 0 through a 3 s blackhole from the start of output: identical, exit 0",
  fn: () =>
    seqThroughFault(async (proxy) => {
      proxy.setBlackhole(true);
      await sleep(3000);
      proxy.setBlackhole(false);
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "seq 1 300000; exit 0 with the connection cut every 150 ms from the start of output: identical, exit 0",
  fn: () =>
    seqThroughFault(async (proxy, client) => {
      const until = performance.now() + 10_000;
      while (client.running && performance.now() < until) {
        proxy.cut();
        await sleep(150);
      }
    }),
});
