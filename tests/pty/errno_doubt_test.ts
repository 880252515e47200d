/**
 * The pty's reads and writes with errno read back wrong (a runtime that
 * clobbered it between the call and the read, as was seen for a full
 * terminal's EAGAIN, read back as ENOENT): a failure counts only once it
 * repeats, so a clobbered EAGAIN neither ends a read nor fails a write.
 * Real pseudo-terminals and programs; only errno's read-back is faked.
 */

import assert from "node:assert/strict";
import { Pty } from "../../src/pty/mod.ts";
import { injectErrnoFault } from "../../src/platform/libc.ts";

const ENOENT = 2;

/** Every other errno read says ENOENT, starting with the first. */
function everyOtherReadClobbered(): () => number | undefined {
  let reads = 0;
  return () => reads++ % 2 === 0 ? ENOENT : undefined;
}

/** Reads the pty to its end; returns the text. */
async function readAll(pty: Pty): Promise<string> {
  let text = "";
  const decoder = new TextDecoder();
  for (let chunk; (chunk = await pty.read()) !== null;) {
    text += decoder.decode(chunk, { stream: true });
  }
  return text;
}

Deno.test({
  name:
    "pty read: a clobbered EAGAIN does not end the read; output and EOF still come",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const pty = Pty.spawn({
      command: "sh",
      args: ["-c", "sleep 0.3; printf 'late hello'; sleep 0.2"],
      cols: 80,
      rows: 24,
    });
    injectErrnoFault(everyOtherReadClobbered());
    try {
      // Before: the first read found the queue empty, read errno as ENOENT
      // and threw "read failed: ENOENT (2)".
      assert.equal(await readAll(pty), "late hello");
      assert.equal((await pty.exited).code, 0);
    } finally {
      injectErrnoFault(null);
      await pty.close();
    }
  },
});

Deno.test({
  name:
    "pty write: a clobbered EAGAIN on a full input queue waits for room instead of failing",
  ignore: Deno.build.os !== "linux",
  async fn() {
    // The child reads nothing for a while: the input queue fills.
    const pty = Pty.spawn({
      command: "sh",
      args: ["-c", "stty -echo -icanon; sleep 0.5; exec wc -c"],
      cols: 80,
      rows: 24,
    });
    const output = readAll(pty);
    const bytes = new Uint8Array(64 * 1024).fill(0x61);
    await new Promise((resolve) => setTimeout(resolve, 200)); // stty ran
    injectErrnoFault(everyOtherReadClobbered());
    try {
      await pty.write(bytes);
    } finally {
      injectErrnoFault(null);
    }
    await pty.write(new Uint8Array([4])); // EOF (VEOF) for wc
    pty.kill("SIGHUP");
    await output;
    await pty.close();
  },
});
