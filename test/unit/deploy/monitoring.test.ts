// stack/monitoring/: the alerting rules pass `promtool check rules` and their own unit tests
// (`promtool test rules`), and every query of the rules and of the Grafana dashboard names
// metrics the tool really writes, read from formatMetrics' output for a state that has them all.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { applyNotifyFailures, applyResult, emptyState, formatMetrics } from "../../../lib/core/metrics.js";

const DIR = fileURLToPath(new URL("../../../stack/monitoring/", import.meta.url));
const STACK_FILE = fileURLToPath(new URL("../../../stack/docker-compose.swarm.yml", import.meta.url));
const RULES = "pgsb-alerts.rules.yml";

function written(): Set<string> {
  const at = new Date("2024-01-10T03:00:00Z");
  let state = applyResult(emptyState(), { task: "backup", tier: "full", ok: true, exitCode: 0, durationSeconds: 1, bytes: 1, finishedAt: at });
  state = applyResult(state, { task: "verify", ok: true, durationSeconds: 1, finishedAt: at, checks: { checksum: true } });
  state = applyNotifyFailures(state, { webhook: 1 });
  state = { ...state, walReceiver: { slot: "pg_swarm_backup", lsn: "0/3000148", lsnBytes: 50331976, lastReceivedAt: 1, lagSeconds: 0, lagBytes: 0, restarts: 0, running: true, updatedAt: 1 } };
  return new Set([...formatMetrics(state).matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));
}

const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "group_left", "group_right"]);

/** The metric names a PromQL expression reads: identifiers that are not functions, keywords, labels or durations. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(on|ignoring|by|without|group_left|group_right)\s*\([^)]*\)/g, "");
  const names: string[] = [];
  for (const m of bare.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    const [, name, call] = m as unknown as [string, string, string | undefined];
    if (call === undefined && !KEYWORDS.has(name)) names.push(name);
  }
  return names;
}

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

function dashboardQueries(): { panel: string; expr: string }[] {
  const dash = JSON.parse(readFileSync(DIR + "grafana-dashboard.json", "utf8")) as { panels: Panel[] };
  const walk = (ps: Panel[]): { panel: string; expr: string }[] =>
    ps.flatMap((p) => [...(p.targets ?? []).map((t) => ({ panel: p.title ?? "?", expr: t.expr ?? "" })), ...walk(p.panels ?? [])]);
  return walk(dash.panels);
}

function ruleQueries(): { alert: string; expr: string }[] {
  const doc = parse(readFileSync(DIR + RULES, "utf8")) as { groups: { rules: { alert: string; expr: string }[] }[] };
  return doc.groups.flatMap((g) => g.rules.map((r) => ({ alert: r.alert, expr: r.expr })));
}

function promtool(args: string[]): string {
  try {
    return execFileSync("promtool", args, { cwd: DIR, encoding: "utf8", stdio: "pipe" });
  } catch (err) {
    const e = err as { code?: string; stdout?: string; stderr?: string };
    if (e.code === "ENOENT") throw new Error("promtool is not on PATH: run scripts/setup.sh (installs Debian's prometheus package, which has promtool)");
    throw new Error(`promtool ${args.join(" ")} failed:\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
}

describe("metricNames", () => {
  it.each([
    ['time() - pgsb_last_success_timestamp_seconds{task="backup",tier=~"a|b"} > 2 * 3600', ["pgsb_last_success_timestamp_seconds"]],
    ["a unless on (task, tier) b == 6", ["a", "b"]],
    ['increase(pgsb_notify_failures_total{x="}"}[1d]) > 0', ["pgsb_notify_failures_total"]],
    ["absent(up) or sum by (job) (node_x)", ["up", "node_x"]],
  ])("%s", (expr, names) => {
    expect(metricNames(expr)).toEqual(names);
  });
});

describe("stack/monitoring", () => {
  const metrics = written();

  it("knows the families the tool writes", () => {
    expect([...metrics].sort()).toEqual([
      "pgsb_last_backup_bytes",
      "pgsb_last_duration_seconds",
      "pgsb_last_exit_code",
      "pgsb_last_result",
      "pgsb_last_run_timestamp_seconds",
      "pgsb_last_success_timestamp_seconds",
      "pgsb_notify_failures_total",
      "pgsb_verify_check_ok",
      "pgsb_wal_receive_lag_bytes",
      "pgsb_wal_receive_lag_seconds",
      "pgsb_wal_receive_last_received_timestamp_seconds",
      "pgsb_wal_receive_lsn_bytes",
      "pgsb_wal_receive_restarts_total",
      "pgsb_wal_receive_up",
      "pgsb_wal_receive_updated_timestamp_seconds",
    ]);
  });

  it("every alerting rule reads only metrics the tool writes", () => {
    const rules = ruleQueries();
    expect(rules.length).toBeGreaterThan(5);
    for (const r of rules) {
      const names = metricNames(r.expr);
      expect(names.length, `${r.alert}: ${r.expr}`).toBeGreaterThan(0);
      for (const n of names) expect(metrics.has(n), `${r.alert} reads ${n}, which the tool does not write`).toBe(true);
    }
  });

  it("every dashboard query reads only metrics the tool writes, and every family is on the dashboard", () => {
    const queries = dashboardQueries();
    const seen = new Set<string>();
    for (const q of queries) {
      const names = metricNames(q.expr);
      expect(names.length, `panel ${q.panel}: ${q.expr}`).toBeGreaterThan(0);
      for (const n of names) {
        expect(metrics.has(n), `panel ${q.panel} reads ${n}, which the tool does not write`).toBe(true);
        seen.add(n);
      }
    }
    expect([...metrics].filter((m) => !seen.has(m))).toEqual([]);
  });

  it("passes promtool check rules and promtool test rules", { timeout: 60_000 }, () => {
    expect(promtool(["check", "rules", RULES])).toMatch(/SUCCESS: \d+ rules found/);
    const tested = promtool(["test", "rules", "pgsb-alerts.test.yml", "pgsb-alerts-weekly.test.yml"]);
    expect(tested.match(/SUCCESS/g)).toHaveLength(2);
  });
});

describe("the stack file's healthcheck hints", () => {
  const text = readFileSync(STACK_FILE, "utf8");
  const stack = parse(text) as { services: Record<string, { deploy?: { labels?: Record<string, string> } }> };
  const scheduled = Object.entries(stack.services).filter(([, s]) => s.deploy?.labels?.["swarm.cronjob.schedule"] !== undefined);

  it.each(scheduled.map(([name, s]) => [name, s.deploy?.labels?.["swarm.cronjob.schedule"] as string]))(
    "%s shows one commented HEALTHCHECK_URL with its schedule (%s) as a 5-field cron and a grace",
    (name, schedule) => {
      const block = text.slice(text.indexOf(`\n  ${name}:\n`) + 1).split(/\n {2}(?=[a-z-]+:\n)/)[0] ?? "";
      expect(block.match(/^ +# HEALTHCHECK_URL: https:\/\/\S+$/gm), block).toHaveLength(1);
      const hint = /# Healthchecks check: cron "([^"]+)", time zone (\S+), grace \d+ (h|min)\b/.exec(block);
      expect(hint, block).not.toBeNull();
      // swarm-cronjob's cron has seconds first; Healthchecks' has not.
      expect(hint?.[1]).toBe(schedule.split(" ").slice(1).join(" "));
      // swarm-cronjob reads its schedules in its own TZ; the check must use the same zone.
      expect(hint?.[2]).toBe(text.match(/swarm-cronjob:\n[\s\S]*?TZ: (\S+)/)?.[1]);
    },
  );
});
