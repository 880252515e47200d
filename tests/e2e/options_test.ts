/**
 * The client's ET-style options end to end: `-u` and `--ssh-option` reach
 * every ssh the client runs (a config whose User and Port are wrong works
 * only through them), SetEnv given with `--ssh-option` is in the remote
 * shell, `-k` sets the liveness of both ends (new and attached sessions),
 * and `--silent` keeps notices off the terminal.
 */

import assert from "node:assert/strict";
import {
  PipedClient,
  shellAnswers,
  sleep,
  withProxiedSession,
} from "./_client.ts";
import { clientWithConfig, serverSettings } from "./_ssh_config.ts";
import { E2E_TEST, withWorld } from "./_world.ts";

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
    "-k 8: both ends keep a quiet session (a 6 s dead-after would drop it), for a new session and on attach; an attach without -k goes back to the default",
  fn: () =>
    withWorld({ privateRuntime: true }, async (world) => {
      const quietly = async (client: PipedClient, ms: number, what: string) => {
        await sleep(ms);
        assert.deepEqual(await disconnects(world.dir), [], what);
        await shellAnswers(client);
      };
      // New session, -k 8: keepalives every 8 s each way. Were the
      // session's end still at 1 s / 6 s, it would drop the client's pipe.
      const first = new PipedClient(world.client(["-k", "8"]));
      await shellAnswers(first);
      await quietly(first, 14_000, "new session with -k 8");
      await first.close();

      // Attach without -k: the session goes back to 1 s keepalives, or
      // this client (dead after 6 s) would drop it.
      const second = new PipedClient(world.client(["--attach"]));
      await shellAnswers(second);
      await quietly(second, 10_000, "attach with the default keepalive");
      await second.close();

      // Attach with -k 8 to the session now at the default.
      const third = new PipedClient(world.client(["--attach", "-k", "8"]));
      await shellAnswers(third);
      await quietly(third, 14_000, "attach with -k 8");
      await third.close();
    }),
});

Deno.test({
  ...E2E_TEST,
  name: "--silent: an outage gives no notice on the terminal; without it, one",
  fn: async () => {
    for (const silent of [false, true]) {
      await withProxiedSession(
        { privateRuntime: true, extra: silent ? ["--silent"] : [] },
        async ({ proxy, client }) => {
          proxy.setRefuse(true);
          proxy.cut();
          await sleep(2500); // notices come after a second of outage
          proxy.setRefuse(false);
          await shellAnswers(client);
          await sleep(200);
          if (silent) assert.equal(client.stderr, "");
          else assert.match(client.stderr, /connection lost, reconnecting…/);
        },
      );
    }
  },
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
