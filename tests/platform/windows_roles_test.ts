/**
 * Which roles refuse to start on which system, through the seam `main`
 * calls with `Deno.build.os` (the system's name is a parameter, so Windows
 * is tested here without faking `Deno.build`).
 */

import assert from "node:assert/strict";
import { roleRefusal } from "../../src/cli/main.ts";

Deno.test("on Windows, et server, et terminal and et relay refuse with one line", () => {
  assert.equal(
    roleRefusal("server", "windows"),
    "et server runs on Linux and macOS; on Windows only the client runs",
  );
  assert.equal(
    roleRefusal("terminal", "windows"),
    "et terminal runs on Linux and macOS; on Windows only the client runs",
  );
  assert.equal(
    roleRefusal("relay", "windows"),
    "et relay runs on Linux and macOS; on Windows only the client runs",
  );
});

Deno.test("the client runs everywhere; every role runs on Linux and macOS", () => {
  for (const client of [undefined, "user@host", "--list", "-x", "servers"]) {
    assert.equal(roleRefusal(client, "windows"), null, String(client));
  }
  for (const os of ["linux", "darwin"] as const) {
    for (const role of ["server", "terminal", "relay", "host", undefined]) {
      assert.equal(roleRefusal(role, os), null, `${role} on ${os}`);
    }
  }
});
