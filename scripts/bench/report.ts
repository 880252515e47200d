/**
 * The benchmark's report: a Markdown table of et beside ssh (and ET 7.0
 * where it ran), one row per figure with the goal it is held to and
 * whether it is met, and an SVG chart of the same ratios. A full run writes
 * both into `docs/` (the table between two markers in BENCHMARKS.md).
 *
 * @module
 */

import type { ClientKind } from "./e2e.ts";
import { fixed } from "./util.ts";

/** A figure per client kind (missing where not measured). */
export type PerKind = Partial<Record<ClientKind, number>>;

/** Every number the table and the chart show. */
export interface Figures {
  echoP50: PerKind;
  echoP99: PerKind;
  bulk: PerKind;
  cpuClient: PerKind;
  cpuServer: PerKind;
  /** Start to prompt with no host running (a cold start). */
  connectFirst: PerKind;
  /** Start to prompt served by a host that lingered after a session. */
  connectWarm: PerKind;
  /** The cold start's, as a user with /etc/skel's rc files. */
  connectStockRc: PerKind;
  /** The warm host's, as a user with /etc/skel's rc files. */
  connectStockRcWarm: PerKind;
  connectSecond: PerKind;
  idleCpu: PerKind;
  memoryOne: PerKind;
  memoryTwo: PerKind;
  memoryMany: PerKind;
  manySessions?: number;
  daemonIdleMb?: number;
  aggregate?: { one: number; many: number; sessions: number; ssh?: number };
  resume?: { refused: number; blackholed: number; cut: number };
  /** Keystroke to glyph at 100 ms each way, by client ("et", …). */
  seen?: Record<string, { p50: number; p99: number }>;
  /** Bulk cost of prediction's screen model on a fast link. */
  modelCost?: { slowerPercent: number; cpuPercent: number };
  /** `et -t` and `ssh -L` MB/s, 200 MB pushed through each. */
  tunnel?: { et: number; ssh: number };
}

/** An empty set of figures, filled in as measurements finish. */
export function emptyFigures(): Figures {
  return {
    echoP50: {},
    echoP99: {},
    bulk: {},
    cpuClient: {},
    cpuServer: {},
    connectFirst: {},
    connectWarm: {},
    connectStockRc: {},
    connectStockRcWarm: {},
    connectSecond: {},
    idleCpu: {},
    memoryOne: {},
    memoryTwo: {},
    memoryMany: {},
  };
}

interface Row {
  what: string;
  unit: string;
  values: PerKind;
  digits: number;
  goal: string;
  /** true / false against the goal; undefined when it cannot be judged. */
  met?: boolean;
  /** The command that reproduces the row. */
  command: string;
}

const BENCH = "`deno task bench`";

function rows(f: Figures): Row[] {
  const ssh = (v: PerKind) => v.ssh;
  const et = (v: PerKind) => v.et;
  const both = (v: PerKind) => et(v) !== undefined && ssh(v) !== undefined;
  const perExtra = (k: ClientKind) => {
    const one = f.memoryOne[k];
    const many = f.memoryMany[k];
    if (one === undefined || many === undefined || !f.manySessions) {
      return undefined;
    }
    return (many - one) / (f.manySessions - 1);
  };
  /** A start-to-prompt row, held to ssh + 150 ms. */
  const connectRow = (what: string, values: PerKind): Row => ({
    what,
    unit: "ms",
    values,
    digits: 0,
    goal: "≤ ssh + 150 ms",
    met: both(values) ? et(values)! <= ssh(values)! + 150 : undefined,
    command: BENCH,
  });
  const extra: PerKind = {};
  for (const k of ["et", "ssh", "et-cpp"] as ClientKind[]) {
    const value = perExtra(k);
    if (value !== undefined) extra[k] = value;
  }
  return [
    {
      what: "keystroke echo p50",
      unit: "ms",
      values: f.echoP50,
      digits: 2,
      goal: "≤ ssh + 0.3 ms",
      met: both(f.echoP50)
        ? et(f.echoP50)! <= ssh(f.echoP50)! + 0.3
        : undefined,
      command: BENCH,
    },
    {
      what: "keystroke echo p99",
      unit: "ms",
      values: f.echoP99,
      digits: 2,
      goal: "≤ ssh + 1 ms",
      met: both(f.echoP99) ? et(f.echoP99)! <= ssh(f.echoP99)! + 1 : undefined,
      command: BENCH,
    },
    {
      what: "bulk output (`cat`)",
      unit: "MB/s",
      values: f.bulk,
      digits: 1,
      goal: "≥ 1.0× ssh",
      met: both(f.bulk) ? et(f.bulk)! >= ssh(f.bulk)! : undefined,
      command: BENCH,
    },
    {
      what: "tunnel throughput (`-t` / `ssh -L`)",
      unit: "MB/s",
      values: f.tunnel ?? {},
      digits: 1,
      goal: "—",
      command: "`deno task bench --tunnel`",
    },
    {
      what: "client CPU per 100 MB",
      unit: "s",
      values: f.cpuClient,
      digits: 2,
      goal: "≤ 1.2× ssh",
      met: both(f.cpuClient)
        ? et(f.cpuClient)! <= 1.2 * ssh(f.cpuClient)!
        : undefined,
      command: BENCH,
    },
    {
      what: "server CPU per 100 MB",
      unit: "s",
      values: f.cpuServer,
      digits: 2,
      goal: "—",
      command: BENCH,
    },
    connectRow("start to prompt, cold host (none running)", f.connectFirst),
    connectRow(
      "start to prompt, warm host (the last session ended, its host lingered)",
      f.connectWarm,
    ),
    connectRow(
      "start to prompt, stock rc files, cold host",
      f.connectStockRc,
    ),
    connectRow(
      "start to prompt, stock rc files, warm host",
      f.connectStockRcWarm,
    ),
    {
      what: "start to prompt, with a session open",
      unit: "ms",
      values: f.connectSecond,
      digits: 0,
      // Faster by more than noise: a tenth of the first's time.
      goal: "≥ 10 % faster than the first",
      met: et(f.connectSecond) !== undefined && et(f.connectFirst) !== undefined
        ? et(f.connectSecond)! <= 0.9 * et(f.connectFirst)!
        : undefined,
      command: BENCH,
    },
    {
      what: "idle CPU (client + server, one session, 30 s after 20 s quiet)",
      unit: "%",
      values: f.idleCpu,
      digits: 2,
      goal: "0 % (≤ 0.1 %)",
      met: et(f.idleCpu) !== undefined ? et(f.idleCpu)! <= 0.1 : undefined,
      command: BENCH,
    },
    {
      what: "server memory (private), 1 session",
      unit: "MB",
      values: f.memoryOne,
      digits: 1,
      goal: "—",
      command: BENCH,
    },
    {
      what: "server memory (private), 2 sessions",
      unit: "MB",
      values: f.memoryTwo,
      digits: 1,
      goal: "—",
      command: BENCH,
    },
    {
      what: `server memory (private), ${f.manySessions ?? "n"} sessions`,
      unit: "MB",
      values: f.memoryMany,
      digits: 1,
      goal: "—",
      command: BENCH,
    },
    {
      what: "server memory per extra session",
      unit: "MB",
      values: extra,
      digits: 1,
      goal: "≤ 10 MB",
      met: et(extra) !== undefined ? et(extra)! <= 10 : undefined,
      command: BENCH,
    },
  ];
}

function cell(value: number | undefined, digits: number, unit: string) {
  return value === undefined ? "—" : `${fixed(value, digits)} ${unit}`;
}

function verdict(met: boolean | undefined): string {
  return met === undefined ? "—" : met ? "met" : "not met";
}

/** The table as Markdown, with a line per figure outside the per-kind rows. */
export function markdownTable(f: Figures, kinds: ClientKind[]): string {
  const label: Record<ClientKind, string> = {
    et: "et",
    ssh: "ssh -tt",
    "et-cpp": "ET 7.0",
  };
  const lines = [
    `| what | ${kinds.map((k) => label[k]).join(" | ")} | goal | verdict |`,
    `| --- | ${kinds.map(() => "---").join(" | ")} | --- | --- |`,
  ];
  for (const row of rows(f)) {
    lines.push(
      `| ${row.what} | ${
        kinds.map((k) => cell(row.values[k], row.digits, row.unit)).join(" | ")
      } | ${row.goal} | ${verdict(row.met)} |`,
    );
  }
  const notes: string[] = [];
  if (f.daemonIdleMb !== undefined) {
    notes.push(
      `- et daemon, idle: ${fixed(f.daemonIdleMb)} MB private (goal ≤ 40 MB: ${
        verdict(f.daemonIdleMb <= 40)
      }).`,
    );
  }
  if (f.aggregate) {
    const ratio = f.aggregate.many / f.aggregate.one;
    notes.push(
      `- ${f.aggregate.sessions} et sessions streaming at once: ${
        fixed(f.aggregate.many)
      } MB/s together, one alone ${
        fixed(f.aggregate.one)
      } MB/s (median of three runs; ${fixed(ratio, 2)}×; goal ≥ 0.8×: ${
        verdict(ratio >= 0.8)
      })${
        f.aggregate.ssh === undefined
          ? ""
          : `; ${f.aggregate.sessions} ssh sessions: ${
            fixed(f.aggregate.ssh)
          } MB/s together`
      }.`,
    );
  }
  if (f.seen) {
    notes.push(
      `- keystroke to glyph at 100 ms each way (as the person sees it): ${
        Object.entries(f.seen).map(([kind, v]) =>
          `${kind} p50 ${fixed(v.p50, 1)} ms p99 ${fixed(v.p99, 1)} ms`
        ).join(", ")
      }.`,
    );
  }
  if (f.modelCost) {
    notes.push(
      `- prediction's model on a fast link: ${
        fixed(f.modelCost.slowerPercent, 1)
      } % less bulk throughput (goal ≤ 10 %: ${
        verdict(f.modelCost.slowerPercent <= 10)
      }), ${fixed(f.modelCost.cpuPercent, 0)} % more client CPU.`,
    );
  }
  if (f.resume) {
    notes.push(
      `- et resume after the path returns: ${
        fixed(f.resume.refused, 0)
      } ms after 2 s of refused connections, ${
        fixed(f.resume.blackholed, 0)
      } ms after an 8 s blackhole, ${fixed(f.resume.cut, 0)} ms after a cut.`,
    );
  }
  return [...lines, "", ...notes].join("\n");
}

/**
 * A horizontal bar chart of et's and ET 7.0's figures relative to ssh's
 * (ssh = 1, the dashed line), one group per row that has an ssh value;
 * for rows where less is better the bar is ssh / x, so longer is better
 * everywhere.
 */
export function svgChart(f: Figures, kinds: ClientKind[]): string {
  const lessIsBetter = new Set(["ms", "s", "%", "MB"]);
  const colors: Record<ClientKind, string> = {
    et: "#2b7bb9",
    ssh: "#888888",
    "et-cpp": "#d9822b",
  };
  const shown = rows(f).filter((row) =>
    row.values.ssh !== undefined && row.values.ssh > 0
  );
  const others = kinds.filter((k) => k !== "ssh");
  const barHeight = 14;
  const groupHeight = others.length * barHeight + 12;
  const left = 300;
  const width = 760;
  const scale = 160; // pixels for 1.0× ssh
  const top = 40;
  const height = top + shown.length * groupHeight + 40;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">et and ET 7.0 relative to ssh (1.0 = ssh; longer is better)</text>`,
  ];
  shown.forEach((row, i) => {
    const y = top + i * groupHeight;
    parts.push(
      `<text x="${left - 8}" y="${
        y + groupHeight / 2
      }" text-anchor="end">${row.what}</text>`,
    );
    others.forEach((kind, j) => {
      const value = row.values[kind];
      if (value === undefined || value <= 0) return;
      const ratio = lessIsBetter.has(row.unit)
        ? row.values.ssh! / value
        : value / row.values.ssh!;
      const w = Math.min(ratio, 2.5) * scale;
      const by = y + j * barHeight;
      parts.push(
        `<rect x="${left}" y="${by}" width="${w.toFixed(1)}" height="${
          barHeight - 2
        }" fill="${colors[kind]}"/>`,
        `<text x="${left + w + 4}" y="${by + barHeight - 4}">${
          fixed(ratio, 2)
        }× (${fixed(value, row.digits)} ${row.unit})</text>`,
      );
    });
  });
  const bottom = top + shown.length * groupHeight;
  parts.push(
    `<line x1="${left + scale}" y1="${top - 6}" x2="${
      left + scale
    }" y2="${bottom}" stroke="#444" stroke-dasharray="4 3"/>`,
    `<text x="${left + scale}" y="${
      bottom + 14
    }" text-anchor="middle">ssh</text>`,
  );
  others.forEach((kind, j) => {
    parts.push(
      `<rect x="${10 + j * 120}" y="${
        bottom + 22
      }" width="12" height="12" fill="${colors[kind]}"/>`,
      `<text x="${26 + j * 120}" y="${bottom + 32}">${
        kind === "et" ? "et" : "ET 7.0"
      }</text>`,
    );
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}

const BEGIN = "<!-- bench:begin (written by deno task bench) -->";
const END = "<!-- bench:end -->";

/**
 * Replaces the table between the markers in `docs/BENCHMARKS.md` (adding
 * the section when absent) and writes `docs/bench.svg`.
 */
export async function writeReport(
  docsDir: string,
  f: Figures,
  kinds: ClientKind[],
  header: string,
): Promise<void> {
  const path = `${docsDir}/BENCHMARKS.md`;
  const text = await Deno.readTextFile(path);
  const block = [
    BEGIN,
    "",
    header,
    "",
    markdownTable(f, kinds),
    "",
    "![et and ET 7.0 relative to ssh](bench.svg)",
    "",
    END,
  ].join("\n");
  const start = text.indexOf(BEGIN);
  const end = text.indexOf(END);
  const updated = start >= 0 && end > start
    ? text.slice(0, start) + block + text.slice(end + END.length)
    : text.replace(/\n## /, `\n## Latest run\n\n${block}\n\n## `);
  await Deno.writeTextFile(path, updated);
  const chart = `${docsDir}/bench.svg`;
  await Deno.writeTextFile(chart, svgChart(f, kinds));
  // As `deno fmt` wants them, so `deno task check` stays clean after a run.
  const fmt = await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", path, chart],
  }).output();
  if (!fmt.success) throw new Error(new TextDecoder().decode(fmt.stderr));
}
