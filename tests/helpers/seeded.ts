/**
 * The one seeded random generator of the tests: the same seed gives the
 * same numbers, so a failing run can be replayed from its seed.
 *
 * @module
 */

/**
 * A generator of numbers in [0, 1) from `seed` (mulberry32).
 *
 * @example
 * ```ts
 * const next = seeded(42);
 * const die = 1 + Math.floor(next() * 6);
 * ```
 */
export function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
