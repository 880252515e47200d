import assert from "node:assert/strict";

const MODULE = new URL("../../src/session/runtime_dir.ts", import.meta.url)
  .href;

/** privateRuntimeDir() in a child with exactly `env` (plus PATH/HOME). */
async function runtimeDirWith(env: Record<string, string>): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { privateRuntimeDir } from "${MODULE}"; console.log(await privateRuntimeDir());`,
    ],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/",
      ...env,
    },
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return new TextDecoder().decode(out.stdout).trim();
}

Deno.test("the runtime dir is /tmp/et-<uid>, never $XDG_RUNTIME_DIR (logind removes it at the last logout)", async () => {
  const xdg = await Deno.makeTempDir();
  try {
    assert.equal(
      await runtimeDirWith({ XDG_RUNTIME_DIR: xdg }),
      `/tmp/et-${Deno.uid()}`,
    );
  } finally {
    await Deno.remove(xdg, { recursive: true });
  }
});

Deno.test("ET_RUNTIME_DIR moves it (tests, or a host whose /tmp is not shared)", async () => {
  const base = await Deno.makeTempDir();
  try {
    const dir = await runtimeDirWith({ ET_RUNTIME_DIR: base });
    assert.equal(dir, `${base}/et`);
    assert.equal((await Deno.stat(dir)).mode! & 0o777, 0o700);
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});
