/**
 * Looks for byte strings in a live process's readable memory, through
 * `/proc/<pid>/maps` and `/proc/<pid>/mem` (the caller must be allowed to
 * ptrace it: root, or the same user): what a test needs to show that a
 * process does not hold a secret, and, as a sanity check, that another
 * one does.
 *
 * @module
 */

import { Buffer } from "node:buffer";

/** What {@linkcode scanProcessMemory} read and found. */
export interface MemoryScan {
  /** Names of the needles found, each once. */
  found: string[];
  /** Bytes read. */
  bytesScanned: number;
  /** Readable regions in the map, and those that could be read. */
  regions: number;
  regionsRead: number;
}

/** Read size: regions are read in pieces this big, overlapping a little. */
const PIECE_BYTES = 4 * 1024 * 1024;

/**
 * Reads every readable mapping of `pid` (up to `maxBytes` in all) and
 * reports which of `needles` occur in it. Pieces overlap by the longest
 * needle, so a needle across a piece boundary is found too.
 *
 * @example
 * ```ts
 * const scan = await scanProcessMemory(pid, { passkey });
 * assert.deepEqual(scan.found, []);
 * ```
 */
export async function scanProcessMemory(
  pid: number,
  needles: Record<string, Uint8Array>,
  maxBytes = 2 * 1024 * 1024 * 1024,
): Promise<MemoryScan> {
  const maps = await Deno.readTextFile(`/proc/${pid}/maps`);
  const regions = maps.split("\n").flatMap((line) => {
    const match = line.match(
      /^([0-9a-f]+)-([0-9a-f]+) (r)\S+ \S+ \S+ \S+\s*(.*)$/,
    );
    if (!match) return [];
    // The kernel's vsyscall page cannot be read through mem.
    if (match[4] === "[vvar]" || match[4] === "[vsyscall]") return [];
    return [{ start: BigInt(`0x${match[1]}`), end: BigInt(`0x${match[2]}`) }];
  });
  const overlap = Math.max(...Object.values(needles).map((n) => n.length)) - 1;
  const found = new Set<string>();
  let bytesScanned = 0;
  let regionsRead = 0;
  const mem = await Deno.open(`/proc/${pid}/mem`, { read: true });
  try {
    for (const region of regions) {
      if (bytesScanned >= maxBytes) break;
      let readSome = false;
      for (
        let at = region.start;
        at < region.end && bytesScanned < maxBytes;
        at += BigInt(PIECE_BYTES - overlap)
      ) {
        const size = Number(
          region.end - at < BigInt(PIECE_BYTES)
            ? region.end - at
            : BigInt(PIECE_BYTES),
        );
        const piece = new Uint8Array(size);
        let filled = 0;
        try {
          await mem.seek(at, Deno.SeekMode.Start);
          while (filled < size) {
            const n = await mem.read(piece.subarray(filled));
            if (n === null || n === 0) break;
            filled += n;
          }
        } catch {
          // an unreadable stretch (a guard page): skip the rest of the piece
        }
        if (filled === 0) continue;
        readSome = true;
        bytesScanned += filled;
        const data = Buffer.from(piece.buffer, 0, filled);
        for (const [name, needle] of Object.entries(needles)) {
          if (!found.has(name) && data.indexOf(needle) >= 0) found.add(name);
        }
        if (filled < size) break;
      }
      if (readSome) regionsRead++;
    }
  } finally {
    mem.close();
  }
  return {
    found: [...found],
    bytesScanned,
    regions: regions.length,
    regionsRead,
  };
}
