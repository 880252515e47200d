/**
 * Randomness for the fuzzer: a seeded PRNG (xoshiro128**, seeded through
 * splitmix32) so a printed seed reproduces a run, and a tape that reads the
 * same decisions from bytes (libFuzzer's "fuzzed data provider"), so a
 * structured plan can be stored, replayed and shrunk like any other input.
 *
 * @module
 */

/** What generators and mutators draw their decisions from. */
export interface Random {
  /** A uniform 32-bit unsigned integer. */
  u32(): number;
  /** A uniform integer in 0..n-1 (0 when n <= 1). */
  int(n: number): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T;
  /** `n` random bytes. */
  bytes(n: number): Uint8Array;
}

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

/** Hashes a string to 32 bits (FNV-1a), to derive per-target seeds. */
export function hash32(text: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** A seeded PRNG: the same seed gives the same sequence, everywhere. */
export class Rng implements Random {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** Seeds the generator from any 32-bit number. */
  constructor(seed: number) {
    const mix = splitmix32(seed);
    this.#a = mix();
    this.#b = mix();
    this.#c = mix();
    this.#d = mix() || 1;
  }

  u32(): number {
    const result = Math.imul(rotl(Math.imul(this.#b, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.#b << 9) >>> 0;
    this.#c ^= this.#a;
    this.#d ^= this.#b;
    this.#b ^= this.#c;
    this.#a ^= this.#d;
    this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return result;
  }

  int(n: number): number {
    if (n <= 1) return 0;
    if (n <= 0x1_0000_0000) return Math.floor((this.u32() / 0x1_0000_0000) * n);
    return Math.floor(this.float() * n);
  }

  /** A uniform float in [0, 1) with 53 bits. */
  float(): number {
    return (this.u32() * 0x20_0000 + (this.u32() >>> 11)) / 2 ** 53;
  }

  chance(p: number): boolean {
    return this.u32() < p * 0x1_0000_0000;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      let word = this.u32();
      for (let j = i; j < Math.min(n, i + 4); j++) {
        out[j] = word & 0xff;
        word >>>= 8;
      }
    }
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * Decisions read from bytes: each call consumes what it needs and answers
 * 0 (the first choice, "no", the empty array) once the bytes run out. A
 * shorter tape therefore means a plainer plan, which is what shrinking
 * wants.
 */
export class Tape implements Random {
  #bytes: Uint8Array;
  #at = 0;

  /** Reads decisions from `bytes`. */
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
  }

  /** Bytes not consumed yet. */
  get remaining(): number {
    return Math.max(0, this.#bytes.length - this.#at);
  }

  #byte(): number {
    return this.#at < this.#bytes.length ? this.#bytes[this.#at++] : 0;
  }

  u32(): number {
    return ((this.#byte() << 24) | (this.#byte() << 16) |
      (this.#byte() << 8) | this.#byte()) >>> 0;
  }

  int(n: number): number {
    if (n <= 1) return 0;
    if (n <= 0x100) return this.#byte() % n;
    if (n <= 0x10000) return ((this.#byte() << 8) | this.#byte()) % n;
    return this.u32() % n;
  }

  chance(p: number): boolean {
    return this.#byte() < p * 256;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.#byte();
    return out;
  }
}

/** A fresh random 32-bit seed from the system CSPRNG. */
export function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
