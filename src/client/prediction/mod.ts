/**
 * Predictive local echo (`--predict`): a model of the local terminal fed
 * every remote byte, a predictor of what keystrokes will show, and the
 * sequences that show it before the echo comes back.
 *
 * @module
 */

import type { LocalWriteOptions } from "./predictive_echo.ts";

export {
  EchoPredictor,
  type Overlay,
  type OverlayCell,
  type PredictMode,
} from "./echo_predictor.ts";
export {
  type LocalWrite,
  type LocalWriteOptions,
  PredictiveEcho,
} from "./predictive_echo.ts";
export { preloadScreenModel, ScreenModel } from "./screen_model.ts";
export type { CursorPosition, ScreenView } from "./screen_view.ts";

/** The values `--predict` takes. */
export const PREDICT_MODES = ["always", "adaptive", "never"] as const;

/**
 * Parses a `--predict` value; throws a one-line Error for anything else.
 *
 * @example
 * ```ts
 * parsePredictMode("adaptive"); // "adaptive"
 * ```
 */
export function parsePredictMode(text: string): (typeof PREDICT_MODES)[number] {
  const mode = PREDICT_MODES.find((m) => m === text);
  if (mode === undefined) {
    throw new Error(
      `invalid --predict '${text}' (expected always, adaptive or never)`,
    );
  }
  return mode;
}

/**
 * Writes all of `bytes` to `out`, or, once `options.signal` is aborted,
 * what `out` took until then (an `out` that honours the signal writes
 * nothing more then, and resolves 0 once asked again). `options.taken`
 * hears each count.
 */
export async function writeAll(
  out: { write(p: Uint8Array, signal?: AbortSignal): Promise<number> },
  bytes: Uint8Array,
  options?: LocalWriteOptions,
): Promise<void> {
  for (let at = 0; at < bytes.length;) {
    const n = await out.write(bytes.subarray(at), options?.signal);
    if (n === 0 && options?.signal.aborted) return;
    at += n;
    options?.taken?.(n);
  }
}
