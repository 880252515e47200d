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
 *
 * A descendant whose process name `endsOwnChildren` accepts is listed but
 * not walked into: it ends its own children when signalled. ssh is one: it
 * says goodbye to the server through its ProxyCommand (an `ssh -W` for a
 * ProxyJump) and then ends it; a proxy signalled beside it may die first,
 * and ssh then prints "client_loop: send disconnect: Broken pipe".
 */
export async function descendantsOf(
  pid: number,
  endsOwnChildren: (name: string) => boolean = () => false,
): Promise<number[]> {
  const table = Deno.build.os === "linux"
    ? await processesFromProc()
    : Deno.build.os === "windows"
    ? new Map<number, ProcessEntry>()
    : await processesFromPs();
  const children = new Map<number, number[]>();
  for (const [child, { parent }] of table) {
    const siblings = children.get(parent);
    if (siblings) siblings.push(child);
    else children.set(parent, [child]);
  }
  // Breadth first; a pid seen twice (a snapshot taken while processes
  // come and go) is walked once.
  const found = new Set<number>([pid]);
  for (const parent of found) {
    if (parent !== pid && endsOwnChildren(table.get(parent)?.name ?? "")) {
      continue;
    }
    for (const child of children.get(parent) ?? []) found.add(child);
  }
  found.delete(pid);
  return [...found];
}

/** What the walk needs of one process. */
interface ProcessEntry {
  parent: number;
  /** The process name: the kernel's (at most 15 bytes) or ps's, no path. */
  name: string;
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

/** Every process's parent and name, from /proc/<pid>/stat. */
async function processesFromProc(): Promise<Map<number, ProcessEntry>> {
  const table = new Map<number, ProcessEntry>();
  for await (const entry of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = await Deno.readTextFile(`/proc/${entry.name}/stat`);
      // "pid (name) state ppid …": the name may hold spaces and ")", so it
      // ends at the last ")".
      const close = stat.lastIndexOf(")");
      const parent = Number(stat.slice(close + 2).split(" ")[1]);
      const name = stat.slice(stat.indexOf("(") + 1, close);
      table.set(Number(entry.name), { parent, name });
    } catch { /* gone meanwhile */ }
  }
  return table;
}

/** Every process's parent and name, from `ps -A -o pid=,ppid=,comm=`. */
async function processesFromPs(): Promise<Map<number, ProcessEntry>> {
  const table = new Map<number, ProcessEntry>();
  try {
    const { stdout } = await new Deno.Command("ps", {
      args: ["-A", "-o", "pid=,ppid=,comm="],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    for (const line of new TextDecoder().decode(stdout).split("\n")) {
      const match = line.trim().match(/^(\d+)\s+(\d+)\s+(.*)$/);
      if (!match) continue;
      table.set(Number(match[1]), {
        parent: Number(match[2]),
        name: match[3].split("/").pop() ?? "",
      });
    }
  } catch { /* no ps: no descendants known */ }
  return table;
}
