/**
 * `et`'s own option parser against node:util's `parseArgs` (strict, with
 * positionals), which it replaces: for every command line made here from
 * the client's and the server's option tables (known and unknown names,
 * letters alone and in groups, inline and separate values, values that
 * look like options, `--`, `-`), both give the same values and
 * positionals, or both refuse with the same message.
 */

import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import {
  ArgsError,
  type OptionTable,
  parseOptions,
} from "../../src/cli/args.ts";
import { CLIENT_OPTIONS, SERVER_OPTIONS } from "../../src/cli/main.ts";

type Outcome =
  | { values: Record<string, unknown>; positionals: string[] }
  | { error: string };

function ours(args: string[], options: OptionTable): Outcome {
  try {
    const { values, positionals } = parseOptions(args, options);
    return { values: { ...values }, positionals };
  } catch (error) {
    assert.ok(error instanceof ArgsError, String(error));
    return { error: error.message };
  }
}

function node(args: string[], options: OptionTable): Outcome {
  try {
    const { values, positionals } = parseArgs({
      args,
      options,
      allowPositionals: true,
      strict: true,
    });
    return { values: { ...values }, positionals };
  } catch (error) {
    return { error: (error as Error).message };
  }
}

/** Words a command line is made of, for `options`. */
function words(options: OptionTable): string[] {
  const out = ["--", "-", "host", "user@host", "5", "a b", "=", "--=x", "---x"];
  for (const [name, spec] of Object.entries(options)) {
    out.push(`--${name}`, `--${name}=`, `--${name}=v`, `--${name}=-v`);
    if (spec.short) {
      out.push(`-${spec.short}`, `-${spec.short}v`, `-${spec.short}-v`);
    }
  }
  out.push("--zzz", "--zzz=1", "-z", "-zv", "--toString", "--__proto__");
  out.push("--constructor=1", "-vv", "-vvx", "-vp", "-vp2022", "-pv", "-xNv");
  out.push("-Nx", "-vk5", "-v-", "-ü", "--prt", "-hv", "-vh");
  return out;
}

/** A small seeded generator, so a failure names a command line to rerun. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state * 1664525 + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

for (
  const [label, table] of [
    ["client", CLIENT_OPTIONS],
    ["server", SERVER_OPTIONS],
    ["terminal", {
      host: { type: "boolean" },
      relay: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    }],
  ] as [string, OptionTable][]
) {
  Deno.test(`args: the ${label} table parses as node:util's parseArgs does`, () => {
    const pool = words(table);
    const next = random(label.length * 7919);
    const lines: string[][] = [[]];
    for (const word of pool) lines.push([word], [word, "value"], [word, "-v"]);
    for (let i = 0; i < 4000; i++) {
      const length = 1 + Math.floor(next() * 5);
      lines.push(
        Array.from({ length }, () => pool[Math.floor(next() * pool.length)]),
      );
    }
    let refused = 0;
    for (const args of lines) {
      const expected = node(args, table);
      assert.deepEqual(ours(args, table), expected, JSON.stringify(args));
      if ("error" in expected) refused++;
    }
    // Both kinds of outcome were compared, many times each.
    assert.ok(refused > 300, `${refused} refusals`);
    assert.ok(lines.length - refused > 300, `${lines.length - refused} parses`);
  });
}

Deno.test("args: values of repeated options keep their order", () => {
  const { values, positionals } = parseOptions(
    ["-vv", "--ssh-option", "A=1", "--ssh-option=B=2", "-t", "1:2", "h", "-v"],
    CLIENT_OPTIONS,
  );
  // As node's: options after a positional are still options.
  assert.deepEqual({ ...values }, {
    verbose: [true, true, true],
    "ssh-option": ["A=1", "B=2"],
    tunnel: ["1:2"],
  });
  assert.deepEqual(positionals, ["h"]);
});
