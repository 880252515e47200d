/**
 * The pty layer: runs a program on a pseudo-terminal and moves its bytes.
 *
 * @example
 * ```ts
 * import { Pty } from "./mod.ts";
 *
 * const pty = Pty.spawn({ command: "/bin/sh", args: ["-c", "tty"], cols: 80, rows: 24 });
 * for (let chunk; (chunk = await pty.read()) !== null;) {
 *   await Deno.stdout.write(chunk);
 * }
 * await pty.close();
 * ```
 *
 * @module
 */

export { Pty, type PtyExitStatus, type PtySpawnOptions } from "./pty.ts";
export {
  getTermios,
  LINUX_TERMIOS,
  makeRaw,
  preloadTermios,
  setTermios,
  TCSADRAIN,
  TCSANOW,
  termiosFields,
  type TermiosPlatform,
  termiosPlatform,
} from "./termios.ts";
