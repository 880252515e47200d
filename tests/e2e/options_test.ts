/**
 * The client's ET-style options end to end: `-u` and `--ssh-option` reach
 * every ssh the client runs (a config whose User and Port are wrong works
 * only through them), SetEnv given with `--ssh-option` is in the remote
 * shell, `-k` sets the keepalive interval of both ends (new and attached
 * sessions: counted on the wire),
 * and `--silent` keeps notices off the terminal.
 */

import assert from "node:assert/strict";
import { PipedClient, shellAnswers, sleep } from "./_client.ts";
import { clientWithConfig, serverSettings } from "./_ssh_config.ts";
import { E2E_TEST, withWorld } from "./_world.ts";
import { FaultProxy } from "../helpers/fault_proxy.ts";

Deno.test({
  ...E2E_TEST,
  name:
    "-u and --ssh-option reach ssh (bootstrap and ssh -G); SetEnv from --ssh-option is in the remote shell",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      // A config that names the server but logs in as nobody, on no port:
      // only -u and --ssh-option Port=… make it work.
      const argv = await clientWithConfig(world, {
        lines: [
          "Host cfgtest",
          "  HostName 127.0.0.1",
          "  User no-such-user-et",
          ...(await serverSettings(world, ["port", "user"])).map((l) =>
            `  ${l}`
          ),
        ],
      }, [
        "-u",
        world.sshd.user,
        "--ssh-option",
        `Port=${world.sshd.port}`,
        "--ssh-option",
        "SetEnv=ET_OPT=from-option",
      ], `cfgtest:${world.daemonPort}`);
      const client = new PipedClient(argv);
      try {
        await shellAnswers(client);
        await client.type('echo "U[$(id -un)][$ET_OPT]"\n');
        await client.waitFor(`U[${world.sshd.user}][from-option]`);
      } finally {
        await client.close();
      }
      assert.doesNotMatch(world.sshd.log(), /no-such-user-et/);

      // Without -u the config's user is the one ssh tries (and fails as).
      const failing = new PipedClient(
        argv.filter((_, i) => argv[i] !== "-u" && argv[i - 1] !== "-u"),
      );
      assert.equal(await failing.exit(30_000), 1);
      assert.match(world.sshd.log(), /[Ii]nvalid user no-such-user-et/);
    }),
});

/** Lines of the world's client log that say a connection was lost. */
async function disconnects(dir: string): Promise<string[]> {
  const log = await Deno.readTextFile(`${dir}/client.log`).catch(() => "");
  return log.split("\n").filter((line) => line.includes("disconnected:"));
}

Deno.test({
  ...E2E_TEST,
  name:
    "-k 8: neither end sends a keepalive in 6 s of quiet, for a new session and on attach; an attach without -k brings back 1 s keepalives",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      // Every chunk between client and daemon crosses the proxy: a quiet
      // window shows which keepalive interval each end really uses. (Since
      // keepalives are answered, a quiet session no longer drops for a
      // mismatched interval; only the packets tell.)
      const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
      const clients: PipedClient[] = [];
      const start = async (extra: string[]) => {
        const client = new PipedClient(
          world.client(extra, { port: proxy.port }),
        );
        clients.push(client);
        await shellAnswers(client);
        return client;
      };
      /**
       * Chunks each way in 6 s of quiet from 0.5 s after the last answer;
       * sooner once `enough` of them came (where more cannot change the
       * verdict).
       */
      const quietChunks = async (
        enough?: (seen: { up: number; down: number }) => boolean,
      ) => {
        await sleep(500); // the last output's ack
        const seen = { up: 0, down: 0 };
        proxy.setTap((up) => up ? seen.up++ : seen.down++);
        const quietUntil = performance.now() + 6000;
        while (performance.now() < quietUntil && !enough?.(seen)) {
          await sleep(Math.min(100, quietUntil - performance.now()));
        }
        proxy.setTap(null);
        assert.deepEqual(await disconnects(world.dir), [], "no drop");
        return seen;
      };
      try {
        // New session, -k 8: the first keepalive of either end is 8 s away.
        const first = await start(["-k", "8"]);
        assert.deepEqual(await quietChunks(), { up: 0, down: 0 }, "-k 8");
        await first.close();

        // Attach without -k: the session's end is back at 1 s (doubling
        // while idle: at about 1 and 3 s), and so is the client's.
        const second = await start(["--attach"]);
        const twoEachWay = (seen: { up: number; down: number }) =>
          seen.down >= 2 && seen.up >= 2;
        const plain = await quietChunks(twoEachWay);
        assert.ok(twoEachWay(plain), JSON.stringify(plain));
        await second.close();

        // Attach with -k 8 to the session now at the default.
        const third = await start(["--attach", "-k", "8"]);
        assert.deepEqual(await quietChunks(), { up: 0, down: 0 }, "attach");
        await third.close();
      } finally {
        for (const client of clients) await client.close();
        await proxy.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name: "--silent: an outage gives no notice on the terminal; without it, one",
  fn: () =>
    // Both clients at once, in one world, through one outage of the path.
    withWorld({ privateRuntime: true }, async (world) => {
      const proxy = await FaultProxy.start({ targetPort: world.daemonPort });
      const clients = [false, true].map((silent) => ({
        silent,
        client: new PipedClient(
          world.client(silent ? ["--silent"] : [], { port: proxy.port }),
        ),
      }));
      try {
        for (const { client } of clients) await shellAnswers(client);
        proxy.setRefuse(true);
        proxy.cut();
        await sleep(2500); // notices come after a second of outage
        proxy.setRefuse(false);
        for (const { client } of clients) await shellAnswers(client);
        await sleep(200);
        for (const { silent, client } of clients) {
          if (silent) assert.equal(client.stderr, "");
          else assert.match(client.stderr, /connection lost, reconnecting…/);
        }
      } finally {
        for (const { client } of clients) await client.close();
        await proxy.close();
      }
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "ProxyJump from the ssh config: the bootstrap goes through the jump host, as ssh would, and the TCP leg through a relay there",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const settings = (await serverSettings(world)).map((l) => `  ${l}`);
      const logins = () =>
        world.sshd.log().match(/Accepted publickey for /g)?.length ?? 0;
      const run = async (host: string, lines: string[]) => {
        const before = logins();
        const client = new PipedClient(
          await clientWithConfig(
            world,
            { lines },
            [],
            `${host}:${world.daemonPort}`,
          ),
        );
        try {
          await shellAnswers(client);
        } finally {
          await client.close();
        }
        return logins() - before;
      };
      // The jump host is the test sshd itself, reached by another name.
      const jumpConfig = [
        "Host jump",
        "  HostName 127.0.0.1",
        ...settings,
        "Host via-jump",
        "  HostName 127.0.0.1",
        "  ProxyJump jump",
        ...settings,
      ];
      // The bootstrap logs in at the jump host and through it at the
      // target (as ssh -J would); one more login on the jump host starts
      // the jump relay that carries the TCP leg (et runs there too).
      assert.equal(
        await run("via-jump", jumpConfig),
        3,
        "jump + target, then the jump host's relay",
      );
      assert.ok(
        (await world.terminalProcesses()).some((p) =>
          p.cmdline.includes("terminal --relay")
        ),
        "a jump relay runs on the jump host",
      );
      assert.equal(
        await run("direct", [
          "Host direct",
          "  HostName 127.0.0.1",
          ...settings,
        ]),
        1,
        "target only",
      );
    }),
});
