/**
 * The signal-detach scenario the detach tests share: a client on a real
 * terminal runs a program that streams a known 3 MiB in paced slices; a
 * signal ends the client in the middle (its terminal reading along, or
 * full); `--attach` then takes the session to its end. Checked in BYTES:
 * what the first terminal showed and what `--attach` got are, together,
 * the stream exactly, nothing lost, nothing twice; the client exited by
 * the signal; the session was left detached, its leaving client dialled
 * no pipe after the session read its detach.
 *
 * Hooks let a test put faults around the moment of the signal (a fault
 * proxy in front of the daemon: `port`, `beforeSignal`).
 *
 * @module
 */

import assert from "node:assert/strict";
import { PtyProcess } from "../helpers/pty_process.ts";
import { patternBytes } from "../helpers/session_pair.ts";
import {
  parseSessionList,
  PipedClient,
  runToEnd,
  sha256,
  sleep,
  waitUntil,
} from "./_client.ts";
import type { EtWorld } from "./_world.ts";
import { clientLog, logTail, terminalLogs } from "../reliability/_logs.ts";
import { RESET_MODES } from "../../src/client/local_terminal.ts";

const encoder = new TextEncoder();

/** One run of the scenario. */
export interface SignalDetachCase {
  /** The client's `--predict` mode. */
  predict: "adaptive" | "never";
  /**
   * True: the first terminal reads nothing from the stream's start until
   * after the signal (full: the client holds bytes received but unwritten).
   */
  stopReading: boolean;
  /**
   * The port the client dials (e.g. a fault proxy's).
   * @default {the world's daemon}
   */
  port?: number;
  /** Runs just before the signal is sent (e.g. to arm a fault). */
  beforeSignal?: () => void | Promise<void>;
  /**
   * The signal that ends the first client, and its exit status.
   * @default {["SIGTERM", 143]}
   */
  signal?: [Deno.Signal, number];
}

/** What a run measured (for a log line). */
export interface SignalDetachResult {
  /** Bytes of the stream the first terminal showed. */
  shownFirst: number;
  /** Bytes `--attach` got (the rest of the stream and the end marker). */
  attached: number;
}

/** Runs {@linkcode SignalDetachCase} in `world`; throws on any mismatch. */
export async function runSignalDetach(
  world: EtWorld,
  options: SignalDetachCase,
): Promise<SignalDetachResult> {
  const dir = world.dir;
  const [signal, status] = options.signal ?? ["SIGTERM", 143];
  const stream = patternBytes(3 * 1024 * 1024, 13);
  await Deno.writeFile(`${dir}/stream.bin`, stream);
  // Raw: the remote pty passes every byte as is. The stream comes in 48
  // slices, paced, so the signal lands in its middle.
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
  const et = world.client(
    ["--pty", "--predict", options.predict, "-c", `sh ${dir}/program.sh`],
    options.port === undefined ? {} : { port: options.port },
  );
  // exec: the pty's program is the client itself (the signal goes to it),
  // its stderr in a file (its notice is not the stream's).
  const first = PtyProcess.spawn([
    "sh",
    "-c",
    `exec "$@" 2> ${dir}/err`,
    "sh",
    ...et,
  ]);
  let attached: PipedClient | undefined;
  try {
    const start = await first.waitFor("<<A-END>>", { timeoutMs: 30_000 });
    if (options.stopReading) first.pause();
    await Deno.writeTextFile(`${dir}/go`, "");
    if (options.stopReading) {
      // The remote keeps printing; the client's terminal takes none.
      await sleep(600);
    } else {
      await waitUntil(
        () => first.length - start.end > 512 * 1024,
        20_000,
        () => `some of the stream shown: ${first.length - start.end}`,
      );
    }
    await options.beforeSignal?.();
    first.signal(signal);
    if (options.stopReading) {
      // The client must leave although its terminal is full.
      await sleep(300);
      first.resume();
    }
    const exit = await first.wait(20_000);
    assert.equal(
      exit.code,
      status,
      `the client's exit; stderr: ${Deno.readTextFileSync(`${dir}/err`)}`,
    );
    // The leaving client's last word on its pipes, for the messages below.
    const clientSaid = logTail(
      (await clientLog(world)).split("\n")
        .filter((line) => /detach|pipe|attempt/.test(line)).join("\n"),
      12,
    );
    // The leaving client dialled no new pipe after the session read its
    // detach (the session dropped the one it came on).
    const hostLog = (await terminalLogs(world)).join("");
    const afterDetach = hostLog.slice(hostLog.lastIndexOf("client detached"));
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
    // What neither terminal showed (negative: shown twice), for the message.
    const shownStream = shown.length - RESET_MODES.length;
    const missing = expected.length - shownStream - got.length;
    assert.ok(split > 0 && split < stream.length, `split at ${split}`);
    assert.equal(
      sha256(got),
      sha256(expected.subarray(split)),
      `--attach showed exactly the rest (first terminal: ${shownStream} ` +
        `bytes, --attach: ${got.length}, missing between them: ${missing}); ` +
        `the client's log:\n${clientSaid}`,
    );
    // Exactly the stream's first part, then the client's own mode reset on
    // leaving: nothing of the rest, so nothing twice.
    assert.equal(
      sha256(shown),
      sha256(
        new Uint8Array([
          ...expected.subarray(0, split),
          ...encoder.encode(RESET_MODES),
        ]),
      ),
      `the first terminal showed exactly the part before (first terminal: ` +
        `${shownStream} bytes, --attach: ${got.length}, missing between ` +
        `them: ${missing}); the client's log:\n${clientSaid}`,
    );
    return { shownFirst: split, attached: got.length };
  } finally {
    await first.close();
    await attached?.close();
  }
}
