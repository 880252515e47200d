/**
 * A client ended by a signal in the middle of a stream detaches with the
 * exact count of what it wrote to its terminal (`detach.written`), so
 * that what the first terminal showed and what `--attach` shows are,
 * together, the program's output byte for byte: nothing lost, nothing
 * twice. Checked while the terminal reads along, and while it reads
 * nothing at all (full: the client's write waits for room when the
 * signal comes), on the plain output path and through the predictive
 * echo.
 */

import assert from "node:assert/strict";
import { PtyProcess } from "../helpers/pty_process.ts";
import { patternBytes } from "../helpers/session_pair.ts";
import {
  parseSessionList,
  PipedClient,
  runToEnd,
  sha256,
  waitUntil,
} from "./_client.ts";
import { E2E_TEST, withWorld } from "./_world.ts";
import { RESET_MODES } from "../../src/client/local_terminal.ts";

const encoder = new TextEncoder();

for (
  const { name, predict, stopReading } of [
    {
      name: "the terminal reading along",
      predict: "adaptive",
      stopReading: false,
    },
    {
      name:
        "the terminal full, its write waiting for room (--predict never: the plain output path)",
      predict: "never",
      stopReading: true,
    },
    {
      name:
        "the terminal full, its write waiting for room (through the predictive echo)",
      predict: "adaptive",
      stopReading: true,
    },
  ]
) {
  Deno.test({
    ...E2E_TEST,
    name:
      `SIGTERM mid-stream, ${name}: the first terminal's bytes and --attach's are the stream exactly`,
    fn: () =>
      withWorld({ privateRuntime: true }, async (world) => {
        const dir = world.dir;
        const stream = patternBytes(3 * 1024 * 1024, 13);
        await Deno.writeFile(`${dir}/stream.bin`, stream);
        // Raw: the remote pty passes every byte as is. The stream comes
        // in 48 slices, paced, so the signal lands in its middle.
        const script = [
          "stty raw -echo",
          "printf '<<A-''END>>'",
          `while [ ! -e ${dir}/go ]; do sleep 0.05; done`,
          "i=0",
          "while [ $i -lt 48 ]; do",
          `  dd if=${dir}/stream.bin bs=65536 skip=$i count=1 2>/dev/null`,
          "  sleep 0.03; i=$((i+1))",
          "done",
          "printf '<<B-''END>>'",
          `while [ ! -e ${dir}/finish ]; do sleep 0.05; done`,
          "exit 7",
        ].join("\n");
        await Deno.writeTextFile(`${dir}/program.sh`, script);
        const et = world.client([
          "--pty",
          "--predict",
          predict,
          "-c",
          `sh ${dir}/program.sh`,
        ]);
        // exec: the pty's program is the client itself (the signal goes to
        // it), its stderr in a file (its notice is not the stream's).
        const first = PtyProcess.spawn([
          "sh",
          "-c",
          `exec "$@" 2> ${dir}/err`,
          "sh",
          ...et,
        ]);
        let attached: PipedClient | undefined;
        try {
          const start = await first.waitFor("<<A-END>>", {
            timeoutMs: 30_000,
          });
          if (stopReading) first.pause();
          await Deno.writeTextFile(`${dir}/go`, "");
          if (stopReading) {
            // The remote keeps printing; the client's terminal takes none.
            await new Promise((resolve) => setTimeout(resolve, 600));
          } else {
            await waitUntil(
              () => first.length - start.end > 512 * 1024,
              20_000,
              () => `some of the stream shown: ${first.length - start.end}`,
            );
          }
          first.signal("SIGTERM");
          if (stopReading) {
            // The client must leave although its terminal is full.
            await new Promise((resolve) => setTimeout(resolve, 300));
            first.resume();
          }
          const status = await first.wait(20_000);
          assert.equal(
            status.code,
            143,
            `the client's exit; stderr: ${Deno.readTextFileSync(`${dir}/err`)}`,
          );
          // The leaving client dialled no new pipe after its detach (the
          // session dropped the one it came on): it was attached once.
          const hostLog = await terminalLogs(world.runtimeDir);
          const afterDetach = hostLog.slice(
            hostLog.lastIndexOf("client detached"),
          );
          assert.ok(afterDetach.length > 0, `a detach: ${hostLog}`);
          assert.doesNotMatch(afterDetach, /away -> connected/, hostLog);
          const listed = await runToEnd(world.client(["--list"]));
          const sessions = parseSessionList(listed.stdout);
          assert.deepEqual(
            sessions.map((session) => session.state),
            ["detached"],
            `--list: ${listed.stdout}${listed.stderr}`,
          );
          const id = sessions[0].id8;

          attached = new PipedClient(world.client(["--attach", id]), true);
          await attached.waitFor("<<B-END>>", 30_000);
          await Deno.writeTextFile(`${dir}/finish`, "");
          assert.equal(await attached.exit(20_000), 7, attached.stderr);

          const expected = new Uint8Array([
            ...stream,
            ...encoder.encode("<<B-END>>"),
          ]);
          const got = attached.bytes();
          const shown = first.bytes(start.end);
          const split = expected.length - got.length;
          console.log(
            `first terminal: ${split} bytes of the stream; --attach: ${got.length}`,
          );
          assert.ok(split > 0 && split < stream.length, `split at ${split}`);
          assert.equal(
            sha256(got),
            sha256(expected.subarray(split)),
            "--attach showed exactly the rest",
          );
          // Exactly the stream's first part, then the client's own mode
          // reset on leaving: nothing of the rest, so nothing twice.
          assert.equal(
            sha256(shown),
            sha256(
              new Uint8Array([
                ...expected.subarray(0, split),
                ...encoder.encode(RESET_MODES),
              ]),
            ),
            `the first terminal showed exactly the part before (${shown.length} bytes)`,
          );
        } finally {
          await first.close();
          await attached?.close();
        }
      }),
  });
}

/** The world's terminal logs, concatenated. */
async function terminalLogs(runtimeDir: string): Promise<string> {
  let text = "";
  for await (const entry of Deno.readDir(runtimeDir)) {
    if (/^terminal-[0-9a-f]{8}\.log$/.test(entry.name)) {
      text += await Deno.readTextFile(`${runtimeDir}/${entry.name}`);
    }
  }
  return text;
}
