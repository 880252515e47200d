/**
 * Sums the V8 CPU profiles of a benchmark or test run by role, to say
 * where et's time goes (#10: "profile each role before changing
 * anything").
 *
 *     ET_PROFILE_DIR=/tmp/prof deno task bench --only aggregate
 *     deno run -A scripts/bench/profile_summary.ts /tmp/prof [--top 25]
 *
 * Each `.cpuprofile` is one et process, sorted into a role by the modules
 * it ran: `host` (the per-user host), `client`, or `other` (daemon,
 * launchers that exited). Per role: self time by bucket (waiting, the
 * headless xterm, the prediction model, GC, the rest), the functions
 * with the most self time, and which of our functions called into xterm.
 * Times are wall-clock samples of the main thread: a native call that
 * sleeps (ppoll) counts as that function's time, hence the "wait" bucket.
 * A process writes its profile only when it exits by itself: a host the
 * test world kills at its end leaves none.
 *
 * @module
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

type Role = "client" | "host" | "other";

/** Functions whose samples are sleep, not work. */
const WAITS = new Set(["(idle)", "#roomSoon", "#waitForRoom"]);
const MODEL_FILES = new Set([
  "plain_text.ts",
  "screen_model.ts",
  "predictive_echo.ts",
  "echo_predictor.ts",
  "painter.ts",
]);

function baseName(url: string): string {
  return url.split("/").pop() ?? url;
}

function label(frame: CallFrame): string {
  return `${frame.functionName || "(anonymous)"} ${baseName(frame.url)}:${
    frame.lineNumber + 1
  }`;
}

function roleOf(profile: Profile): Role {
  const urls = new Set(
    profile.nodes.map((node) => baseName(node.callFrame.url)),
  );
  if (urls.has("user_host.ts") || urls.has("hosted_session.ts")) return "host";
  if (urls.has("client.ts") && urls.has("output_copy.ts")) return "client";
  return "other";
}

function bucketOf(frame: CallFrame): string {
  const file = baseName(frame.url);
  if (WAITS.has(frame.functionName)) return "wait";
  if (file.startsWith("xterm")) return "xterm";
  if (MODEL_FILES.has(file)) return "model";
  if (frame.functionName === "(garbage collector)") return "gc";
  return "rest";
}

/** Per role: sums by bucket, by function, and xterm time by our caller. */
class RoleSums {
  profiles = 0;
  buckets = new Map<string, number>();
  functions = new Map<string, number>();
  xtermCallers = new Map<string, number>();
}

function add(map: Map<string, number>, key: string, micros: number): void {
  map.set(key, (map.get(key) ?? 0) + micros);
}

function addProfile(sums: RoleSums, profile: Profile): void {
  sums.profiles++;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) {
    for (const child of node.children ?? []) parentOf.set(child, node.id);
  }
  // timeDeltas[i + 1] is the time from sample i to the next.
  const selfTime = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    const micros = profile.timeDeltas[i + 1] ?? 0;
    selfTime.set(id, (selfTime.get(id) ?? 0) + micros);
  });
  for (const [id, micros] of selfTime) {
    const frame = byId.get(id)!.callFrame;
    add(sums.buckets, bucketOf(frame), micros);
    add(sums.functions, label(frame), micros);
    if (bucketOf(frame) !== "xterm") continue;
    // The two nearest callers outside xterm (the first is always the
    // model's parse; the second says why it parsed).
    const callers: string[] = [];
    for (let at = parentOf.get(id); at !== undefined && callers.length < 2;) {
      const caller = byId.get(at)!.callFrame;
      if (caller.url && !baseName(caller.url).startsWith("xterm")) {
        callers.push(label(caller));
      }
      at = parentOf.get(at);
    }
    add(sums.xtermCallers, callers.join(" < "), micros);
  }
}

function top(map: Map<string, number>, count: number): [string, number][] {
  return [...map].sort((a, b) => b[1] - a[1]).slice(0, count);
}

function ms(micros: number): string {
  return (micros / 1000).toFixed(1).padStart(9);
}

if (import.meta.main) {
  const dir = Deno.args.find((arg) => !arg.startsWith("--"));
  const topAt = Deno.args.indexOf("--top");
  const count = topAt >= 0 ? Number(Deno.args[topAt + 1]) : 20;
  if (!dir || !Number.isInteger(count) || count <= 0) {
    console.error(
      "usage: profile_summary.ts <dir of .cpuprofile files> [--top N]",
    );
    Deno.exit(2);
  }
  const roles = new Map<Role, RoleSums>();
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.name.endsWith(".cpuprofile")) continue;
    const profile = JSON.parse(
      await Deno.readTextFile(`${dir}/${entry.name}`),
    ) as Profile;
    const role = roleOf(profile);
    if (!roles.has(role)) roles.set(role, new RoleSums());
    addProfile(roles.get(role)!, profile);
  }
  for (const [role, sums] of roles) {
    const work = [...sums.buckets].filter(([bucket]) => bucket !== "wait")
      .reduce((sum, [, micros]) => sum + micros, 0);
    console.log(
      `\n${role}: ${sums.profiles} profiles, ${
        ms(work).trim()
      } ms sampled outside waits`,
    );
    for (const [bucket, micros] of top(sums.buckets, 10)) {
      console.log(`${ms(micros)} ms  ${bucket}`);
    }
    console.log("  most self time:");
    const working = [...sums.functions].filter(([name]) =>
      !WAITS.has(name.split(" ")[0])
    );
    for (const [name, micros] of top(new Map(working), count)) {
      console.log(`${ms(micros)} ms  ${name}`);
    }
    if (sums.xtermCallers.size > 0) {
      console.log("  xterm's time, by the caller outside it:");
      for (const [name, micros] of top(sums.xtermCallers, 8)) {
        console.log(`${ms(micros)} ms  ${name}`);
      }
    }
  }
}
