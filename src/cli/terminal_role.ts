/**
 * `et terminal`'s roles as et itself starts them: the launcher (what the
 * client runs over ssh), `--host` (the user's host process, which the
 * launcher starts) and `--relay` (a jump relay). Both of the first run on
 * every new session's way to its prompt (the host on a cold start), so
 * `main.ts` runs them through here without loading the command line
 * parser and the client's modules (`cli/main.ts`; ~10 ms of module
 * loading per process). Anything else `et terminal` is given (help, a
 * typo) goes through the parser, which ends up here too.
 *
 * @module
 */

import { configureLog, errorMessage } from "../log.ts";
import { routerPathFromEnv } from "../session/router_protocol.ts";
import { parseDuration } from "./units.ts";

/** The `et terminal` words et itself passes: none (the launcher), or one. */
export type TerminalRole = "" | "--host" | "--relay";

/** A bad value in the terminal's environment: the user's to fix (exit 2). */
export class TerminalEnvError extends Error {}

/**
 * The role of `et terminal <args>` as et itself passes them, taken
 * without the option parser; null for anything else, which goes through
 * it (help, errors, suggestions).
 */
export function internalRole(args: string[]): TerminalRole | null {
  if (args.length === 0) return "";
  if (args.length === 1 && (args[0] === "--host" || args[0] === "--relay")) {
    return args[0];
  }
  return null;
}

/**
 * Runs `role`; resolves with the exit code. Throws
 * {@link TerminalEnvError} for a bad `ET_HOST_LINGER`.
 */
export async function runTerminalRole(role: TerminalRole): Promise<number> {
  // The router comes from the environment only: the launcher and the host
  // it starts must agree, and ssh carries no flags here.
  const routerPath = routerPathFromEnv();
  // Checked by the launcher too (the host it starts inherits it): a bad
  // value is the user's one line, not a host that never starts.
  const lingerMs = hostLingerFromEnv();
  if (role === "--host") {
    const { serveHost } = await import("../terminal/user_host.ts");
    return await serveHost({ routerPath, lingerMs });
  }
  if (role === "--relay") {
    // A jump relay (--jumphost): same way in, same router as a session.
    const { serveJumpRelay } = await import("../terminal/jump_relay.ts");
    return await serveJumpRelay({ routerPath });
  }
  configureLog({ level: "silent" });
  const { launchTerminal } = await import("../terminal/launcher.ts");
  return await launchTerminal({ routerPath, lingerMs });
}

/**
 * `main.ts`'s way in: runs `et <args>` when it is one of et's own
 * `et terminal` roles on a system that has them, and resolves with its
 * exit code (a bad environment: one line on stderr, exit 2); null for
 * anything else, which `cli/main.ts` handles.
 */
export async function runInternalTerminal(
  args: string[],
): Promise<number | null> {
  if (args[0] !== "terminal" || Deno.build.os === "windows") return null;
  const role = internalRole(args.slice(1));
  if (role === null) return null;
  try {
    return await runTerminalRole(role);
  } catch (error) {
    console.error(`et: ${errorMessage(error)}`);
    return error instanceof TerminalEnvError ? 2 : 1;
  }
}

/**
 * `ET_HOST_LINGER` (a duration: 10m, 30s, 0), how long the user's host
 * stays after its last session; undefined (the host's default) when unset.
 */
function hostLingerFromEnv(): number | undefined {
  const value = Deno.env.get("ET_HOST_LINGER");
  if (value === undefined || value === "") return undefined;
  try {
    return parseDuration(value, "ET_HOST_LINGER");
  } catch (error) {
    throw new TerminalEnvError(errorMessage(error));
  }
}
