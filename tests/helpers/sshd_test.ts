import assert from "node:assert/strict";
import { startSshd } from "./sshd.ts";

async function ssh(configPath: string, ...args: string[]) {
  const out = await new Deno.Command("ssh", {
    args: ["-F", configPath, ...args],
    stdin: "null",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return {
    code: out.code,
    stdout: decode(out.stdout),
    stderr: decode(out.stderr),
  };
}

Deno.test("ssh -F <config> et-test runs a command", async () => {
  const sshd = await startSshd();
  try {
    assert.equal(sshd.hostAlias, "et-test");
    assert.equal(sshd.sshCommand, `ssh -F ${sshd.configPath}`);
    const hi = await ssh(sshd.configPath, "et-test", "echo", "hi");
    assert.equal(hi.code, 0, hi.stderr);
    assert.equal(hi.stdout, "hi\n");
    // The session runs as the current user, with our PATH (deno findable).
    const who = await ssh(
      sshd.configPath,
      "et-test",
      "id -un; command -v deno",
    );
    assert.equal(who.code, 0, who.stderr);
    const [user, deno] = who.stdout.trim().split("\n");
    assert.equal(user, sshd.user);
    assert.ok(deno?.endsWith("deno"), who.stdout);
    assert.match(sshd.log(), /Accepted publickey/);
    // Traversable (other test users' logins read the authorized keys), not
    // listable; the private keys inside stay private.
    assert.equal((await Deno.stat(sshd.dir)).mode! & 0o777, 0o711);
    assert.equal(
      (await Deno.stat(`${sshd.dir}/id_ed25519`)).mode! & 0o077,
      0,
    );
  } finally {
    await sshd.stop();
  }
  await assert.rejects(Deno.stat(sshd.dir), Deno.errors.NotFound);
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port: sshd.port }),
    Deno.errors.ConnectionRefused,
  );
});

Deno.test("ssh -G with the config resolves et-test to 127.0.0.1 and the port", async () => {
  const sshd = await startSshd();
  try {
    const g = await ssh(sshd.configPath, "-G", "et-test");
    assert.equal(g.code, 0, g.stderr);
    const settings = new Map(
      g.stdout.trim().split("\n").map((line) => {
        const space = line.indexOf(" ");
        return [line.slice(0, space), line.slice(space + 1)] as const;
      }),
    );
    assert.equal(settings.get("hostname"), "127.0.0.1");
    assert.equal(settings.get("port"), String(sshd.port));
    assert.equal(settings.get("user"), sshd.user);
    assert.equal(settings.get("batchmode"), "yes");
    assert.equal(settings.get("controlmaster"), "false");
  } finally {
    await sshd.stop();
  }
});

Deno.test("two private sshds run side by side", async () => {
  const [a, b] = await Promise.all([startSshd(), startSshd()]);
  try {
    assert.notEqual(a.port, b.port);
    assert.notEqual(a.dir, b.dir);
    const [fromA, fromB] = await Promise.all([
      ssh(a.configPath, "et-test", "echo", "a"),
      ssh(b.configPath, "et-test", "echo", "b"),
    ]);
    assert.equal(fromA.stdout, "a\n", fromA.stderr);
    assert.equal(fromB.stdout, "b\n", fromB.stderr);
    // Each client config trusts only its own server's user key.
    const crossed = await ssh(
      a.configPath,
      "-o",
      `Port=${b.port}`,
      "et-test",
      "true",
    );
    assert.equal(crossed.code, 255);
  } finally {
    await Promise.all([a.stop(), b.stop()]);
  }
});

Deno.test("without authorized keys, ssh fails with exit code 255", async () => {
  const sshd = await startSshd({ authorizedKeys: false });
  try {
    const denied = await ssh(sshd.configPath, "et-test", "true");
    assert.equal(denied.code, 255);
    assert.match(denied.stderr, /Permission denied/);
  } finally {
    await sshd.stop();
  }
});

Deno.test("stop() ends sessions still open", async () => {
  const sshd = await startSshd();
  const session = new Deno.Command("ssh", {
    args: ["-F", sshd.configPath, "et-test", "echo ready; exec sleep 60"],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = session.stdout.getReader();
  const { value } = await reader.read();
  assert.equal(new TextDecoder().decode(value), "ready\n");
  const started = performance.now();
  await sshd.stop();
  await sshd.stop(); // idempotent
  // The remote sleep was killed, so the ssh client ends long before 60 s.
  const status = await session.status;
  assert.ok(performance.now() - started < 10_000);
  assert.notEqual(status.code, 0);
  await reader.cancel();
});
