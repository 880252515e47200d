/**
 * Sessions through the fault proxy between client and daemon: output and
 * keystrokes survive cuts, blackholes and a long outage.
 */
import assert from "node:assert/strict";
import { patternBytes } from "../helpers/session_pair.ts";
import {
  base64Lines,
  markedSection,
  sha256,
  sleep,
  withProxiedSession,
  withSession,
} from "./_client.ts";
import { E2E_TEST, LONG_VARIANT } from "./_world.ts";

Deno.test({
  ...E2E_TEST,
  name:
    "50 MB of output through cuts and blackholes arrive byte-exact; keystrokes typed offline arrive once",
  fn: () =>
    withProxiedSession(
      { keepBytes: true },
      async ({ world, proxy, client, startChaos }) => {
        // Keystrokes typed while the path is down arrive once, in order.
        proxy.cut();
        proxy.setRefuse(true);
        const typedFile = `${world.dir}/typed.txt`;
        await client.type(`echo typed-A >> ${typedFile}\n`);
        await client.type(`echo typed-B >> ${typedFile}\n`);
        await sleep(2000);
        assert.equal(await Deno.readTextFile(typedFile).catch(() => ""), "");
        proxy.setRefuse(false);
        const deadline = Date.now() + 10_000;
        while (
          (await Deno.readTextFile(typedFile).catch(() => "")).length < 16
        ) {
          if (Date.now() > deadline) {
            throw new Error("typed lines never arrived");
          }
          await sleep(50);
        }
        await sleep(300);
        assert.equal(await Deno.readTextFile(typedFile), "typed-A\ntyped-B\n");

        // 50 MB of known output, paced over ~15 s, while the path misbehaves.
        const data = base64Lines(patternBytes(37_500_000, 99));
        assert.ok(data.length >= 50_000_000);
        const dataFile = `${world.dir}/data.txt`;
        await Deno.writeFile(dataFile, data);
        const expected = sha256(data);
        let faults = 0;
        const stop = startChaos({
          minMs: 200,
          maxMs: 2000,
          blackholeMaxMs: 10_000,
          kinds: ["cut", "cut", "blackhole"],
          onFault: () => faults++,
        });
        const before = client.stdoutBytes;
        await client.type(
          `stty -opost -echo; printf '<<<%s>>>' BEGIN; for i in $(seq 0 50); do ` +
            `dd if=${dataFile} bs=1000000 skip=$i count=1 2>/dev/null; sleep 0.3; done; ` +
            `printf '<<<%s>>>' DONE; stty opost echo\n`,
        );
        await client.waitFor("<<<DONE>>>", 240_000);
        await stop();
        const { text, section } = markedSection(client, before);
        assert.equal(section.length, data.length, "byte count");
        assert.equal(sha256(section), expected);
        assert.ok(faults >= 3, `only ${faults} faults`);
        assert.match(client.stderr, /connection lost, reconnecting/);
        assert.ok(!text.includes("[et:"), "notices never go to stdout");
        console.log(
          `faults during the 50 MB: ${faults}, cuts: ${proxy.stats.cuts}`,
        );

        await client.type("exit 0\n");
        assert.equal(await client.exit(30_000), 0);
      },
    ),
});

/** The outage: far past every liveness bound (6 s dead, 20 s idle). */
const OUTAGE_MS = LONG_VARIANT ? 60_000 : 25_000;

Deno.test({
  ...E2E_TEST,
  name: `a session survives a ${
    OUTAGE_MS / 1000
  } s outage and resumes within 1 s of the path returning`,
  fn: () =>
    withProxiedSession({}, async ({ proxy, client }) => {
      await client.type(
        `sleep ${OUTAGE_MS / 2000} && echo SLEPT-$((1+1))\n`,
      );
      // Cut the path only once the shell has the command (its echo is
      // back), so the job really runs through the outage.
      await client.waitFor("echo SLEPT-$((1+1))\r\n");
      await sleep(300);
      proxy.setBlackhole(true); // silent: no error reaches either end
      await sleep(OUTAGE_MS);
      assert.match(client.stderr, /connection lost/);
      proxy.setBlackhole(false);
      const back = Date.now();
      await client.type("echo BACK-$((2+3))\n");
      await client.waitFor("BACK-5", 10_000);
      const elapsed = Date.now() - back;
      console.log(`resumed ${elapsed} ms after the path returned`);
      assert.ok(elapsed < 1000, `resume took ${elapsed} ms`);
      assert.ok(
        client.stdout.includes("SLEPT-2"),
        "job output from the outage arrived",
      );
      await client.type("exit 4\n");
      assert.equal(await client.exit(30_000), 4);
    }),
});

Deno.test({
  ...E2E_TEST,
  name: "a 10 MB paste into cat > file completes intact",
  fn: () =>
    withSession({}, async ({ world, client }) => {
      const paste = base64Lines(patternBytes(7_500_000, 5));
      const file = `${world.dir}/paste.txt`;
      await client.type(`cat > ${file}\n`);
      await sleep(300);
      for (let i = 0; i < paste.length; i += 64 * 1024) {
        await client.type(paste.subarray(i, i + 64 * 1024));
      }
      await client.type(new Uint8Array([0x04])); // ^D at a line start: EOF
      await client.type("echo PASTED-$((3*3))\n");
      await client.waitFor("PASTED-9", 120_000);
      const got = await Deno.readFile(file);
      assert.equal(got.length, paste.length);
      assert.equal(sha256(got), sha256(paste));
      await client.type("exit\n");
      assert.equal(await client.exit(), 0);
    }),
});
