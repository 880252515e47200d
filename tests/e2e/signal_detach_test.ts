/**
 * A client ended by a signal in the middle of a stream detaches with the
 * exact count of what it wrote to its terminal (`detach.written`), so
 * that what the first terminal showed and what `--attach` shows are,
 * together, the program's output byte for byte: nothing lost, nothing
 * twice. Checked while the terminal reads along, and while it reads
 * nothing at all (full: the client's write waits for room when the
 * signal comes), on the plain output path and through the predictive
 * echo. The scenario itself is in `_signal_detach.ts`.
 */

import { runSignalDetach } from "./_signal_detach.ts";
import { E2E_TEST, withWorld } from "./_world.ts";

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
  ] as const
) {
  Deno.test({
    ...E2E_TEST,
    name:
      `SIGTERM mid-stream, ${name}: the first terminal's bytes and --attach's are the stream exactly`,
    fn: () =>
      withWorld({ privateRuntime: true }, async (world) => {
        const { shownFirst, attached } = await runSignalDetach(world, {
          predict,
          stopReading,
        });
        console.log(
          `first terminal: ${shownFirst} bytes of the stream; --attach: ${attached}`,
        );
      }),
  });
}
