/**
 * packaging/et-server.service: it parses (sections, keys, no key twice in
 * a section, ExecStart absolute), keeps the settings the daemon depends on,
 * and passes `systemd-analyze verify` where that is installed.
 */

import assert from "node:assert/strict";
import { ROOT } from "./_release.ts";

const UNIT_PATH = `${ROOT}/packaging/et-server.service`;

/** A unit file's sections: name → key → value (comments dropped). */
function parseUnit(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    const where = `line ${index + 1}: ${raw}`;
    if (line === "" || line.startsWith("#") || line.startsWith(";")) return;
    assert.ok(!raw.endsWith("\\"), `no continuation lines (${where})`);
    const section = line.match(/^\[([A-Za-z]+)\]$/);
    if (section) {
      assert.ok(!sections.has(section[1]), `section twice (${where})`);
      current = new Map();
      sections.set(section[1], current);
      return;
    }
    const entry = line.match(/^([A-Za-z][A-Za-z0-9]*)=(.*)$/);
    assert.ok(entry, `not key=value (${where})`);
    assert.ok(current, `key outside a section (${where})`);
    assert.ok(!current.has(entry[1]), `key twice in its section (${where})`);
    current.set(entry[1], entry[2]);
  });
  return sections;
}

Deno.test("et-server.service parses: sections, keys once each, the settings et needs", async () => {
  const text = await Deno.readTextFile(UNIT_PATH);
  const unit = parseUnit(text);
  assert.deepEqual([...unit.keys()], ["Unit", "Service", "Install"]);
  const service = unit.get("Service")!;
  const execStart = service.get("ExecStart")!;
  assert.equal(execStart, "/usr/local/bin/et server");
  assert.ok(execStart.startsWith("/"), "ExecStart is absolute");
  const expected: Record<string, string> = {
    Restart: "on-failure",
    NoNewPrivileges: "yes",
    ProtectSystem: "strict",
    // The router socket's directory: /run/et/router.sock is et's default.
    RuntimeDirectory: "et",
    // No privilege: the daemon never opens a user's file or socket.
    DynamicUser: "yes",
    CapabilityBoundingSet: "",
    ProtectHome: "yes",
    PrivateTmp: "yes",
  };
  for (const [key, value] of Object.entries(expected)) {
    assert.equal(service.get(key), value, key);
  }
  assert.ok(!service.has("MemoryDenyWriteExecute"), "V8's JIT needs W+X");
  assert.equal(unit.get("Install")!.get("WantedBy"), "multi-user.target");
  // The why of running without privilege is written down beside it.
  assert.match(text, /needs no privilege[^]*DynamicUser=yes/);
});

Deno.test("et-server.service passes systemd-analyze verify", async (t) => {
  let verify: Deno.CommandOutput;
  const dir = await Deno.makeTempDir({ prefix: "et-unit-" });
  try {
    // verify checks that ExecStart's program exists: point it at one that
    // does; the unit keeps its name (the type comes from it).
    const text = (await Deno.readTextFile(UNIT_PATH)).replace(
      /^ExecStart=\/usr\/local\/bin\/et /m,
      "ExecStart=/bin/sh ",
    );
    await Deno.writeTextFile(`${dir}/et-server.service`, text);
    try {
      verify = await new Deno.Command("systemd-analyze", {
        args: ["verify", `${dir}/et-server.service`],
        stdout: "piped",
        stderr: "piped",
      }).output();
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
      console.log("systemd-analyze is not installed: verify skipped");
      await t.step({ name: "systemd-analyze verify", ignore: true, fn() {} });
      return;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const said = new TextDecoder().decode(verify.stderr) +
    new TextDecoder().decode(verify.stdout);
  assert.equal(verify.code, 0, said);
  // verify only warns about unknown keys and bad values: none allowed.
  assert.equal(said.trim(), "", said);
});
