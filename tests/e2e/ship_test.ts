/**
 * "Ship yourself": the remote user's PATH has no et (and its HOME is the
 * test's own, so `~/.local/bin` is empty). The bootstrap finds no et
 * (exit 127); the client asks the remote for `uname -sm`, picks the
 * matching `et-<os>-<arch>` from `--binaries`, copies it to
 * `~/.local/bin/et` over ssh (sha256 checked there), and runs the session
 * from it in no-root mode. Nothing is compiled here, so the binary is a
 * stand-in: a shell script that runs this checkout with deno (in this
 * world's runtime dir, so the world's teardown finds its processes).
 */

import assert from "node:assert/strict";
import { platformOf } from "../../src/client/ship.ts";
import { PtyProcess } from "../helpers/pty_process.ts";
import {
  PipedClient,
  ptyShellAnswers,
  runToEnd,
  sha256,
  shellAnswers,
} from "./_client.ts";
import { E2E_TEST, type EtWorld, ROOT, withWorld } from "./_world.ts";

/** This machine's `uname -sm`, and our artifact name for it. */
async function localPlatform(): Promise<{ uname: string; artifact: string }> {
  const out = await new Deno.Command("uname", { args: ["-sm"] }).output();
  const platform = platformOf(new TextDecoder().decode(out.stdout));
  assert.ok(platform.artifact, `no artifact for ${platform.uname}`);
  return { uname: platform.uname, artifact: platform.artifact };
}

/** Deno's cache of this process: the stand-in must not start cold. */
async function denoDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
}

/** A `--binaries` dir holding the stand-in `et-<artifact>`; its bytes. */
async function standInBinaries(
  world: EtWorld,
  artifact: string,
): Promise<{ dir: string; bytes: Uint8Array }> {
  const dir = `${world.dir}/binaries`;
  await Deno.mkdir(dir);
  const script = "#!/bin/sh\n" +
    `exec env ET_ROUTER_SOCKET=${world.routerPath} ` +
    `ET_RUNTIME_DIR=${world.dir}/run DENO_DIR=${await denoDir()} ` +
    `${Deno.execPath()} run -A ${ROOT}/main.ts "$@"\n`;
  const bytes = new TextEncoder().encode(script);
  await Deno.writeFile(`${dir}/et-${artifact}`, bytes, { mode: 0o755 });
  return { dir, bytes };
}

/** Runs `body` in a world whose ssh sessions have HOME `home` (fresh). */
async function withHomeWorld(
  body: (world: EtWorld, home: string) => Promise<void>,
): Promise<void> {
  const home = await Deno.makeTempDir({ prefix: "et-home-" });
  try {
    await withWorld(
      { privateRuntime: true, daemon: false, sshEnv: { HOME: home } },
      (world) => body(world, home),
    );
  } finally {
    await Deno.remove(home, { recursive: true }).catch(() => {});
  }
}

/** The client of `world` as a user whose remote PATH has no et. */
function clientWithoutEt(world: EtWorld, extra: string[]): string[] {
  return world.client(["--terminal-path", "et", ...extra]);
}

/** Lines of `stderr` that start with "et:". */
function etLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.startsWith("et:"));
}

Deno.test({
  ...E2E_TEST,
  name:
    "et missing on the remote: installed to ~/.local/bin/et (sha256 exact), the session works, a second connection does not reinstall",
  fn: () =>
    withHomeWorld(async (world, home) => {
      const { uname, artifact } = await localPlatform();
      const binaries = await standInBinaries(world, artifact);
      const installed = `${home}/.local/bin/et`;
      // The remote really has no et: ssh finds none on its PATH.
      const which = await runToEnd([
        ...world.sshd.sshCommand.split(" "),
        world.sshd.hostAlias,
        'command -v et || echo "no et; HOME=$HOME"',
      ]);
      assert.equal(which.stdout.trim(), `no et; HOME=${home}`);

      const first = new PipedClient(
        clientWithoutEt(world, [
          "--binaries",
          binaries.dir,
          "--install-remote",
        ]),
      );
      try {
        await shellAnswers(first, 60_000);
        assert.deepEqual(
          etLines(first.stderr).filter((line) => /installed/.test(line)),
          [
            `et: installed et 0.1.0 for ${uname} to ~/.local/bin/et on et-test (sha256 checked there)`,
          ],
        );
        assert.match(first.stderr, /no-root mode/);
        const landed = await Deno.readFile(installed);
        assert.equal(sha256(landed), sha256(binaries.bytes));
        assert.equal((await Deno.stat(installed)).mode! & 0o777, 0o755);
        // No temp file left beside it.
        const names = [...Deno.readDirSync(`${home}/.local/bin`)].map((e) =>
          e.name
        );
        assert.deepEqual(names, ["et"]);
        await first.type("exit 0\n");
        assert.equal(await first.exit(30_000), 0, first.stderr);
      } finally {
        await first.close();
      }

      const before = await Deno.stat(installed);
      const second = new PipedClient(
        [
          ...clientWithoutEt(world, [
            "--binaries",
            binaries.dir,
            "--install-remote",
          ]),
          "echo SECOND-$((40+2))",
        ],
      );
      try {
        assert.equal(await second.exit(60_000), 0, second.stderr);
        assert.equal(second.stdout, "SECOND-42\n");
        assert.doesNotMatch(second.stderr, /installed/);
        const after = await Deno.stat(installed);
        assert.equal(after.ino, before.ino, "not replaced");
        assert.equal(after.mtime?.getTime(), before.mtime?.getTime());
      } finally {
        await second.close();
      }
      // Over ssh the relay runs from ~/.local/bin/et as well.
      const relayed = await runToEnd([
        ...clientWithoutEt(world, ["--over-ssh"]),
        "echo RELAYED-$((6*6))",
      ], 60_000);
      assert.equal(relayed.code, 0, relayed.stderr);
      assert.equal(relayed.stdout, "RELAYED-36\n");
      // --list finds et by its path too, and installs nothing.
      const listed = await runToEnd(clientWithoutEt(world, ["--list"]));
      assert.equal(listed.code, 0, listed.stderr);
      assert.match(listed.stdout, /no et sessions on et-test/);
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "et missing on the remote: no binary for its platform, or no tty and no --install-remote, refuse in one line and install nothing",
  fn: () =>
    withHomeWorld(async (world, home) => {
      const { uname, artifact } = await localPlatform();
      const empty = `${world.dir}/no-binaries`;
      await Deno.mkdir(empty);
      let result = await runToEnd(
        clientWithoutEt(world, ["--binaries", empty, "--install-remote"]),
      );
      assert.equal(result.code, 1, result.stderr);
      assert.deepEqual(etLines(result.stderr), [
        `et: 'et' was not found on et-test, and there is no et binary for ${uname} here to install: pass --binaries DIR holding et-${artifact} (or --terminal-path)`,
      ]);

      const binaries = await standInBinaries(world, artifact);
      result = await runToEnd(
        clientWithoutEt(world, ["--binaries", binaries.dir]),
      );
      assert.equal(result.code, 1, result.stderr);
      assert.deepEqual(etLines(result.stderr), [
        `et: 'et' was not found on et-test: pass --install-remote to install et 0.1.0 for ${uname} to ~/.local/bin/et there`,
      ]);
      assert.doesNotMatch(result.stderr, /^\s+at /m, "no stack trace");
      await assert.rejects(Deno.stat(`${home}/.local`), Deno.errors.NotFound);
    }),
});

Deno.test({
  ...E2E_TEST,
  name:
    "et missing on the remote, on a terminal: the client asks first; 'n' installs nothing, 'y' installs and connects",
  fn: () =>
    withHomeWorld(async (world, home) => {
      const { uname, artifact } = await localPlatform();
      const binaries = await standInBinaries(world, artifact);
      const question =
        `install et 0.1.0 for ${uname} to ~/.local/bin/et on et-test? [y/N] `;
      const argv = clientWithoutEt(world, ["--binaries", binaries.dir]);

      const declined = PtyProcess.spawn(argv);
      try {
        await declined.waitFor(question, { timeoutMs: 30_000 });
        await declined.type("n\r");
        await declined.waitFor("nothing installed", { timeoutMs: 10_000 });
        assert.equal((await declined.wait(10_000)).code, 1);
        await assert.rejects(
          Deno.stat(`${home}/.local/bin/et`),
          Deno.errors.NotFound,
        );
      } finally {
        await declined.close();
      }

      const accepted = PtyProcess.spawn(argv);
      try {
        await accepted.waitFor(question, { timeoutMs: 30_000 });
        await accepted.type("y\r");
        await ptyShellAnswers(accepted, 60_000);
        assert.equal(
          sha256(await Deno.readFile(`${home}/.local/bin/et`)),
          sha256(binaries.bytes),
        );
        await accepted.type("exit 0\r");
        assert.equal((await accepted.wait(30_000)).code, 0);
      } finally {
        await accepted.close();
      }
    }),
});
