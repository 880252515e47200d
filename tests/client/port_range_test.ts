/** `--port-range A-B`: ranges and single ports; anything else in one line. */

import assert from "node:assert/strict";
import { parsePortRange } from "../../src/client/port_range.ts";

Deno.test("parsePortRange: A-B and a single port; garbage refused in one line", () => {
  assert.deepEqual(parsePortRange("2022-2122"), { first: 2022, last: 2122 });
  assert.deepEqual(parsePortRange("60001"), { first: 60001, last: 60001 });
  assert.deepEqual(parsePortRange("1-65535"), { first: 1, last: 65535 });
  for (
    const bad of [
      "",
      "0-10",
      "10-5",
      "1-65536",
      "a-b",
      "1-2-3",
      "-5",
      "2022:2122",
    ]
  ) {
    assert.throws(
      () => parsePortRange(bad),
      /^Error: invalid --port-range '.*' \(expected A-B, ports 1-65535, A <= B\)$/,
      bad,
    );
  }
});
