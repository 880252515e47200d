/**
 * Whether `et` can load where there is no libc to open (the Windows
 * client): a static check over the module graph `deno info --json main.ts`
 * reports, with each module parsed by Deno's own parser (through a lint
 * plugin run by `Deno.lint.runPlugin`), and a run of the whole graph with
 * FFI denied.
 *
 * Static rules, for every module of ours that `main.ts` reaches:
 * - `Deno.dlopen` is called in `src/platform/libc.ts` only, inside its
 *   `openLibc` (and, for the optional OpenSSL that seals packets, in
 *   `src/transport/openssl_gcm.ts`'s `openLibcrypto`),
 *   in the `case "linux"` or `case "darwin"` arm of a switch
 *   on the system's name whose `default` throws NotSupported;
 * - no FFI is touched while modules load: no call of `Deno.dlopen`,
 *   `Deno.Unsafe*`, `libc()`, `errno()` or `closeQuietly()` runs at module
 *   level (outside every function, or in one called on the spot).
 */

import assert from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

interface GraphModule {
  specifier: string;
  local?: string;
  dependencies?: Array<{ code?: { specifier: string } }>;
}

/** Our modules reached from `entry`, as absolute paths. */
async function moduleGraph(entry: string): Promise<GraphModule[]> {
  const { success, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(success, new TextDecoder().decode(stderr));
  const info = JSON.parse(new TextDecoder().decode(stdout)) as {
    modules: GraphModule[];
  };
  return info.modules.filter((m) =>
    m.specifier.startsWith("file://") && m.local
  );
}

/** What the plugin reports: a rule broken, where. */
interface Finding {
  rule: "dlopen-outside-guard" | "ffi-at-load";
  text: string;
  line: number;
}

const FFI_CALLEES =
  /^(Deno\.dlopen|Deno\.Unsafe\w*(\.\w+)?|libc|errno|closeQuietly)$/;

// deno-lint-ignore no-explicit-any
type Node = any;

const FUNCTION_TYPES = new Set([
  "FunctionDeclaration",
  "FunctionExpression",
  "ArrowFunctionExpression",
]);

/**
 * True when `node` runs while its module loads: no enclosing function, or
 * only functions called where they are defined (`(() => ...)()`), and not
 * inside an instance field of a class (run on construction).
 */
function runsAtLoad(ancestors: Node[]): boolean {
  for (let i = ancestors.length - 1; i >= 0; i--) {
    const node = ancestors[i];
    if (node.type === "PropertyDefinition" && !node.static) return false;
    if (!FUNCTION_TYPES.has(node.type)) continue;
    const parent = ancestors[i - 1];
    const calledOnTheSpot = parent?.type === "CallExpression" &&
      parent.callee === node;
    if (!calledOnTheSpot) return false;
  }
  return true;
}

/** The name a function was declared or assigned under, if any. */
function functionName(node: Node): string | undefined {
  return node.id?.name;
}

/**
 * True when the `Deno.dlopen` call with these ancestors sits in function
 * `openLibc`, in a `case "linux"` or `case "darwin"` of a switch on `os`
 * that has a `default` throwing `Deno.errors.NotSupported`.
 */
function guardedDlopen(
  ancestors: Node[],
  source: string,
  opener = "openLibc",
): boolean {
  const fn = [...ancestors].reverse().find((n) => FUNCTION_TYPES.has(n.type));
  if (functionName(fn) !== opener) return false;
  const caseIndex = ancestors.findLastIndex((n) => n.type === "SwitchCase");
  if (caseIndex < 0 || ancestors.indexOf(fn) > caseIndex) return false;
  const switchCase = ancestors[caseIndex];
  const switchStatement = ancestors[caseIndex - 1];
  if (
    switchStatement?.type !== "SwitchStatement" ||
    switchStatement.discriminant.type !== "Identifier" ||
    switchStatement.discriminant.name !== "os"
  ) return false;
  if (!["linux", "darwin"].includes(switchCase.test?.value)) return false;
  const fallback = switchStatement.cases.find((c: Node) => c.test === null);
  if (fallback === undefined) return false;
  const text = source.slice(fallback.range[0], fallback.range[1]);
  return /throw new Deno\.errors\.NotSupported\(/.test(text);
}

function findings(file: string, source: string): Finding[] {
  const found: Finding[] = [];
  const lineOf = (offset: number) => source.slice(0, offset).split("\n").length;
  const plugin: Deno.lint.Plugin = {
    name: "ffi-graph",
    rules: {
      "ffi-guard": {
        create(context) {
          const visit = (node: Node) => {
            const callee = context.sourceCode.getText(node.callee);
            if (!FFI_CALLEES.test(callee)) return;
            const ancestors = context.sourceCode.getAncestors(node);
            const text = context.sourceCode.getText(node).split("\n")[0];
            const line = lineOf(node.range[0]);
            if (runsAtLoad(ancestors)) {
              found.push({ rule: "ffi-at-load", text, line });
            }
            if (
              callee === "Deno.dlopen" &&
              !(file === "src/platform/libc.ts" &&
                guardedDlopen(ancestors, source)) &&
              !(file === "src/transport/openssl_gcm.ts" &&
                guardedDlopen(ancestors, source, "openLibcrypto"))
            ) {
              found.push({ rule: "dlopen-outside-guard", text, line });
            }
          };
          return { CallExpression: visit, NewExpression: visit };
        },
      },
    },
  };
  Deno.lint.runPlugin(plugin, file, source);
  return found;
}

Deno.test("the checker itself: it flags what it should and passes what it should", () => {
  const flagged = (source: string, file = "src/x.ts") =>
    findings(file, source).map((f) => f.rule);
  assert.deepEqual(flagged("const c = libc();"), ["ffi-at-load"]);
  assert.deepEqual(flagged("(() => { libc(); })();"), ["ffi-at-load"]);
  assert.deepEqual(flagged("class A { static x = errno(); }"), [
    "ffi-at-load",
  ]);
  assert.deepEqual(flagged("export function f() { return libc(); }"), []);
  assert.deepEqual(flagged("class A { x = libc(); m() { errno(); } }"), []);
  assert.deepEqual(
    flagged("function g() { return Deno.dlopen('x', {}); }"),
    ["dlopen-outside-guard"],
  );
  const guarded = `function openLibc(os) {
    switch (os) {
      case "linux": return Deno.dlopen("libc.so.6", {});
      default: throw new Deno.errors.NotSupported("no");
    }
  }`;
  assert.deepEqual(flagged(guarded, "src/platform/libc.ts"), []);
  assert.deepEqual(flagged(guarded, "src/other.ts"), [
    "dlopen-outside-guard",
  ]);
  assert.deepEqual(
    flagged(guarded.replace("default:", "case 'x':"), "src/platform/libc.ts"),
    ["dlopen-outside-guard"],
  );
  assert.deepEqual(
    flagged(guarded.replace('"linux"', '"windows"'), "src/platform/libc.ts"),
    ["dlopen-outside-guard"],
  );
  const crypto = guarded.replace("openLibc", "openLibcrypto");
  assert.deepEqual(flagged(crypto, "src/transport/openssl_gcm.ts"), []);
  assert.deepEqual(flagged(crypto, "src/platform/libc.ts"), [
    "dlopen-outside-guard",
  ]);
  assert.deepEqual(flagged(guarded, "src/transport/openssl_gcm.ts"), [
    "dlopen-outside-guard",
  ]);
});

Deno.test("FFI is opened only behind the OS switch, and never while modules load", async () => {
  const modules = await moduleGraph("main.ts");
  const files = modules.map((m) => relative(ROOT, m.local!));
  // The graph is the whole program: every role, the platform layer too.
  for (
    const expected of [
      "src/cli/main.ts",
      "src/client/local_terminal.ts",
      "src/platform/libc.ts",
      "src/platform/socket.ts",
      "src/platform/reactor.ts",
      "src/pty/pty.ts",
    ]
  ) assert.ok(files.includes(expected), `${expected} in the graph`);

  const problems: string[] = [];
  let dlopens = 0;
  for (const module of modules) {
    const file = relative(ROOT, module.local!);
    const source = await Deno.readTextFile(module.local!);
    for (const finding of findings(file, source)) {
      problems.push(
        `${file}:${finding.line}: ${finding.rule}: ${finding.text}`,
      );
    }
    if (file === "src/platform/libc.ts") {
      dlopens = source.match(/Deno\.dlopen\(/g)?.length ?? 0;
    }
  }
  assert.deepEqual(problems, []);
  assert.equal(dlopens, 2, "one dlopen per supported system");
});

Deno.test("the client's graph reaches in src/platform only the libc binding, its tables, its standard output, the share socket's modules and the process tree", async () => {
  const modules = await moduleGraph("src/client/mod.ts");
  const platform = modules.map((m) => relative(ROOT, m.local!))
    .filter((file) => file.startsWith("src/platform/")).sort();
  // The socket modules come in (imported lazily) only for session
  // sharing's Unix socket: its accept loop and the caller's uid
  // (SO_PEERCRED), src/client/session_share.ts. std_output.ts writes
  // stdout and stderr (sockets among them: it needs socket.ts too).
  // process_tree.ts (no FFI) finds a wrapper's ssh to end it.
  assert.deepEqual(platform, [
    "src/platform/accept_loop.ts",
    "src/platform/libc.ts",
    "src/platform/libc_constants.ts",
    "src/platform/process_tree.ts",
    "src/platform/reactor.ts",
    "src/platform/socket.ts",
    "src/platform/socket_pipe.ts",
    "src/platform/std_output.ts",
    "src/platform/termios_layout.ts",
  ]);
});

Deno.test("the whole program loads with FFI denied", async () => {
  const script = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    const url = (path: string) =>
      new URL(`../../${path}`, import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `
      await import(${JSON.stringify(url("main.ts"))});
      const { LocalTerminal } = await import(${
        JSON.stringify(
          url("src/client/mod.ts").replace(
            "mod.ts",
            "local_terminal.ts",
          ),
        )
      });
      const local = new LocalTerminal({ os: "windows" });
      local.enterRaw();
      local.restore();
      local.size();
      console.log("loaded");
      `,
    );
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--deny-ffi", script],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    assert.equal(new TextDecoder().decode(stdout), "loaded\n");
  } finally {
    await Deno.remove(script);
  }
});
