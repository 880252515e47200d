/**
 * Session sharing (src/client/session_share.ts): a second `et` to the same
 * place starts its session over the running client's connection, with no
 * new ssh login (sshd's own log counts the logins), and its bytes arrive
 * exactly; `--no-reuse`, a dead sharing client and a different place all
 * log in with ssh as before.
 */

import assert from "node:assert/strict";
import { E2E_TEST, type EtWorld } from "./_world.ts";
import {
  PipedClient,
  sha256,
  waitUntil,
  withProxiedSession,
  withSession,
} from "./_client.ts";
import { shareSocketPath } from "../../src/client/session_share.ts";

/** sshd's count of accepted logins so far. */
function logins(world: EtWorld): number {
  return world.sshd.log().match(/Accepted publickey for /g)?.length ?? 0;
}

async function clientLog(world: EtWorld): Promise<string> {
  return await Deno.readTextFile(`${world.dir}/client.log`).catch(() => "");
}

/** A data file of text lines, and its sha256. */
async function dataFile(dir: string): Promise<{ path: string; hash: string }> {
  const lines: string[] = [];
  for (let i = 0; i < 20_000; i++) {
    lines.push(`line ${i} ${"x".repeat(i % 97)}`);
  }
  const bytes = new TextEncoder().encode(lines.join("\n") + "\n");
  const path = `${dir}/share-data.txt`;
  await Deno.writeFile(path, bytes);
  return { path, hash: sha256(bytes) };
}

/** Runs `et host cat <file>` (no pty) and returns its exit code and stdout hash. */
async function catThroughEt(
  world: EtWorld,
  file: string,
  extra: string[] = [],
  port?: number,
): Promise<{ code: number; hash: string; stderr: string }> {
  const client = startCat(world, file, extra, port);
  const code = await client.exit(60_000);
  return { code, hash: sha256(client.bytes()), stderr: client.stderr };
}

/** Starts `et host cat <file>` (no pty), every stdout byte kept. */
function startCat(
  world: EtWorld,
  file: string,
  extra: string[] = [],
  port?: number,
): PipedClient {
  return new PipedClient(
    [...world.client(extra, port ? { port } : {}), `cat ${file}`],
    true,
  );
}

/** Waits until the running client says it shares its connection. */
async function sharing(world: EtWorld): Promise<void> {
  await waitUntil(
    async () => (await clientLog(world)).includes("sharing this connection"),
    20_000,
    "the first client to share its connection",
  );
}

/**
 * Runs `cat` of a fresh data file in a second et, checks its exit and
 * bytes, and returns how many ssh logins it took.
 */
async function secondCatLogins(
  world: EtWorld,
  extra: string[] = [],
): Promise<number> {
  const data = await dataFile(world.dir);
  const before = logins(world);
  const second = await catThroughEt(world, data.path, extra);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.hash, data.hash);
  return logins(world) - before;
}

Deno.test(
  "a second et to the same host starts over the running client's connection: no ssh login, same bytes",
  E2E_TEST,
  async () => {
    await withSession({}, async ({ world, client }) => {
      await sharing(world);
      assert.equal(await secondCatLogins(world), 0, "no new ssh login");
      assert.ok(
        (await clientLog(world)).includes(
          "new session through a running client's connection",
        ),
      );
      // The first session is untouched by it.
      await client.type("echo FIRST_$((40+2))\n");
      await client.waitFor("FIRST_42");
    });
  },
);

Deno.test(
  "a second et with a command longer than 4 KiB is still shared: no ssh login, same bytes",
  E2E_TEST,
  async () => {
    await withSession({}, async ({ world }) => {
      await sharing(world);
      const data = await dataFile(world.dir);
      const before = logins(world);
      // Its session-new control line is ~6 KiB (it was dropped over 4 KiB:
      // the sharing client refused it, and ssh logged in after all).
      const long = `cat ${data.path} # ${"x".repeat(6000)}`;
      const second = new PipedClient([...world.client(), long], true);
      try {
        assert.equal(await second.exit(60_000), 0, second.stderr);
        assert.equal(sha256(second.bytes()), data.hash);
      } finally {
        await second.close();
      }
      assert.equal(logins(world) - before, 0, "no new ssh login");
    });
  },
);

Deno.test(
  "--no-reuse logs in with ssh even with a client running",
  E2E_TEST,
  async () => {
    await withSession({}, async ({ world }) => {
      await sharing(world);
      assert.equal(
        await secondCatLogins(world, ["--no-reuse"]),
        1,
        "one new ssh login",
      );
    });
  },
);

Deno.test(
  "a dead sharing client leaves a stale socket: the next et logs in with ssh",
  E2E_TEST,
  async () => {
    await withSession({}, async ({ world, client }) => {
      await sharing(world);
      client.kill(); // SIGKILL: its socket file stays behind
      await client.exit().catch(() => {});
      assert.equal(
        await secondCatLogins(world),
        1,
        "fell back to an ssh login",
      );
    });
  },
);

Deno.test(
  "a running client whose connection is down refuses at once: the next et logs in with ssh and gets its bytes once the path is back",
  E2E_TEST,
  async () => {
    await withProxiedSession({}, async ({ world, proxy }) => {
      await sharing(world);
      proxy.setRefuse(true);
      proxy.cut();
      await waitUntil(
        async () => (await clientLog(world)).includes("disconnected:"),
        20_000,
        "the first client to notice the cut",
      );
      const data = await dataFile(world.dir);
      const before = logins(world);
      // Same destination (the proxy's port): the same share socket.
      const second = startCat(world, data.path, [], proxy.port);
      try {
        await waitUntil(
          async () => (await clientLog(world)).includes("not connected now"),
          20_000,
          "the sharing client to refuse",
        );
        await waitUntil(
          () => logins(world) === before + 1,
          20_000,
          "the second client's ssh login",
        );
        proxy.setRefuse(false);
        assert.equal(await second.exit(60_000), 0, second.stderr);
        assert.equal(sha256(second.bytes()), data.hash);
      } finally {
        await second.close();
      }
    });
  },
);

Deno.test(
  "a shared session whose path refuses from before its first handshake gets its bytes once the path is back, still without an ssh login",
  E2E_TEST,
  async () => {
    await withProxiedSession({}, async ({ world, proxy }) => {
      await sharing(world);
      const data = await dataFile(world.dir);
      const before = logins(world);
      // New connections refused; the sharing client's own stays up, so
      // the session is started through it and only its dials fail.
      proxy.setRefuse(true);
      const second = startCat(world, data.path, [], proxy.port);
      try {
        await waitUntil(
          async () =>
            (await clientLog(world)).includes(
              "new session through a running client's connection",
            ),
          20_000,
          "the session started through the running client",
        );
        await waitUntil(
          () => proxy.stats.refused >= 2,
          20_000,
          "the new session's dials refused",
        );
        proxy.setRefuse(false);
        assert.equal(await second.exit(60_000), 0, second.stderr);
        assert.equal(sha256(second.bytes()), data.hash);
        assert.equal(logins(world), before, "no new ssh login");
      } finally {
        proxy.setRefuse(false);
        await second.close();
      }
    });
  },
);

Deno.test(
  "another et port to the same host is another place: it logs in with ssh",
  E2E_TEST,
  async () => {
    // The first client dials the daemon through the proxy's port; the
    // second names the daemon's own port: same host, another et port.
    await withProxiedSession({}, async ({ world }) => {
      await sharing(world);
      assert.equal(await secondCatLogins(world), 1, "its own ssh login");
    });
  },
);

Deno.test("another user, host or port never shares a socket", async () => {
  const place = (target: string, port: number) => [
    ["ssh", "-F", "/c"],
    target,
    port,
    null,
    "et",
  ];
  const base = await shareSocketPath("/d", place("alice@h", 2022));
  assert.equal(await shareSocketPath("/d", place("alice@h", 2022)), base);
  assert.notEqual(await shareSocketPath("/d", place("bob@h", 2022)), base);
  assert.notEqual(await shareSocketPath("/d", place("alice@g", 2022)), base);
  assert.notEqual(await shareSocketPath("/d", place("alice@h", 2023)), base);
});
