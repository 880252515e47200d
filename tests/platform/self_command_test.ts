/**
 * How `et` runs itself again (`selfCommand`, for the session process): by
 * `Deno.build.standalone`, not by the executable's name. From source the
 * answer is `deno run -A <main module>` whatever the runtime is called;
 * the compiled binary's side is covered by tests/delivery/compiled_test.ts.
 */

import assert from "node:assert/strict";

const MODULE = new URL("../../src/terminal/local_io.ts", import.meta.url)
  .href;

/** Runs a script printing selfCommand() with `runtime`; its parsed output. */
async function selfCommandUnder(runtime: string): Promise<string[]> {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(
      script,
      `import { selfCommand } from ${JSON.stringify(MODULE)};
console.log(JSON.stringify([Deno.build.standalone, ...selfCommand()]));
`,
    );
    const { code, stdout, stderr } = await new Deno.Command(runtime, {
      args: ["run", "-A", script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const [standalone, ...command] = JSON.parse(
      new TextDecoder().decode(stdout),
    );
    assert.equal(standalone, false);
    assert.equal(command.at(-1), new URL(`file://${script}`).href);
    return command.slice(0, -1);
  } finally {
    await Deno.remove(script);
  }
}

Deno.test("from source: deno run -A <main module>", async () => {
  assert.deepEqual(await selfCommandUnder(Deno.execPath()), [
    Deno.execPath(),
    "run",
    "-A",
  ]);
});

Deno.test("from source with the runtime under another name (it was taken for a compiled binary)", async () => {
  // A hard link keeps the name it was run by in Deno.execPath(); across
  // file systems a copy does.
  const dir = await Deno.makeTempDir({ prefix: "et-self-command-" });
  const renamed = `${dir}/et`;
  try {
    try {
      await Deno.link(Deno.execPath(), renamed);
    } catch {
      await Deno.copyFile(Deno.execPath(), renamed);
    }
    assert.deepEqual(await selfCommandUnder(renamed), [renamed, "run", "-A"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
