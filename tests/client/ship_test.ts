/**
 * Ship yourself, the local parts: which platform `uname -sm` names, which
 * binary goes there, and the remote install script run by a real `sh`
 * (a wrong checksum installs nothing; a right one lands mode 0755).
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  binaryFor,
  fileSha256,
  installScript,
  platformOf,
} from "../../src/client/ship.ts";

Deno.test("uname -sm names the release artifact", () => {
  assert.equal(platformOf("Linux x86_64\n").artifact, "linux-x86_64");
  assert.equal(platformOf("Linux aarch64").artifact, "linux-aarch64");
  assert.equal(platformOf("Darwin arm64").artifact, "darwin-aarch64");
  assert.equal(platformOf("Darwin x86_64").artifact, "darwin-x86_64");
  assert.equal(platformOf("FreeBSD amd64").artifact, null);
  assert.equal(platformOf("Linux mips").artifact, null);
  assert.equal(platformOf("Linux armv7l").uname, "Linux armv7l");
});

Deno.test("the binary: --binaries first, else this et only when compiled for that platform", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/et-linux-aarch64`, "#!/bin/sh\n");
    const linuxArm = platformOf("Linux aarch64");
    const linuxX86 = platformOf("Linux x86_64");
    const compiled = {
      standalone: true,
      path: "/opt/et",
      os: "linux",
      arch: "x86_64",
    };
    assert.equal(
      await binaryFor(linuxArm, { binariesDir: dir, self: compiled }),
      `${dir}/et-linux-aarch64`,
    );
    assert.equal(
      await binaryFor(linuxX86, { binariesDir: dir, self: compiled }),
      "/opt/et",
    );
    assert.equal(
      await binaryFor(linuxX86, {
        binariesDir: dir,
        self: { ...compiled, standalone: false },
      }),
      null,
      "deno itself is never shipped",
    );
    assert.equal(
      await binaryFor(platformOf("Darwin arm64"), { self: compiled }),
      null,
    );
    assert.equal(
      await binaryFor(platformOf("SunOS sparc"), { self: compiled }),
      null,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs the install script in `sh` with HOME `home` and `data` on stdin. */
async function install(home: string, sha256: string, data: Uint8Array) {
  const child = new Deno.Command("sh", {
    args: ["-c", installScript(sha256)],
    env: { HOME: home },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(data);
  await writer.close();
  const output = await child.output();
  return {
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
  };
}

Deno.test("the remote install script: checked before the move, nothing left on a mismatch", async () => {
  const home = await Deno.makeTempDir();
  try {
    const data = new TextEncoder().encode("#!/bin/sh\necho stand-in\n");
    const right = createHash("sha256").update(data).digest("hex");
    const wrong = right.replace(/^./, (c) => c === "0" ? "1" : "0");

    let result = await install(home, wrong, data);
    assert.equal(result.code, 3);
    assert.equal(result.stdout.trim(), `ET_INSTALL_MISMATCH ${right}`);
    assert.deepEqual([...Deno.readDirSync(`${home}/.local/bin`)], []);

    result = await install(home, right, data);
    assert.equal(result.code, 0, result.stdout);
    assert.equal(result.stdout.trim(), "ET_INSTALLED");
    const path = `${home}/.local/bin/et`;
    assert.equal(await fileSha256(path), right);
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o755);
    assert.deepEqual(
      [...Deno.readDirSync(`${home}/.local/bin`)].map((e) => e.name),
      ["et"],
    );

    // A bad copy over a good one leaves the good one in place.
    result = await install(home, right, new TextEncoder().encode("short"));
    assert.equal(result.code, 3);
    assert.equal(await fileSha256(path), right);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
