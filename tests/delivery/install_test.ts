/**
 * scripts/install.sh for real, against a stand-in release served on
 * 127.0.0.1: it installs a binary that runs, verifies the checksum before
 * touching anything, installs atomically and idempotently, uninstalls
 * exactly what it installed, works piped into sh, and does nothing when the
 * download is cut short. The service path runs in a private mount
 * namespace with a fake systemctl when this machine allows it.
 */

import assert from "node:assert/strict";
import {
  hostArtifact,
  INSTALL_SH,
  ROOT,
  runInstaller,
  serveRelease,
  sha256sums,
  standInBinary,
  tree,
  VERSION_LINE,
  writeScript,
} from "./_release.ts";

const NAME = hostArtifact();

async function withRelease(
  fn: (
    release: ReturnType<typeof serveRelease>,
    dir: string,
  ) => Promise<void>,
  files?: Record<string, Uint8Array | string>,
) {
  const binary = standInBinary();
  const release = serveRelease(
    files ?? { [NAME]: binary, SHA256SUMS: sha256sums({ [NAME]: binary }) },
  );
  const dir = await Deno.makeTempDir({ prefix: "et-install-test-" });
  try {
    await fn(release, dir);
  } finally {
    await release.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function versionOf(binary: string): Promise<string> {
  const output = await new Deno.Command(binary, {
    args: ["--version"],
    stdout: "piped",
  }).output();
  assert.equal(output.code, 0);
  return new TextDecoder().decode(output.stdout).trim();
}

Deno.test("install: the binary runs, a second install is fine, uninstall removes exactly what was installed", async () => {
  await withRelease(async (release, dir) => {
    const prefix = `${dir}/prefix`;
    // Something of the user's already in the prefix: it must survive.
    await Deno.mkdir(`${prefix}/bin`, { recursive: true });
    await Deno.writeTextFile(`${prefix}/bin/other-tool`, "mine\n");
    const before = await tree(prefix);

    const first = await runInstaller(["--prefix", prefix, "--no-service"], {
      base: release.base,
    });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(await versionOf(`${prefix}/bin/et`), VERSION_LINE);
    assert.deepEqual(release.requests, [NAME, "SHA256SUMS"]);
    const installed = await tree(prefix);
    assert.deepEqual(installed, [
      "bin/",
      "bin/et",
      "bin/other-tool",
      "share/",
      "share/et/",
      "share/et/install-manifest",
    ]);
    assert.equal((await Deno.stat(`${prefix}/bin/et`)).mode! & 0o777, 0o755);
    const manifest = await Deno.readTextFile(
      `${prefix}/share/et/install-manifest`,
    );
    assert.deepEqual(
      manifest.split("\n").filter((l) => l && !l.startsWith("#")).sort(),
      [`${prefix}/bin/et`, `${prefix}/share/`, `${prefix}/share/et/`],
    );

    // Again, over a newer binary: same files, the new binary in place,
    // the manifest still naming the directories the first run made.
    const newer = standInBinary("newer");
    release.files.set(NAME, newer);
    release.files.set(
      "SHA256SUMS",
      new TextEncoder().encode(sha256sums({ [NAME]: newer })),
    );
    const second = await runInstaller(["--prefix", prefix, "--no-service"], {
      base: release.base,
    });
    assert.equal(second.code, 0, second.stderr);
    assert.deepEqual(await tree(prefix), installed);
    assert.match(await Deno.readTextFile(`${prefix}/bin/et`), /# newer/);
    assert.equal(
      await Deno.readTextFile(`${prefix}/share/et/install-manifest`),
      manifest,
    );

    const removed = await runInstaller([
      "--prefix",
      prefix,
      "--uninstall",
    ]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual(await tree(prefix), before);
    // Uninstalling again: nothing to do, still fine.
    const again = await runInstaller(["--prefix", prefix, "--uninstall"]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await tree(prefix), before);
  });
});

Deno.test("install: a wrong checksum aborts with one line and installs nothing", async () => {
  const binary = standInBinary();
  const other = standInBinary("tampered");
  await withRelease(async (release, dir) => {
    const prefix = `${dir}/prefix`;
    const run = await runInstaller(["--prefix", prefix, "--no-service"], {
      base: release.base,
    });
    assert.notEqual(run.code, 0);
    assert.equal(run.lines.filter((l) => !/downloading/.test(l)).length, 1);
    assert.match(
      run.lines.at(-1)!,
      new RegExp(
        `^et install: checksum mismatch for ${NAME} \\(expected [0-9a-f]{64}, got [0-9a-f]{64}\\): nothing installed$`,
      ),
    );
    assert.deepEqual(await tree(dir), [], "nothing created");
  }, { [NAME]: binary, SHA256SUMS: sha256sums({ [NAME]: other }) });
});

Deno.test("install: a missing artifact or SHA256SUMS line is one clear line, nothing installed", async () => {
  const binary = standInBinary();
  await withRelease(async (release, dir) => {
    const prefix = `${dir}/prefix`;
    const run = await runInstaller(["--prefix", prefix, "--no-service"], {
      base: release.base,
    });
    assert.equal(run.code, 1);
    assert.match(
      run.lines.at(-1)!,
      new RegExp(`^et install: SHA256SUMS has no line for ${NAME}`),
    );
    assert.deepEqual(await tree(dir), []);

    const missing = await runInstaller(["--prefix", prefix, "--no-service"], {
      base: `${release.base}/nowhere`,
    });
    assert.equal(missing.code, 1);
    assert.match(
      missing.lines.at(-1)!,
      new RegExp(
        `^et install: cannot download ${release.base}/nowhere/${NAME}: .*404`,
      ),
    );
    assert.deepEqual(await tree(dir), []);
  }, { [NAME]: binary, SHA256SUMS: sha256sums({ "et-other-os": binary }) });
});

Deno.test("install: a binary that does not run here (wrong CPU, noexec) is not installed", async () => {
  const broken = new TextEncoder().encode("#!/bin/sh\nexit 126\n");
  await withRelease(async (release, dir) => {
    const prefix = `${dir}/prefix`;
    const run = await runInstaller(["--prefix", prefix, "--no-service"], {
      base: release.base,
    });
    assert.equal(run.code, 1);
    assert.equal(
      run.lines.at(-1),
      `et install: the downloaded ${NAME} does not run here (no answer to --version): nothing installed`,
    );
    assert.deepEqual(await tree(dir), [], "nothing left behind");
  }, { [NAME]: broken, SHA256SUMS: sha256sums({ [NAME]: broken }) });
});

Deno.test("install: piped into sh from stdin, as curl | sh does", async () => {
  await withRelease(async (release, dir) => {
    const prefix = `${dir}/prefix`;
    const script = await Deno.readTextFile(INSTALL_SH);
    const run = await runInstaller(["--prefix", prefix, "--no-service"], {
      base: release.base,
      stdin: script,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(await versionOf(`${prefix}/bin/et`), VERSION_LINE);
  });
});

Deno.test("install: a script cut short anywhere (half, any line, any prefix of the last line) does nothing", async () => {
  await withRelease(async (release, dir) => {
    const prefix = `${dir}/prefix`;
    const script = await Deno.readTextFile(INSTALL_SH);
    const cuts = new Set<number>([Math.floor(script.length / 2)]);
    for (let at = 0; at < script.length; at++) {
      if (script[at] === "\n") cuts.add(at + 1);
    }
    const lastLine = script.lastIndexOf("\n", script.length - 2) + 1;
    for (let at = lastLine; at < script.length; at++) cuts.add(at);
    // Only cuts that lose something: the whole script minus its final
    // newline is whole.
    const whole = script.trimEnd().length;
    for (const cut of cuts) {
      if (script.slice(0, cut).trimEnd().length >= whole) cuts.delete(cut);
    }
    for (const cut of cuts) {
      const run = await runInstaller(["--prefix", prefix, "--no-service"], {
        base: release.base,
        stdin: script.slice(0, cut),
      });
      assert.deepEqual(
        await tree(dir),
        [],
        `cut at ${cut}/${script.length} created files: ${run.stderr}`,
      );
      assert.deepEqual(release.requests, [], `cut at ${cut} downloaded`);
      assert.equal(run.lines.length, 0, `cut at ${cut} said ${run.stderr}`);
    }
    console.log(`${cuts.size} cuts, none did anything`);
  });
});

Deno.test("install: OS and CPU names map to the release's; others get one line", async () => {
  const binary = standInBinary("arm");
  await withRelease(async (release, dir) => {
    const fake = `${dir}/fake-bin`;
    await Deno.mkdir(fake);
    const fakeUname = (s: string, m: string) =>
      writeScript(
        `${fake}/uname`,
        `case "$1" in -s) echo ${s} ;; -m) echo ${m} ;; *) echo ${s} ;; esac\n`,
      );
    await fakeUname("Linux", "arm64");
    const prefix = `${dir}/prefix`;
    let run = await runInstaller(["--prefix", prefix, "--no-service"], {
      base: release.base,
      pathFirst: fake,
    });
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(release.requests, ["et-linux-aarch64", "SHA256SUMS"]);

    await fakeUname("Linux", "riscv64");
    run = await runInstaller(["--prefix", `${dir}/p2`, "--no-service"], {
      base: release.base,
      pathFirst: fake,
    });
    assert.equal(run.code, 1);
    assert.deepEqual(run.lines, [
      "et install: unsupported CPU 'riscv64': et is built for x86_64 and aarch64",
    ]);
    await fakeUname("FreeBSD", "amd64");
    run = await runInstaller(["--prefix", `${dir}/p2`, "--no-service"], {
      base: release.base,
      pathFirst: fake,
    });
    assert.equal(run.code, 1);
    assert.deepEqual(run.lines, [
      "et install: unsupported OS 'FreeBSD': et is built for Linux and macOS",
    ]);
    await Deno.stat(`${dir}/p2`).then(
      () => assert.fail("p2 created"),
      () => {},
    );
  }, {
    "et-linux-aarch64": binary,
    SHA256SUMS: sha256sums({ "et-linux-aarch64": binary }),
  });
});

Deno.test("install: --help answers, an unknown option is a usage error", async () => {
  const help = await runInstaller(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--prefix DIR/);
  assert.match(help.stdout, /--uninstall/);
  assert.match(help.stdout, /--no-service/);
  const bad = await runInstaller(["--frobnicate"]);
  assert.equal(bad.code, 2);
  assert.deepEqual(bad.lines, [
    "et install: unknown option '--frobnicate' (see --help)",
  ]);
});

Deno.test("install: the unit the script writes is packaging/et-server.service", async () => {
  const script = await Deno.readTextFile(INSTALL_SH);
  const match = script.match(
    /\nservice_unit\(\) \{\n\tcat <<'EOF'\n([^]*?)\nEOF\n\}/,
  );
  assert.ok(match, "service_unit's here-document");
  assert.equal(
    match[1] + "\n",
    await Deno.readTextFile(`${ROOT}/packaging/et-server.service`),
  );
});

/** Can this process make a private mount namespace (root, util-linux)? */
async function canUnshare(): Promise<boolean> {
  if (Deno.uid() !== 0) return false;
  try {
    const output = await new Deno.Command("unshare", {
      args: ["-m", "true"],
      stderr: "null",
    }).output();
    return output.success;
  } catch {
    return false;
  }
}

const unshareWorks = await canUnshare();
if (!unshareWorks) {
  console.log(
    "install_test: skipping the systemd service test: it needs root and unshare -m (a private mount namespace)",
  );
}

Deno.test({
  name:
    "install as root on systemd: the unit is installed, enabled, started; uninstall disables and removes it",
  ignore: !unshareWorks,
  async fn() {
    await withRelease(async (release, dir) => {
      // A newer release under /v2: installing it restarts the service.
      const newer = standInBinary("newer");
      release.files.set(`v2/${NAME}`, newer);
      release.files.set(
        "v2/SHA256SUMS",
        new TextEncoder().encode(sha256sums({ [NAME]: newer })),
      );
      const prefix = `${dir}/prefix`;
      const fake = `${dir}/fake-bin`;
      const log = `${dir}/systemctl.log`;
      await Deno.mkdir(fake);
      await writeScript(`${fake}/systemctl`, `echo "$*" >> '${log}'\n`);
      // In a private mount namespace: a fresh /etc/systemd/system, and a
      // /run/systemd/system that says "systemd runs here".
      const driver = `${dir}/driver.sh`;
      await writeScript(
        driver,
        `set -e
mount -t tmpfs tmpfs /etc/systemd/system
mount -t tmpfs tmpfs /run/systemd
mkdir /run/systemd/system
step() { echo "== $1" >> '${log}'; shift; sh '${INSTALL_SH}' "$@"; }
step install --prefix '${prefix}'
cp /etc/systemd/system/et-server.service '${dir}/unit'
step again --prefix '${prefix}'
ET_DOWNLOAD_BASE='${release.base}/v2' step newer --prefix '${prefix}'
step uninstall --prefix '${prefix}' --uninstall
ls -A /etc/systemd/system > '${dir}/left'
`,
      );
      const run = await runInstaller([], {
        base: release.base,
        pathFirst: fake,
        wrapper: ["unshare", "-m", "sh", driver],
      });
      assert.equal(run.code, 0, run.stderr);
      const unit = await Deno.readTextFile(`${dir}/unit`);
      assert.match(unit, new RegExp(`\nExecStart=${prefix}/bin/et server\n`));
      assert.equal(
        unit.replace(
          `ExecStart=${prefix}/bin/et `,
          "ExecStart=/usr/local/bin/et ",
        ),
        await Deno.readTextFile(`${ROOT}/packaging/et-server.service`),
      );
      assert.equal(
        await Deno.readTextFile(log),
        [
          "== install",
          "daemon-reload",
          "enable --now et-server",
          "== again",
          "daemon-reload",
          "enable --now et-server",
          "== newer",
          "daemon-reload",
          "enable --now et-server",
          "try-restart et-server",
          "== uninstall",
          "disable --now et-server",
          "daemon-reload",
          "",
        ].join("\n"),
      );
      assert.equal(await Deno.readTextFile(`${dir}/left`), "");
      assert.deepEqual(await tree(prefix), [], "prefix emptied");
    });
  },
});

Deno.test("install: works with wget and shasum when curl and sha256sum are absent", async () => {
  await withRelease(async (release, dir) => {
    // A PATH holding only the tools the script may use, minus curl and
    // sha256sum.
    const bin = `${dir}/bin`;
    await Deno.mkdir(bin);
    const tools = [
      "sh",
      "uname",
      "id",
      "mktemp",
      "wget",
      "shasum",
      "cut",
      "awk",
      "tr",
      "mkdir",
      "dirname",
      "cp",
      "chmod",
      "head",
      "cmp",
      "mv",
      "rm",
      "cat",
      "grep",
      "sort",
      "rmdir",
      "sed",
      "perl",
    ];
    for (const tool of tools) {
      const which = await new Deno.Command("sh", {
        args: ["-c", `command -v ${tool}`],
        stdout: "piped",
      }).output();
      const path = new TextDecoder().decode(which.stdout).trim();
      if (!path.startsWith("/")) {
        console.log(`skipped: no ${tool} on this machine`);
        return;
      }
      await Deno.symlink(path, `${bin}/${tool}`);
    }
    const prefix = `${dir}/prefix`;
    const output = await new Deno.Command(`${bin}/sh`, {
      args: [INSTALL_SH, "--prefix", prefix, "--no-service"],
      env: { PATH: bin, ET_DOWNLOAD_BASE: release.base },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    assert.equal(await versionOf(`${prefix}/bin/et`), VERSION_LINE);
  });
});
