/**
 * A role started from source (`deno run`) keeps Deno's cache where Deno
 * would, unless that cannot be written (a read-only home): then in the
 * user's runtime directory, so each host start is not a full transpile
 * and npm fetch. /proc/self stands for the read-only home: not even root
 * can make a directory there.
 */

import assert from "node:assert/strict";
import { denoCacheDir, fallbackDenoDir } from "../../src/terminal/local_io.ts";

Deno.test("deno dir: Deno's own order, DENO_DIR, XDG_CACHE_HOME, HOME", () => {
  assert.equal(
    denoCacheDir({ DENO_DIR: "/a", XDG_CACHE_HOME: "/b", HOME: "/c" }),
    "/a",
  );
  assert.equal(denoCacheDir({ XDG_CACHE_HOME: "/b", HOME: "/c" }), "/b/deno");
  assert.equal(denoCacheDir({ HOME: "/c" }), "/c/.cache/deno");
  assert.equal(denoCacheDir({}), undefined);
});

Deno.test("deno dir: a writable cache is kept, an unwritable one replaced", async () => {
  const home = await Deno.makeTempDir({ prefix: "et-deno-dir-" });
  try {
    // Writable (made if missing): Deno's choice stands, no probe left.
    assert.equal(fallbackDenoDir({ HOME: home }, "/run/x"), null);
    assert.deepEqual(
      [...Deno.readDirSync(`${home}/.cache/deno`)].map((e) => e.name),
      [],
    );
    // Unwritable, by HOME or by DENO_DIR, or none at all: the runtime dir.
    assert.equal(
      fallbackDenoDir({ HOME: "/proc/self" }, "/run/x"),
      "/run/x/deno",
    );
    assert.equal(
      fallbackDenoDir({ HOME: home, DENO_DIR: "/proc/self/deno" }, "/run/x"),
      "/run/x/deno",
    );
    assert.equal(fallbackDenoDir({}, "/run/x"), "/run/x/deno");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
