/**
 * The option parser of `et`'s command lines: node:util's `parseArgs` with
 * `strict: true` and `allowPositionals: true`, rebuilt to the letter (the
 * same tokens, the same values, the same errors and messages;
 * tests/cli/args_test.ts compares the two on every argv it makes), because
 * node:util costs the client ~9 ms to load and ~10 ms of garbage
 * collection before its ssh starts: time added to every start to prompt.
 *
 * What it accepts, as node's does: `--name`, `--name=value`,
 * `--name value` (a string option takes the next word, whatever it is),
 * `-x`, `-xVALUE` and `-x VALUE` for a string letter, groups of boolean
 * letters (`-vvN`, the last may take a value), and `--` ending the options.
 *
 * @module
 */

/** One option of a table: its value's type, its letter, whether it repeats. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  multiple?: boolean;
}

/** Option names (the long form, without `--`) to their specs. */
export type OptionTable = Record<string, OptionSpec>;

/**
 * The options found, by long name: a string or true (repeatable ones: an
 * array of them, in order); an option not given is absent.
 */
export type OptionValues = Record<
  string,
  string | boolean | (string | boolean)[] | undefined
>;

/** A bad command line; its message is node's, word for word. */
export class ArgsError extends Error {}

interface OptionToken {
  name: string;
  rawName: string;
  value: string | undefined;
  inlineValue: boolean;
}

/** The table's spec of `name`, if it is the table's own (never inherited). */
function own(options: OptionTable, name: string): OptionSpec | undefined {
  return Object.hasOwn(options, name) ? options[name] : undefined;
}

/** The long name of letter `short`, or the letter itself when none has it. */
function longOf(options: OptionTable, short: string): string {
  for (const [name, spec] of Object.entries(options)) {
    if (spec.short === short) return name;
  }
  return short;
}

function takesValue(options: OptionTable, name: string): boolean {
  return own(options, name)?.type === "string";
}

/**
 * Parses `args` against `options`: `values` by long name, `positionals`
 * the other words in order. Throws {@link ArgsError} with node's message
 * for an unknown option, a string option without a value, a value given
 * to a boolean one, or a separate value that starts with `-`.
 *
 * @example
 * ```ts
 * parseOptions(["-vv", "--port=2022", "host"], {
 *   verbose: { type: "boolean", short: "v", multiple: true },
 *   port: { type: "string", short: "p" },
 * });
 * // { values: { verbose: [true, true], port: "2022" }, positionals: ["host"] }
 * ```
 */
export function parseOptions(
  args: readonly string[],
  options: OptionTable,
): { values: OptionValues; positionals: string[] } {
  const values: OptionValues = Object.create(null);
  const positionals: string[] = [];
  const remaining = [...args];
  while (remaining.length > 0) {
    const arg = remaining.shift()!;
    if (arg === "--") {
      positionals.push(...remaining);
      break;
    }
    let token: OptionToken;
    if (arg.length === 2 && arg[0] === "-" && arg[1] !== "-") {
      // -x, or -x VALUE for a string letter
      const name = longOf(options, arg[1]);
      const value = takesValue(options, name) && remaining.length > 0
        ? remaining.shift()
        : undefined;
      token = { name, rawName: arg, value, inlineValue: false };
    } else if (arg.length > 2 && arg[0] === "-" && arg[1] !== "-") {
      if (!takesValue(options, longOf(options, arg[1]))) {
        // A group (-vxN): each letter alone; a string letter before the
        // end takes the rest of the word as its value (-vp2022).
        const expanded: string[] = [];
        for (let i = 1; i < arg.length; i++) {
          const letter = arg[i];
          if (
            !takesValue(options, longOf(options, letter)) ||
            i === arg.length - 1
          ) {
            expanded.push(`-${letter}`);
          } else {
            expanded.push(`-${arg.slice(i)}`);
            break;
          }
        }
        remaining.unshift(...expanded);
        continue;
      }
      // -pVALUE
      token = {
        name: longOf(options, arg[1]),
        rawName: `-${arg[1]}`,
        value: arg.slice(2),
        inlineValue: true,
      };
    } else if (arg.length > 2 && arg.startsWith("--")) {
      if (!arg.includes("=", 3)) {
        // --name, or --name VALUE for a string option
        const name = arg.slice(2);
        const value = takesValue(options, name) && remaining.length > 0
          ? remaining.shift()
          : undefined;
        token = { name, rawName: arg, value, inlineValue: false };
      } else {
        // --name=VALUE
        const equals = arg.indexOf("=");
        const name = arg.slice(2, equals);
        token = {
          name,
          rawName: `--${name}`,
          value: arg.slice(equals + 1),
          inlineValue: true,
        };
      }
    } else {
      positionals.push(arg);
      continue;
    }
    check(token, options);
    store(token, options, values);
  }
  return { values, positionals };
}

/** Node's strict checks of one option, in node's order, with its messages. */
function check(token: OptionToken, options: OptionTable): void {
  const spec = own(options, token.name);
  if (spec === undefined) {
    throw new ArgsError(
      `Unknown option '${token.rawName}'. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- ${
        JSON.stringify(token.rawName)
      }`,
    );
  }
  const shortAndLong = `${spec.short ? `-${spec.short}, ` : ""}--${token.name}`;
  if (spec.type === "string" && typeof token.value !== "string") {
    throw new ArgsError(`Option '${shortAndLong} <value>' argument missing`);
  }
  if (spec.type === "boolean" && token.value !== undefined) {
    throw new ArgsError(`Option '${shortAndLong}' does not take an argument`);
  }
  const value = token.value;
  if (
    !token.inlineValue && value !== undefined && value.length > 1 &&
    value[0] === "-"
  ) {
    const example = token.rawName.startsWith("--")
      ? `'${token.rawName}=-XYZ'`
      : `'--${token.name}=-XYZ' or '${token.rawName}-XYZ'`;
    throw new ArgsError(
      `Option '${token.rawName}' argument is ambiguous.\n` +
        `Did you forget to specify the option argument for '${token.rawName}'?\n` +
        `To specify an option argument starting with a dash use ${example}.`,
    );
  }
}

function store(
  token: OptionToken,
  options: OptionTable,
  values: OptionValues,
): void {
  if (token.name === "__proto__") return;
  const value = token.value ?? true;
  if (options[token.name].multiple) {
    const list = values[token.name];
    if (Array.isArray(list)) list.push(value);
    else values[token.name] = [value];
  } else {
    values[token.name] = value;
  }
}
