/** Command-line units: durations, sizes, escape characters. */
import assert from "node:assert/strict";
import {
  parseDuration,
  parseEscapeChar,
  parseSize,
} from "../../src/cli/units.ts";

Deno.test("durations: units, bare seconds, zero; bad input names itself", () => {
  assert.equal(parseDuration("500ms", "x"), 500);
  assert.equal(parseDuration("30s", "x"), 30_000);
  assert.equal(parseDuration("30", "x"), 30_000);
  assert.equal(parseDuration("1.5m", "x"), 90_000);
  assert.equal(parseDuration("2h", "x"), 7_200_000);
  assert.equal(parseDuration("7d", "x"), 604_800_000);
  assert.equal(parseDuration("0", "x"), 0);
  for (const bad of ["", "-1s", "5x", "s", "1e9d9"]) {
    assert.throws(
      () => parseDuration(bad, "--session-timeout"),
      /--session-timeout/,
    );
  }
});

Deno.test("sizes: binary units", () => {
  assert.equal(parseSize("512K", "x"), 512 * 1024);
  assert.equal(parseSize("64M", "x"), 64 * 1024 ** 2);
  assert.equal(parseSize("1g", "x"), 1024 ** 3);
  assert.equal(parseSize("1GiB", "x"), 1024 ** 3);
  assert.equal(parseSize("100", "x"), 100);
  assert.throws(() => parseSize("lots", "--max-backlog"), /--max-backlog/);
});

Deno.test("escape characters: one character, ^X, none", () => {
  assert.equal(parseEscapeChar("~"), 0x7e);
  assert.equal(parseEscapeChar("^]"), 0x1d);
  assert.equal(parseEscapeChar("^a"), 0x01);
  assert.equal(parseEscapeChar("none"), null);
  assert.throws(() => parseEscapeChar("ab"), /escape character/);
});
