/**
 * `--over-ssh`: the session's sealed frames carried over the stdio of
 * `ssh host et relay <id>` instead of TCP (a host with only port 22 open).
 * The fault proxy sits in front of sshd, so the ssh connections
 * themselves are cut mid-stream: every reconnect starts a new ssh, the
 * relay joins the session through its control socket, and the same
 * handshake resumes it with nothing lost or repeated. Also: the client
 * switching to ssh by itself when the TCP port is closed, and the one
 * line it prints when the relay's ssh cannot log in without a prompt.
 */

import assert from "node:assert/strict";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import {
  PipedClient,
  runToEnd,
  sha256,
  shellAnswers,
  sleep,
  waitUntil,
} from "./_client.ts";
import { E2E_TEST, ET, type EtWorld, withWorld } from "./_world.ts";

/** The client's notice when it gives up on TCP for ssh. */
const SWITCH_NOTICE =
  /et: port \d+ on et-test is not reachable; carrying the session over ssh instead/;

/** Client flags that send its ssh (bootstrap and relays) through `proxy`. */
function sshThrough(world: EtWorld, proxy: FaultProxy): string[] {
  return ["--ssh", `${world.sshd.sshCommand} -p ${proxy.port}`];
}

/** A TCP port free on 127.0.0.1 at the time of asking (nothing listens). */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** `seq 1 n` as this machine's seq prints it. */
function seqText(n: number): string {
  let text = "";
  for (let i = 1; i <= n; i++) text += `${i}\n`;
  return text;
}

/** The median of `values`. */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

Deno.test({
  ...E2E_TEST,
  name:
    "over ssh: a paced stream arrives sha256-exact while the ssh connections are cut mid-stream",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const proxy = await FaultProxy.start({ targetPort: world.sshd.port });
      // 400,000 lines (2.7 MB) in 40 slices 0.15 s apart: ~6 s of output.
      const command = "for i in $(seq 0 39); do " +
        "seq $((i*10000+1)) $((i*10000+10000)); sleep 0.15; done";
      const client = new PipedClient(
        [
          ...world.client([...sshThrough(world, proxy), "--over-ssh"]),
          command,
        ],
        true,
      );
      try {
        await waitUntil(() => client.stdoutBytes > 0, 30_000, "first output");
        let cuts = 0;
        let cutAt = 0;
        while (client.running && cuts < 6) {
          // Cut only while output still flows, so every cut is mid-stream.
          if (client.stdoutBytes >= 2_600_000) break;
          const severed = proxy.cut();
          if (severed > 0) cuts++;
          cutAt = client.stdoutBytes;
          await sleep(1200);
        }
        assert.equal(await client.exit(120_000), 0, client.stderr);
        const expected = seqText(400_000);
        assert.equal(client.bytes().length, expected.length, "byte count");
        assert.equal(sha256(client.bytes()), sha256(expected));
        assert.ok(cuts >= 3, `only ${cuts} cuts landed mid-stream`);
        assert.ok(cutAt < expected.length, "the last cut was mid-stream");
        console.log(
          `ssh connections cut mid-stream: ${cuts}; ssh logins through the proxy: ${proxy.stats.accepted}`,
        );
      } finally {
        await client.close();
        await proxy.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "over ssh: typing resumes after each cut ssh connection; reconnect time beside TCP's",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const sshProxy = await FaultProxy.start({ targetPort: world.sshd.port });
      const tcpProxy = await FaultProxy.start({
        targetPort: world.daemonPort,
      });
      const overSsh = new PipedClient(
        world.client([...sshThrough(world, sshProxy), "--over-ssh"]),
      );
      const overTcp = new PipedClient(
        world.client([], { port: tcpProxy.port }),
      );
      try {
        await shellAnswers(overSsh);
        await shellAnswers(overTcp);
        // Cut, type at once, time the answer: the reconnect (a new ssh
        // login and relay, or a TCP connect) plus one round trip.
        const resume = async (
          client: PipedClient,
          proxy: FaultProxy,
          round: number,
        ) => {
          assert.ok(proxy.cut() > 0, "a connection to cut");
          const began = performance.now();
          await client.type(`echo RESUMED-${round}-$((${round}*1000+7))\n`);
          await client.waitFor(`RESUMED-${round}-${round * 1000 + 7}`, 30_000);
          return performance.now() - began;
        };
        const sshTimes: number[] = [];
        const tcpTimes: number[] = [];
        for (let round = 1; round <= 5; round++) {
          sshTimes.push(await resume(overSsh, sshProxy, round));
          tcpTimes.push(await resume(overTcp, tcpProxy, round));
          await sleep(300);
        }
        // Typed once each: every answer appears exactly once.
        for (let round = 1; round <= 5; round++) {
          const answer = `RESUMED-${round}-${round * 1000 + 7}\r\n`;
          assert.equal(overSsh.stdout.split(answer).length - 1, 1, answer);
        }
        // Each cut ssh took its relay with it: one relay left, the live one.
        await waitUntil(
          async () =>
            (await world.terminalProcesses()).filter((p) =>
              / relay [0-9a-f]{32}$/.test(p.cmdline)
            ).length === 1,
          10_000,
          "exactly one et relay left",
        );
        console.log(
          `cut to answer, median of 5: over ssh ${
            median(sshTimes).toFixed(0)
          } ms (${sshTimes.map((t) => t.toFixed(0)).join(", ")}), TCP ${
            median(tcpTimes).toFixed(0)
          } ms (${tcpTimes.map((t) => t.toFixed(0)).join(", ")})`,
        );
        await overSsh.type("exit 0\n");
        assert.equal(await overSsh.exit(30_000), 0, overSsh.stderr);
      } finally {
        await overSsh.close();
        await overTcp.close();
        await sshProxy.close();
        await tcpProxy.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "a closed TCP port: the client says so in one line and carries the session over ssh",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const port = closedPort();
      const started = performance.now();
      const client = new PipedClient(world.client([], { port }));
      try {
        await shellAnswers(client, 60_000);
        const took = performance.now() - started;
        const notices = client.stderr.split("\n").filter((line) =>
          SWITCH_NOTICE.test(line)
        );
        assert.equal(notices.length, 1, client.stderr);
        assert.match(notices[0], new RegExp(`port ${port} on et-test`));
        const log = await Deno.readTextFile(`${world.dir}/client.log`);
        assert.match(log, /pipe attached/);
        console.log(`closed port to a shell over ssh: ${took.toFixed(0)} ms`);
        await client.type("exit 0\n");
        assert.equal(await client.exit(30_000), 0, client.stderr);
      } finally {
        await client.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "the relay's ssh cannot log in without a prompt: one clear line, exit 1",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const client = new PipedClient(
        world.client([], { port: closedPort() }),
      );
      try {
        // The bootstrap logged in; while the client still tries TCP (3 s),
        // the key stops working, as when an agent forgets it.
        await waitUntil(
          async () => (await world.sessionProcesses()).length > 0,
          30_000,
          "the session process",
        );
        await Deno.writeTextFile(`${world.sshd.dir}/authorized_keys`, "");
        const code = await client.exit(60_000);
        assert.equal(code, 1, client.stderr);
        const lines = client.stderr.trim().split("\n");
        const last = lines[lines.length - 1];
        assert.match(
          last,
          /^et: ssh to et-test cannot log in without a prompt \(.*Permission denied.*\); --over-ssh starts ssh again at every reconnect and needs a key or ssh-agent/,
        );
        assert.ok(!/\n\s+at /.test(client.stderr), "no stack trace");
        assert.match(client.stderr, SWITCH_NOTICE);
      } finally {
        await client.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "over ssh: a reconnect whose ssh needs a prompt says so once; the session resumes once the key works again",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const proxy = await FaultProxy.start({ targetPort: world.sshd.port });
      const client = new PipedClient(
        world.client([...sshThrough(world, proxy), "--over-ssh"]),
      );
      const keys = `${world.sshd.dir}/authorized_keys`;
      const authorized = await Deno.readTextFile(keys);
      try {
        await shellAnswers(client);
        await Deno.writeTextFile(keys, "");
        proxy.cut();
        const line =
          /et: ssh to et-test cannot log in without a prompt \(.*Permission denied.*\); --over-ssh starts ssh again at every reconnect/g;
        await client.waitForStderr(line, 30_000);
        // Attempts go on failing (several ssh logins), said only once.
        const logins = proxy.stats.accepted;
        await waitUntil(
          () => proxy.stats.accepted >= logins + 3,
          30_000,
          "more failing logins",
        );
        assert.equal(client.stderr.match(line)?.length, 1, client.stderr);
        assert.ok(client.running, "the client keeps trying");
        await Deno.writeTextFile(keys, authorized);
        await client.type("echo BACK-$((20+1))\n");
        await client.waitFor("BACK-21", 30_000);
        await client.type("exit 0\n");
        assert.equal(await client.exit(30_000), 0, client.stderr);
      } finally {
        await client.close();
        await proxy.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "over ssh: a login script printing on stdout (an unfinished line too) does not break the relay",
  fn: async () => {
    const home = await Deno.makeTempDir({ prefix: "et-noisy-home-" });
    try {
      // bash reads ~/.bashrc for ssh's commands too: noise before et relay.
      await Deno.writeTextFile(
        `${home}/.bashrc`,
        'echo "noise on stdout ET_RELAY_READY not yet"\n' +
          "printf 'no newline at the end'\n",
      );
      await withWorld(
        { privateRuntime: true, commandRcFiles: true, sshEnv: { HOME: home } },
        async (world) => {
          const noisy = await new Deno.Command("sh", {
            args: ["-c", `${world.sshd.sshCommand} et-test true`],
          }).output();
          const said = new TextDecoder().decode(noisy.stdout);
          if (!said.includes("no newline at the end")) {
            console.log(`this login shell reads no ~/.bashrc: ${said}`);
          }
          assert.match(said, /no newline at the end/, "the noise is real");
          const client = new PipedClient([
            ...world.client(["--over-ssh"]),
            "echo QUIET-$((3*3))",
          ]);
          try {
            assert.equal(await client.exit(60_000), 0, client.stderr);
            assert.equal(client.stdout, "QUIET-9\n");
          } finally {
            await client.close();
          }
        },
      );
    } finally {
      await Deno.remove(home, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  ...E2E_TEST,
  name:
    "over ssh: et --attach --over-ssh takes over a session a lost TCP client left",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const first = new PipedClient(world.client([]));
      let second: PipedClient | undefined;
      try {
        await shellAnswers(first);
        await first.type("WHERE=first-$((5+5))\n");
        await first.type("echo SET-$WHERE\n");
        await first.waitFor("SET-first-10");
        first.kill();
        const ids = [...Deno.readDirSync(world.runtimeDir)]
          .map((entry) => entry.name.match(/^([0-9a-f]{32})\.ctl$/)?.[1])
          .filter((id) => id !== undefined);
        assert.equal(ids.length, 1, `sessions: ${ids}`);
        second = new PipedClient(
          world.client(["--attach", "--over-ssh", ids[0]!.slice(0, 8)]),
        );
        await second.type("echo still-$WHERE\n");
        await second.waitFor("still-first-10", 30_000);
        await second.type("exit 0\n");
        assert.equal(await second.exit(30_000), 0, second.stderr);
      } finally {
        await first.close();
        await second?.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "et relay: --help (and the client's new flags in et --help), a missing id is a usage error, a bad or unknown id one refusal line",
  fn: async () => {
    const help = await runToEnd([...ET, "relay", "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: et relay SESSION-ID/);
    const clientHelp = await runToEnd([...ET, "--help"]);
    for (const word of ["--over-ssh", "--install-remote", "--binaries DIR"]) {
      assert.ok(clientHelp.stdout.includes(word), `et --help names ${word}`);
    }
    const missing = await runToEnd([...ET, "relay"]);
    assert.equal(missing.code, 2);
    assert.equal(
      missing.stderr,
      "et: relay needs a session id (see et relay --help)\n",
    );
    const bad = await runToEnd([...ET, "relay", "zz"]);
    assert.equal(bad.code, 1);
    assert.equal(
      bad.stdout,
      "\nET_TERMINAL_REFUSED et relay: not a session id: 'zz'\n",
    );
    const runtime = await Deno.makeTempDir();
    try {
      const unknown = await runToEnd([
        "env",
        `ET_RUNTIME_DIR=${runtime}`,
        ...ET,
        "relay",
        "0123456789abcdef0123456789abcdef",
      ]);
      assert.equal(unknown.code, 1);
      assert.equal(
        unknown.stdout,
        "\nET_TERMINAL_REFUSED session 01234567 is not running on this host\n",
      );
      assert.equal(unknown.stderr, "");
    } finally {
      await Deno.remove(runtime, { recursive: true });
    }
  },
});
