/**
 * A session over IPv6 end to end: ssh reaches sshd on `::1`, the client
 * dials the daemon on `[::1]`, and the daemon (bound to IPv4 and IPv6)
 * hands the connection over from an IPv6 peer; the host name comes from an
 * ssh config alias resolved through `Include` and `Match`, whose `SetEnv`
 * reaches the remote shell.
 */

import assert from "node:assert/strict";
import { PipedClient, shellAnswers } from "./_client.ts";
import { clientWithConfig, serverSettings } from "./_ssh_config.ts";
import { E2E_TEST, withWorld } from "./_world.ts";

Deno.test({
  ...E2E_TEST,
  name:
    "IPv6: et user@[::1]:port reaches the daemon over ::1; an alias's SetEnv (Include + Match) is in the remote shell",
  fn: () =>
    withWorld({ privateRuntime: true, ipv6: true }, async (world) => {
      const settings = await serverSettings(world);
      const argvLiteral = await clientWithConfig(
        world,
        {
          lines: ["Host ::1", ...settings.map((l) => `  ${l}`)],
        },
        [],
        `${world.sshd.user}@[::1]:${world.daemonPort}`,
      );
      const literal = new PipedClient(argvLiteral);
      try {
        await shellAnswers(literal);
        // ssh went to sshd over ::1 (the session's own env does not say).
        assert.match(world.sshd.log(), /Connection from ::1 port \d+/);
      } finally {
        await literal.close();
      }
      // An alias for the same server, by ::1, from an Include; SetEnv from
      // a Match on the resolved HostName and User.
      const argvAlias = await clientWithConfig(
        world,
        {
          lines: [
            `Include ${world.dir}/v6.conf`,
            `Match host ::1 user ${world.sshd.user}`,
            '  SetEnv ET_MATCHED=by-match "ET_SPACED=a  b"',
          ],
          includes: {
            "v6.conf": [
              "Host v6alias",
              "  HostName ::1",
              ...settings.map((l) => `  ${l}`),
            ],
          },
        },
        [],
        `v6alias:${world.daemonPort}`,
      );
      const alias = new PipedClient(argvAlias);
      try {
        await shellAnswers(alias);
        await alias.type(
          'echo "GOT[${ET_MATCHED-unset}][$ET_SPACED]"\n',
        );
        // The Include named the host, Match (on the HostName it gave) the
        // variable: neither is in a config et parses itself.
        await alias.waitFor("GOT[by-match][a  b]");
      } finally {
        await alias.close();
      }
      // The daemon's log reaches its file in full once it exits.
      await world.restartDaemon("SIGTERM");
      const log = await Deno.readTextFile(`${world.dir}/daemon.log`);
      const handed = log.match(/\[::1\]:\d+: handed session/g);
      assert.equal(handed?.length, 2, `both sessions came over IPv6: ${log}`);
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "IPv6, no-root mode: the session listens on ::1 (where ssh arrived) and et dials it there",
  fn: () =>
    withWorld(
      { privateRuntime: true, ipv6: true, daemon: false },
      async (world) => {
        const settings = await serverSettings(world);
        const argv = await clientWithConfig(
          world,
          {
            lines: ["Host ::1", ...settings.map((l) => `  ${l}`)],
          },
          [],
          "[::1]",
        );
        const client = new PipedClient(argv);
        try {
          await shellAnswers(client);
          await client.waitForStderr(/serving this session from port \d+/);
          const port = Number(
            client.stderr.match(/from port (\d+)/)![1],
          );
          // The session's own listener is on ::1, and our client is its peer.
          const ss = new TextDecoder().decode(
            (await new Deno.Command("ss", {
              args: ["-Htn", "state", "established", `( dport = :${port} )`],
            }).output()).stdout,
          );
          assert.match(ss, new RegExp(`\\[::1\\]:${port}`), ss);
        } finally {
          await client.close();
        }
      },
    ),
});
