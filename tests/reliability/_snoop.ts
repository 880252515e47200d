/**
 * Test child for tests/reliability/secrets_test.ts: looks for secrets
 * wherever the user it runs as can read — every process's command line and
 * environment, and every regular file under the given roots — and prints
 * one JSON line: where each secret was found, and how much it could and
 * could not read. The secrets come on stdin (never on a command line,
 * which anyone could read), as JSON: `{"needles":{"name":"<base64>"},
 * "roots":["/tmp",...],"skipPids":[...]}`.
 *
 * With `"collectMs":N` instead it watches for secrets not known yet: for N
 * ms it reads every process's command line and environment every few ms
 * (short-lived processes included, such as the launcher) and prints every
 * distinct one it could read, for the caller to search once it knows.
 *
 * @module
 */

import { Buffer } from "node:buffer";

interface Request {
  needles: Record<string, string>;
  roots: string[];
  /** Processes not to look at (none of ours hold a secret in argv/env). */
  skipPids?: number[];
  /** Paths not to walk into (files of the machine, not of the test). */
  skipPrefixes?: string[];
  /** Collect command lines and environments for this long instead. */
  collectMs?: number;
  /**
   * Skip files whose status last changed before this time (ms since the
   * epoch): a secret made after it cannot be in them, since every write
   * sets a file's ctime to now and nobody (root included) can set it back
   * short of changing the clock. Old files unrelated to the test (other
   * runs' data in /tmp) then cost a stat, not a read.
   */
  changedSinceMs?: number;
}

/** A command line or environment a collecting run saw. */
export interface Seen {
  where: string;
  /** Its bytes, base64. */
  data: string;
}

/** One place a secret was found. */
export interface Hit {
  needle: string;
  where: string;
}

/** What a scan saw. */
export interface SnoopReport {
  uid: number;
  hits: Hit[];
  processes: number;
  cmdlinesRead: number;
  environsRead: number;
  environsDenied: number;
  filesRead: number;
  filesDenied: number;
  /** Files skipped as unchanged since `changedSinceMs`. */
  filesUnchanged: number;
  bytesRead: number;
}

/** Largest file read whole; bigger ones are read in their first bytes. */
const MAX_FILE_BYTES = 64 * 1024 * 1024;

const request: Request = JSON.parse(
  new TextDecoder().decode(
    await new Response(Deno.stdin.readable).arrayBuffer(),
  ),
);
const needles = Object.entries(request.needles).map(([name, b64]) => ({
  name,
  bytes: Buffer.from(b64, "base64"),
}));
const skip = new Set([Deno.pid, ...(request.skipPids ?? [])]);

if (request.collectMs !== undefined) {
  const seen = new Map<string, Seen>();
  let passes = 0;
  const until = performance.now() + request.collectMs;
  while (performance.now() < until) {
    passes++;
    for (const entry of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(entry.name) || skip.has(Number(entry.name))) continue;
      for (const file of ["cmdline", "environ"]) {
        const where = `/proc/${entry.name}/${file}`;
        try {
          const data = Deno.readFileSync(where);
          if (data.length === 0) continue;
          const text = Buffer.from(data).toString("base64");
          if (!seen.has(text)) seen.set(text, { where, data: text });
        } catch { /* gone, or not ours */ }
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  console.log(JSON.stringify({ passes, seen: [...seen.values()] }));
  Deno.exit(0);
}
const report: SnoopReport = {
  uid: Deno.uid() ?? -1,
  hits: [],
  processes: 0,
  cmdlinesRead: 0,
  environsRead: 0,
  environsDenied: 0,
  filesRead: 0,
  filesDenied: 0,
  filesUnchanged: 0,
  bytesRead: 0,
};

function search(data: Uint8Array, where: string) {
  const buffer = Buffer.from(data.buffer, data.byteOffset, data.length);
  for (const needle of needles) {
    if (buffer.indexOf(needle.bytes) >= 0) {
      report.hits.push({ needle: needle.name, where });
    }
  }
}

// Every process's command line and environment.
for (const entry of Deno.readDirSync("/proc")) {
  if (!/^\d+$/.test(entry.name) || skip.has(Number(entry.name))) continue;
  report.processes++;
  for (const file of ["cmdline", "environ"]) {
    const path = `/proc/${entry.name}/${file}`;
    try {
      const data = Deno.readFileSync(path);
      if (file === "cmdline") report.cmdlinesRead++;
      else report.environsRead++;
      let argv0 = "";
      try {
        argv0 = Deno.readTextFileSync(`/proc/${entry.name}/cmdline`)
          .split("\0").slice(0, 4).join(" ");
      } catch { /* gone */ }
      search(data, `${path} (${argv0})`);
    } catch {
      if (file === "environ") report.environsDenied++;
    }
  }
}

// Every regular file under the roots, symlinks not followed.
const seen = new Set<string>();
function walk(dir: string) {
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    report.filesDenied++;
    return;
  }
  for (const entry of entries) {
    const path = `${dir}/${entry.name}`;
    if (entry.isSymlink) continue;
    if (request.skipPrefixes?.some((prefix) => path.startsWith(prefix))) {
      continue;
    }
    if (entry.isDirectory) {
      walk(path);
      continue;
    }
    if (!entry.isFile || seen.has(path)) continue;
    seen.add(path);
    try {
      const file = Deno.openSync(path, { read: true });
      try {
        const info = file.statSync();
        if (
          request.changedSinceMs !== undefined && info.ctime !== null &&
          info.ctime.getTime() < request.changedSinceMs
        ) {
          report.filesUnchanged++;
          continue;
        }
        const size = Math.min(info.size, MAX_FILE_BYTES);
        const data = new Uint8Array(size);
        let at = 0;
        while (at < size) {
          const n = file.readSync(data.subarray(at));
          if (n === null) break;
          at += n;
        }
        report.filesRead++;
        report.bytesRead += at;
        search(data.subarray(0, at), path);
      } finally {
        file.close();
      }
    } catch {
      report.filesDenied++;
    }
  }
}
for (const root of request.roots) walk(root);

console.log(JSON.stringify(report));
Deno.exit(0);
