import { readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { applyNotifyFailures, applyResult, emptyState, escapeLabel, formatMetrics, readMetricsState, recordNotifyFailures, recordTaskResult } from "../../../lib/core/metrics.js";
import { formatStatus, humanAge } from "../../../tasks/status.js";
import type { StatusReport } from "../../../tasks/status.js";

// A strict parser for the Prometheus text exposition format (what node_exporter's textfile
// collector accepts): HELP/TYPE lines before a family's samples, one sample per line,
// metric and label names by the spec's regexes, label values with \\ \" \n escapes only,
// Go-style float values, no duplicate series, a family's samples contiguous.
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const FLOAT = /^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$/;

function parseLabels(text: string, at: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf("=", i);
    if (eq < 0) throw new Error(`${at}: label without "="`);
    const name = text.slice(i, eq);
    if (!LABEL.test(name) || name.startsWith("__")) throw new Error(`${at}: bad label name ${name}`);
    if (text[eq + 1] !== '"') throw new Error(`${at}: label value not quoted`);
    let value = "";
    let j = eq + 2;
    for (;;) {
      const ch = text[j];
      if (ch === undefined) throw new Error(`${at}: unterminated label value`);
      if (ch === '"') break;
      if (ch === "\\") {
        const next = text[j + 1];
        if (next === "\\" || next === '"') value += next;
        else if (next === "n") value += "\n";
        else throw new Error(`${at}: bad escape \\${next ?? ""}`);
        j += 2;
      } else {
        if (ch === "\n") throw new Error(`${at}: raw newline in label value`);
        value += ch;
        j++;
      }
    }
    if (Object.hasOwn(labels, name)) throw new Error(`${at}: duplicate label ${name}`);
    labels[name] = value;
    i = j + 1;
    if (i < text.length) {
      if (text[i] !== ",") throw new Error(`${at}: expected "," between labels`);
      i++;
    }
  }
  return labels;
}

function parsePrometheus(text: string): { samples: Sample[]; types: Map<string, string>; help: Map<string, string> } {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  const series = new Set<string>();
  const finished = new Set<string>();
  let current: string | null = null;
  if (text === "") return { samples, types, help };
  if (!text.endsWith("\n")) throw new Error("the file must end with a newline");
  text.slice(0, -1).split("\n").forEach((line, n) => {
    const at = `line ${n + 1}`;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta !== null) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      if (!METRIC.test(name)) throw new Error(`${at}: bad metric name ${name}`);
      if (kind === "TYPE") {
        if (types.has(name) || samples.some((s) => s.name === name)) throw new Error(`${at}: TYPE for ${name} repeated or after its samples`);
        if (!["counter", "gauge", "histogram", "summary", "untyped"].includes(rest)) throw new Error(`${at}: bad type ${rest}`);
        types.set(name, rest);
      } else {
        if (help.has(name)) throw new Error(`${at}: HELP for ${name} repeated`);
        help.set(name, rest);
      }
      return;
    }
    if (line.startsWith("#") || line.trim() === "") throw new Error(`${at}: unexpected line ${JSON.stringify(line)}`);
    const m = /^([^\s{]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`${at}: not a sample: ${line}`);
    const [, name, labelText, value] = m as unknown as [string, string, string | undefined, string];
    if (!METRIC.test(name)) throw new Error(`${at}: bad metric name ${name}`);
    if (!types.has(name)) throw new Error(`${at}: sample of ${name} before its TYPE`);
    if (!FLOAT.test(value)) throw new Error(`${at}: bad value ${value}`);
    if (name !== current) {
      if (finished.has(name)) throw new Error(`${at}: samples of ${name} are not contiguous`);
      if (current !== null) finished.add(current);
      current = name;
    }
    const labels = parseLabels(labelText ?? "", at);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (series.has(key)) throw new Error(`${at}: duplicate series ${key}`);
    series.add(key);
    samples.push({ name, labels, value: Number(value.replace(/^\+?Inf$/, "Infinity").replace(/^-Inf$/, "-Infinity")) });
  });
  return { samples, types, help };
}

describe("the strict test parser", () => {
  it.each([
    ["no TYPE", "m 1\n"],
    ["a bad escape", '# TYPE m gauge\nm{a="\\t"} 1\n'],
    ["a duplicate series", "# TYPE m gauge\nm 1\nm 2\n"],
    ["a bad value", "# TYPE m gauge\nm one\n"],
    ["no final newline", "# TYPE m gauge\nm 1"],
  ])("rejects %s", (_label, text) => {
    expect(() => parsePrometheus(text)).toThrow();
  });
});

const T0 = new Date("2024-01-10T03:00:00.250Z");
const at = (min: number) => new Date(T0.getTime() + min * 60_000);
const value = (samples: Sample[], name: string, labels: Record<string, string>) =>
  samples.find((s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels))?.value;

describe("formatMetrics", () => {
  it("writes every family with HELP and TYPE and keeps the last success across a failure", () => {
    let state = applyResult(emptyState(), { task: "backup", tier: "full", ok: true, durationSeconds: 12.5, bytes: 1234, finishedAt: T0 });
    state = applyResult(state, { task: "backup", tier: "full", ok: false, durationSeconds: 3, finishedAt: at(60) });
    state = applyResult(state, { task: "backup", tier: "incremental", ok: true, durationSeconds: 1, bytes: 10, finishedAt: at(5) });
    state = applyResult(state, { task: "verify", ok: false, durationSeconds: 40, finishedAt: at(10), checks: { checksum: true, decompress: false } });
    const { samples, types, help } = parsePrometheus(formatMetrics(state));
    expect([...types].filter(([, t]) => t !== "gauge")).toEqual([["pgsb_notify_failures_total", "counter"]]);
    expect(value(samples, "pgsb_notify_failures_total", { target: "webhook" })).toBe(0);
    expect([...help.keys()].sort()).toEqual([...types.keys()].sort());
    const full = { task: "backup", tier: "full" };
    expect(value(samples, "pgsb_last_run_timestamp_seconds", full)).toBe(at(60).getTime() / 1000);
    expect(value(samples, "pgsb_last_success_timestamp_seconds", full)).toBe(T0.getTime() / 1000);
    expect(value(samples, "pgsb_last_result", full)).toBe(0);
    expect(value(samples, "pgsb_last_duration_seconds", full)).toBe(3);
    expect(value(samples, "pgsb_last_backup_bytes", full)).toBe(1234);
    expect(value(samples, "pgsb_last_result", { task: "backup", tier: "incremental" })).toBe(1);
    expect(value(samples, "pgsb_last_result", { task: "verify" })).toBe(0);
    expect(value(samples, "pgsb_last_success_timestamp_seconds", { task: "verify" })).toBeUndefined();
    expect(value(samples, "pgsb_verify_check_ok", { check: "checksum" })).toBe(1);
    expect(value(samples, "pgsb_verify_check_ok", { check: "decompress" })).toBe(0);
  });

  it("escapes label values so any task or check name parses back", () => {
    const odd = 'we"ird\\name\nx';
    expect(escapeLabel(odd)).toBe('we\\"ird\\\\name\\nx');
    const state = applyResult(emptyState(), { task: odd, ok: true, durationSeconds: 1, finishedAt: T0, checks: { [odd]: true } });
    const { samples } = parsePrometheus(formatMetrics(state));
    expect(value(samples, "pgsb_last_result", { task: odd })).toBe(1);
    expect(value(samples, "pgsb_verify_check_ok", { check: odd })).toBe(1);
  });

  it("is empty but valid before any task ran", () => {
    expect(parsePrometheus(formatMetrics(emptyState())).samples).toEqual([]);
  });
});

describe("recordTaskResult", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  const file = () => {
    const d = mkdtempSync(join(tmpdir(), "pgsb-metrics-"));
    dirs.push(d);
    return join(d, "pgsb.prom");
  };

  it("rewrites the file, keeps the other tasks' series and leaves no temp or lock files", async () => {
    const f = file();
    await recordTaskResult(f, { task: "backup", tier: "full", ok: true, durationSeconds: 2, bytes: 99, finishedAt: T0 });
    await recordTaskResult(f, { task: "cleanup", ok: true, durationSeconds: 1, finishedAt: at(1) });
    await recordTaskResult(f, { task: "verify", ok: true, durationSeconds: 5, finishedAt: at(2), checks: { chain: true } });
    const { samples } = parsePrometheus(readFileSync(f, "utf8"));
    expect(value(samples, "pgsb_last_backup_bytes", { task: "backup", tier: "full" })).toBe(99);
    expect(value(samples, "pgsb_last_result", { task: "cleanup" })).toBe(1);
    expect(value(samples, "pgsb_verify_check_ok", { check: "chain" })).toBe(1);
    expect(readdirSync(join(f, "..")).sort()).toEqual(["pgsb.prom", "pgsb.prom.json"]);
  });

  it("loses no result when tasks finish at the same moment", async () => {
    const f = file();
    await Promise.all(Array.from({ length: 8 }, (_, i) => recordTaskResult(f, { task: `t${i}`, ok: true, durationSeconds: i, finishedAt: at(i) })));
    expect((await readMetricsState(f)).series.map((s) => s.task)).toEqual(["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"]);
  });

  it("starts over from a corrupt state file and names METRICS_FILE when it cannot write", async () => {
    const f = file();
    writeFileSync(f + ".json", "{not json");
    await recordTaskResult(f, { task: "backup", tier: "full", ok: true, durationSeconds: 1, finishedAt: T0 });
    expect((await readMetricsState(f)).series).toHaveLength(1);
    await expect(recordTaskResult(join(f, "..", "missing", "x.prom"), { task: "a", ok: true, durationSeconds: 1, finishedAt: T0 })).rejects.toThrow(
      /METRICS_FILE=.*x\.prom cannot be written \(ENOENT\)/,
    );
  });
});

describe("status formatting", () => {
  it.each([
    [5, "5s"],
    [125, "2m"],
    [3 * 3600 + 120, "3h 2m"],
    [2 * 86_400 + 4 * 3600, "2d 4h"],
  ])("humanAge(%i) = %s", (seconds, text) => {
    expect(humanAge(seconds)).toBe(text);
  });

  it("shows newest backups, task results and verify checks", () => {
    const report: StatusReport = {
      backupDir: "/backups",
      now: at(60).toISOString(),
      newest: { full: { name: "20240110_030000_full.sql.bz2", time: T0.toISOString(), ageSeconds: 3600, bytes: 2048 }, differential: null, incremental: null },
      backups: 1,
      unusable: 0,
      metricsFile: "/m/pgsb.prom",
      tasks: [{ task: "verify", tier: null, lastRun: at(30).toISOString(), lastSuccess: null, ok: false, durationSeconds: 4, bytes: null }],
      verifyChecks: { checksum: true, chain: false },
    };
    const text = formatStatus(report, "UTC");
    expect(text).toMatch(/full\s+2024-01-10 03:00:00 UTC\s+1h 0m\s+2\.0 KiB\s+20240110_030000_full\.sql\.bz2/);
    expect(text).toMatch(/differential\s+none/);
    expect(text).toMatch(/verify\s+-\s+2024-01-10 03:30:00 UTC\s+FAILED\s+never\s+4\.0 s/);
    expect(text).toMatch(/Last verify: FAIL chain, PASS checksum/);
    expect(formatStatus({ ...report, metricsFile: null, tasks: [] }, "UTC")).toMatch(/METRICS_FILE is unset/);
  });
});

describe("exit codes and undelivered notifications", () => {
  it("writes the last exit code per task and a counter of notifications that were not delivered", () => {
    let state = applyResult(emptyState(), { task: "backup", tier: "full", ok: false, exitCode: 6, durationSeconds: 1, finishedAt: T0 });
    state = applyResult(state, { task: "cleanup", ok: true, durationSeconds: 1, finishedAt: T0 });
    state = applyNotifyFailures(state, { healthcheck: 2, webhook: 0 });
    state = applyNotifyFailures(state, { healthcheck: 1, webhook: 1 });
    // a later task result keeps the counter
    state = applyResult(state, { task: "backup", tier: "incremental", ok: true, exitCode: 0, durationSeconds: 1, finishedAt: at(60) });
    const { samples, types } = parsePrometheus(formatMetrics(state));
    expect(types.get("pgsb_notify_failures_total")).toBe("counter");
    expect(value(samples, "pgsb_notify_failures_total", { target: "healthcheck" })).toBe(3);
    expect(value(samples, "pgsb_notify_failures_total", { target: "webhook" })).toBe(1);
    expect(value(samples, "pgsb_last_exit_code", { task: "backup", tier: "full" })).toBe(6);
    expect(value(samples, "pgsb_last_exit_code", { task: "cleanup" })).toBe(0);
  });

  it("reads a state file written before these fields existed", () => {
    const old = { format: 1 as const, series: [{ task: "cleanup", tier: null, lastRun: 1, lastSuccess: 1, lastDurationSeconds: 1, lastBytes: null, lastOk: true }], verifyChecks: {} };
    const { samples } = parsePrometheus(formatMetrics(applyNotifyFailures(old, { webhook: 1 })));
    expect(value(samples, "pgsb_last_exit_code", { task: "cleanup" })).toBeUndefined();
    expect(value(samples, "pgsb_notify_failures_total", { target: "webhook" })).toBe(1);
  });

  it("counts across runs in the state file", async () => {
    const d = mkdtempSync(join(tmpdir(), "pgsb-metrics-"));
    try {
      const f = join(d, "pgsb.prom");
      await recordNotifyFailures(f, { healthcheck: 1 });
      await recordTaskResult(f, { task: "cleanup", ok: true, durationSeconds: 1, finishedAt: T0 });
      await recordNotifyFailures(f, { healthcheck: 1, webhook: 1 });
      const { samples } = parsePrometheus(readFileSync(f, "utf8"));
      expect(value(samples, "pgsb_notify_failures_total", { target: "healthcheck" })).toBe(2);
      expect(value(samples, "pgsb_last_result", { task: "cleanup" })).toBe(1);
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
