/**
 * A process's descendants, for ending a whole tree: a wrapper around ssh
 * (a script that pipes into ssh, a tool that runs it as a child) does not
 * pass a signal on, so ending only the process we started can leave the
 * real ssh running.
 *
 * @module
 */

/**
 * Pids of the live descendants of `pid` (its children, theirs, …): from
 * /proc on Linux, from `ps` elsewhere; none where neither can be read
 * (Windows). Processes come and go while it looks: a snapshot.
 */
export async function descendantsOf(pid: number): Promise<number[]> {
  const parents = Deno.build.os === "linux"
    ? await parentsFromProc()
    : Deno.build.os === "windows"
    ? new Map<number, number>()
    : await parentsFromPs();
  const children = new Map<number, number[]>();
  for (const [child, parent] of parents) {
    const siblings = children.get(parent);
    if (siblings) siblings.push(child);
    else children.set(parent, [child]);
  }
  // Breadth first; a pid seen twice (a snapshot taken while processes
  // come and go) is walked once.
  const found = new Set<number>([pid]);
  for (const parent of found) {
    for (const child of children.get(parent) ?? []) found.add(child);
  }
  found.delete(pid);
  return [...found];
}

/**
 * The file name of the program `pid` runs (`ssh` for /usr/bin/ssh, `dash`
 * for a script run by /bin/sh), from /proc/<pid>/exe on Linux; null
 * elsewhere or when it cannot be read.
 */
export function executableName(pid: number): string | null {
  if (Deno.build.os !== "linux") return null;
  try {
    return Deno.readLinkSync(`/proc/${pid}/exe`).split("/").pop() ?? null;
  } catch {
    return null;
  }
}

/** pid → parent pid of every process, from /proc/<pid>/stat. */
async function parentsFromProc(): Promise<Map<number, number>> {
  const parents = new Map<number, number>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      // The command name (in parentheses) may hold spaces: the fields after
      // the last ")" are state, then ppid.
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(Number(entry.name), ppid);
    } catch { /* gone meanwhile */ }
  }
  return parents;
}

/** pid → parent pid of every process, from `ps -A -o pid=,ppid=`. */
async function parentsFromPs(): Promise<Map<number, number>> {
  const parents = new Map<number, number>();
  try {
    const { stdout } = await new Deno.Command("ps", {
      args: ["-A", "-o", "pid=,ppid="],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    for (const line of new TextDecoder().decode(stdout).split("\n")) {
      const [pid, ppid] = line.trim().split(/\s+/).map(Number);
      if (Number.isSafeInteger(pid) && Number.isSafeInteger(ppid)) {
        parents.set(pid, ppid);
      }
    }
  } catch { /* no ps: no descendants known */ }
  return parents;
}
