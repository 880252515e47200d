import assert from "node:assert/strict";
import { fileSink } from "../src/log.ts";

Deno.test("fileSink makes a new log file 0600 and tightens an existing one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const fresh = `${dir}/fresh.log`;
    fileSink(fresh)("one line");
    assert.equal((await Deno.stat(fresh)).mode! & 0o777, 0o600);
    const loose = `${dir}/loose.log`;
    await Deno.writeTextFile(loose, "");
    await Deno.chmod(loose, 0o644);
    fileSink(loose)("another");
    assert.equal((await Deno.stat(loose)).mode! & 0o777, 0o600);
    assert.equal(await Deno.readTextFile(loose), "another\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("fileSink leaves a device's mode alone (--log-file /dev/null as root)", () => {
  const before = Deno.statSync("/dev/null").mode! & 0o777;
  try {
    fileSink("/dev/null")("discarded");
    assert.equal(Deno.statSync("/dev/null").mode! & 0o777, before);
  } finally {
    // Never leave the machine with a broken /dev/null, even if this failed.
    if ((Deno.statSync("/dev/null").mode! & 0o777) !== before) {
      Deno.chmodSync("/dev/null", before);
    }
  }
});
