// The benchmark's results: the cases with their repetitions and medians, the issue's
// targets as ratios (ours / baseline), written as JSON and as a Markdown table.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { median } from "./measure.js";
import type { Run } from "./measure.js";

export interface CaseResult {
  id: string;
  label: string;
  /** The case this one is compared with in the table's ratio column. */
  baseline: string | null;
  seconds: number[];
  median: number | null;
  /** CPU seconds per run of the command and its children (pg_dump, compressor; not the server). */
  cpuSeconds: number[];
  medianCpu: number | null;
  /** Median CPU seconds of our node process alone. */
  medianOwnCpu: number | null;
  ownCpuSeconds: number[];
  peakRssKB: number | null;
  ownHwmKB: number | null;
  outputBytes: number | null;
  skipped: string | null;
  note: string | null;
}

export interface Target {
  name: string;
  ours: string;
  baseline: string | null;
  kind: "ratio" | "seconds" | "rssMB";
  limit: number;
  strict: boolean;
}

export interface TargetResult extends Target {
  value: number | null;
  met: boolean | null;
  /** The same ratio on CPU seconds (command + children), steadier on a busy machine. */
  cpuRatio: number | null;
}

export const TARGETS: Target[] = [
  { name: "backup full (.bz2) vs the seed's pg_dumpall | bzip2", ours: "ours_full_bz2", baseline: "seed_bz2", kind: "ratio", limit: 0.3, strict: false },
  { name: "backup full (.bz2) vs pg_dumpall | lbzip2", ours: "ours_full_bz2", baseline: "shell_lbzip2", kind: "ratio", limit: 1.05, strict: false },
  { name: "backup full (zstd) vs pg_dumpall | zstd, same level", ours: "ours_full_zstd", baseline: "shell_zstd", kind: "ratio", limit: 1.05, strict: false },
  { name: "backup full (zstd) vs pg_dumpall > /dev/null", ours: "ours_full_zstd", baseline: "floor", kind: "ratio", limit: 1.25, strict: false },
  { name: "encrypted zstd full (age) vs the plain zstd full", ours: "ours_full_zstd_age", baseline: "ours_full_zstd", kind: "ratio", limit: 1.1, strict: false },
  { name: "backup base (zstd) vs pg_basebackup -Ft -D - | zstd, same level", ours: "ours_base_zstd", baseline: "shell_basebackup_zstd", kind: "ratio", limit: 1.1, strict: false },
  { name: "backup base (zstd, age) vs pg_basebackup -Ft -D - | zstd | age -r", ours: "ours_base_zstd_age", baseline: "shell_basebackup_zstd_age", kind: "ratio", limit: 1.1, strict: false },
  { name: "incremental, no change, 50 databases", ours: "ours_incr_nochange50", baseline: null, kind: "seconds", limit: 1, strict: true },
  { name: "incremental, 1 of 20 changed vs bare pg_dump | compressor", ours: "ours_incr_one20", baseline: "pgdump_one", kind: "ratio", limit: 1.2, strict: false },
  { name: "restore-latest vs the seed's bunzip2 -c | psql", ours: "ours_restore", baseline: "seed_restore", kind: "ratio", limit: 0.75, strict: false },
  { name: "restore-latest (.bz2) vs lbzip2 -dc | psql", ours: "ours_restore", baseline: "stock_restore_bz2", kind: "ratio", limit: 1.2, strict: false },
  { name: "restore-latest (zstd) vs zstd -dc | psql", ours: "ours_restore_zstd", baseline: "stock_restore_zstd", kind: "ratio", limit: 1.2, strict: false },
  { name: "wal-receive lag, signed vs plain (median)", ours: "wal_lag_signed", baseline: "wal_lag_plain", kind: "ratio", limit: 1.1, strict: false },
  { name: "wal-receive lag, encrypted vs plain (median)", ours: "wal_lag_encrypted", baseline: "wal_lag_plain", kind: "ratio", limit: 1.1, strict: false },
  { name: "wal-receive lag, signed and encrypted vs plain (median)", ours: "wal_lag_signed_encrypted", baseline: "wal_lag_plain", kind: "ratio", limit: 1.1, strict: false },
  { name: "peak RSS of our task process (any case)", ours: "ours_*", baseline: null, kind: "rssMB", limit: 150, strict: true },
];

export class Results {
  readonly cases = new Map<string, CaseResult>();

  add(id: string, label: string, baseline: string | null): CaseResult {
    const c: CaseResult = { id, label, baseline, seconds: [], median: null, cpuSeconds: [], medianCpu: null, medianOwnCpu: null, ownCpuSeconds: [], peakRssKB: null, ownHwmKB: null, outputBytes: null, skipped: null, note: null };
    this.cases.set(id, c);
    return c;
  }

  record(c: CaseResult, run: Run, outputBytes: number | null = null): void {
    // Microseconds: the receiver's lag is milliseconds, and its ratios need more than one digit of them.
    c.seconds.push(+run.seconds.toFixed(6));
    c.median = +median(c.seconds).toFixed(6);
    if (run.cpuSeconds !== null) {
      c.cpuSeconds.push(run.cpuSeconds);
      c.medianCpu = +median(c.cpuSeconds).toFixed(2);
    }
    if (run.ownCpuSeconds !== null) {
      c.ownCpuSeconds.push(+run.ownCpuSeconds.toFixed(2));
      c.medianOwnCpu = +median(c.ownCpuSeconds).toFixed(2);
    }
    if (run.peakRssKB !== null) c.peakRssKB = Math.max(c.peakRssKB ?? 0, run.peakRssKB);
    if (run.ownHwmKB !== null) c.ownHwmKB = Math.max(c.ownHwmKB ?? 0, run.ownHwmKB);
    if (outputBytes !== null) c.outputBytes = outputBytes;
  }

  ratio(ours: string, baseline: string, of: "median" | "medianCpu" = "median"): number | null {
    const a = this.cases.get(ours)?.[of] ?? null;
    const b = this.cases.get(baseline)?.[of] ?? null;
    return a === null || b === null || b === 0 ? null : a / b;
  }

  targets(): TargetResult[] {
    return TARGETS.map((t) => {
      let value: number | null = null;
      if (t.kind === "ratio" && t.baseline !== null) value = this.ratio(t.ours, t.baseline);
      if (t.kind === "seconds") value = this.cases.get(t.ours)?.median ?? null;
      if (t.kind === "rssMB") {
        const rss = [...this.cases.values()].filter((c) => c.id.startsWith("ours_") && c.peakRssKB !== null).map((c) => c.peakRssKB as number);
        value = rss.length === 0 ? null : Math.max(...rss) / 1024;
      }
      const met = value === null ? null : t.strict ? value < t.limit : value <= t.limit;
      // The floor's CPU leaves out the server, which does most of its work: no CPU ratio against it.
      const cpuRatio = t.kind === "ratio" && t.baseline !== null && t.baseline !== "floor" ? this.ratio(t.ours, t.baseline, "medianCpu") : null;
      return { ...t, value: value === null ? null : +value.toFixed(3), met, cpuRatio: cpuRatio === null ? null : +cpuRatio.toFixed(3) };
    });
  }
}

/** A table cell: the labels hold shell pipes. */
const cell = (text: string) => text.replace(/\|/g, "\\|");
const fmt = (n: number | null, digits = 2) => (n === null || Number.isNaN(n) ? "–" : n.toFixed(n !== 0 && Math.abs(n) < 0.1 ? digits + 2 : digits));
const mb = (kb: number | null) => (kb === null ? "–" : (kb / 1024).toFixed(0));

export function markdown(results: Results, meta: Record<string, unknown>): string {
  const lines = [
    `# Benchmark ${String(meta.date)} — scale ${String(meta.scale)}, ${String(meta.reps)} repetition(s), median`,
    "",
    `Machine: ${String(meta.cores)} cores, ${String(meta.memoryGB)} GB RAM; ${String(meta.postgres)}; node ${String(meta.node)}; ${String(meta.tools)}.`,
    `Dataset: ${String(meta.dataset)}.`,
    `Reproduce: \`${String(meta.command)}\``,
    "",
    "| case | median s | runs (s) | ratio | to baseline | CPU s (own) | peak RSS MB (own) | output MB |",
    "|---|---:|---|---:|---|---:|---:|---:|",
  ];
  for (const c of results.cases.values()) {
    if (c.skipped !== null) {
      lines.push(`| ${cell(c.label)} | skipped | ${cell(c.skipped)} | | | | | |`);
      continue;
    }
    const base = c.baseline === null ? null : results.cases.get(c.baseline);
    const ratio = c.baseline === null ? null : results.ratio(c.id, c.baseline);
    const rss = c.peakRssKB === null ? "–" : `${mb(c.peakRssKB)} (${mb(c.ownHwmKB)})`;
    const cpu = `${fmt(c.medianCpu)}${c.medianOwnCpu === null ? "" : ` (${fmt(c.medianOwnCpu)})`}`;
    lines.push(
      `| ${cell(c.label)} | ${fmt(c.median)} | ${c.seconds.map((s) => fmt(s)).join(", ")} | ${ratio === null ? "" : `${fmt(ratio)}x`} | ${base && base.skipped === null ? cell(base.label) : ""} | ${cpu} | ${rss} | ${c.outputBytes === null ? "–" : (c.outputBytes / 1e6).toFixed(1)} |`,
    );
  }
  const notes = [...results.cases.values()].filter((c) => c.note !== null && c.skipped === null);
  if (notes.length > 0) lines.push("", ...notes.map((c) => `- ${cell(c.label)}: ${cell(c.note as string)}`));
  lines.push("", "| target | measured | limit | met | CPU-seconds ratio |", "|---|---:|---:|---|---:|");
  for (const t of results.targets()) {
    const unit = t.kind === "ratio" ? "x" : t.kind === "seconds" ? " s" : " MB";
    lines.push(`| ${cell(t.name)} | ${t.value === null ? "–" : `${fmt(t.value)}${unit}`} | ${t.strict ? "<" : "≤"} ${t.limit}${unit} | ${t.met === null ? "not measured" : t.met ? "yes" : "**no**"} | ${t.cpuRatio === null ? "" : `${fmt(t.cpuRatio)}x`} |`);
  }
  lines.push(
    "",
    "CPU s: user + system seconds of the command and the children it waited for (pg_dump, the compressor, psql; not the PostgreSQL server), median; in parentheses our node process alone.",
    "Peak RSS: GNU time's %M for our node process (the larger of node and its biggest child: pg_dump or the compressor); in parentheses node's own VmHWM.",
    "",
  );
  return lines.join("\n");
}

/** Renders a results .json's targets and Markdown again (after a change to the targets or the table's layout). */
export function rerender(jsonPath: string): string {
  const data = JSON.parse(readFileSync(jsonPath, "utf8")) as { meta: Record<string, unknown>; cases: CaseResult[] };
  const results = new Results();
  for (const c of data.cases) results.cases.set(c.id, c);
  const dir = dirname(jsonPath);
  return writeResults(dir, basename(jsonPath, ".json"), results, data.meta).md;
}

export function writeResults(dir: string, stem: string, results: Results, meta: Record<string, unknown>): { json: string; md: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, `${stem}.json`);
  const md = join(dir, `${stem}.md`);
  writeFileSync(json, JSON.stringify({ meta, cases: [...results.cases.values()], targets: results.targets() }, null, 2) + "\n");
  writeFileSync(md, markdown(results, meta));
  return { json, md };
}
