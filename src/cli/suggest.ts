/**
 * Usage messages for bad options, and their "did you mean": the closest
 * name of an option table by edit distance, so options added to the table
 * are hinted without another word here.
 *
 * @module
 */

/** An option table (see args.ts): names to specs. */
type OptionTable = Record<string, { type?: string; short?: string }>;

/**
 * Levenshtein distance between `a` and `b` (insertions, deletions and
 * substitutions count 1; an adjacent swap counts 1 too, as typists make it).
 *
 * @example
 * ```ts
 * editDistance("tunel", "tunnel"); // 1
 * ```
 */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from(
    { length: rows },
    (_, i) =>
      Array.from({ length: cols }, (_, j) => i === 0 ? j : j === 0 ? i : 0),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(
        d[i - 1][j] + 1,
        d[i][j - 1] + 1,
        d[i - 1][j - 1] + cost,
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/**
 * The long option (`--name`) closest to what the user typed, or null when
 * nothing is close enough to be a likely typo: within a third of the
 * name's length (at least 1, at most 3 edits), or a unique prefix.
 *
 * @example
 * ```ts
 * closestOption("--tunel", ["tunnel", "port"]); // "--tunnel"
 * closestOption("--keep", ["keepalive", "port"]); // "--keepalive"
 * closestOption("--zzz", ["tunnel", "port"]); // null
 * ```
 */
export function closestOption(
  typed: string,
  names: readonly string[],
): string | null {
  const word = typed.replace(/^-+/, "").split("=")[0].toLowerCase();
  if (word === "") return null;
  let best: string | null = null;
  let bestDistance = Infinity;
  for (const name of names) {
    const distance = editDistance(word, name.toLowerCase());
    if (distance < bestDistance) {
      best = name;
      bestDistance = distance;
    }
  }
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  if (best !== null && bestDistance <= limit) return `--${best}`;
  if (word.length >= 3) {
    const prefixed = names.filter((name) => name.startsWith(word));
    if (prefixed.length === 1) return `--${prefixed[0]}`;
  }
  return null;
}

/**
 * The option parser's error (node:util's wording, see args.ts) as one
 * line of ours: an unknown option gets the closest
 * name of the option table as a hint, so options added to the table are
 * hinted without more code.
 */
export function usageMessage(
  message: string,
  options: OptionTable,
  help = "et --help",
): string {
  const first = message.split("\n")[0];
  const unknown = first.match(/^Unknown option '([^']*)'/);
  if (!unknown) {
    return first
      .replace(
        /^Option '([^']*)' argument missing$/,
        "option '$1' needs a value",
      )
      .replace(
        /^Option '([^']*)' does not take an argument$/,
        "option '$1' takes no value",
      )
      .replace(
        /^Option '([^']*)' argument is ambiguous.*$/,
        (_, flag: string) => {
          // Only the long form takes "=": name it for a letter too.
          const long = flag.startsWith("--")
            ? flag
            : `--${
              Object.entries(options).find(([, o]) => `-${o.short}` === flag)
                ?.[0] ?? flag.slice(1)
            }`;
          return `option '${flag}' got a value starting with '-': write it as ${long}=VALUE`;
        },
      );
  }
  const typed = unknown[1];
  const hint = typed.startsWith("--")
    ? closestOption(typed, Object.keys(options))
    : null;
  return hint
    ? `unknown option '${typed}'; did you mean '${hint}'? (see ${help})`
    : `unknown option '${typed}' (see ${help})`;
}
