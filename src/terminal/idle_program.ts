/**
 * The program of a tunnels-only session (`et -N`): no process, no pty, no
 * output. It "exits" only when the session closes it, so the session lives
 * until its client ends it or stays away too long.
 *
 * @module
 */

import type { Program, ProgramExit } from "./program.ts";

/**
 * A Program that runs nothing.
 *
 * @example
 * ```ts
 * const program = noTerminal ? idleProgram() : await startProgram(spec);
 * ```
 */
export function idleProgram(): Program {
  let finish!: (exit: ProgramExit) => void;
  const exited = new Promise<ProgramExit>((resolve) => finish = resolve);
  let endOutput!: () => void;
  const outputEnded = new Promise<null>((resolve) =>
    endOutput = () => resolve(null)
  );
  return {
    // The session process itself: there is no other.
    pid: Deno.pid,
    output: { read: () => outputEnded },
    hasPty: false,
    exited,
    write: () => Promise.resolve(),
    closeInput: () => Promise.resolve(),
    resize() {},
    hangup() {},
    closeOutput() {},
    close() {
      endOutput();
      finish({ code: 0 });
      return Promise.resolve();
    },
  };
}
