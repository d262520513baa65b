// status [--json]: what the metrics say, for people. The newest usable backup per tier and
// its age (from the catalog), and each task's last run, result and last success (from the
// state behind METRICS_FILE), and verify's last check results.
import { scanCatalog } from "../lib/store/catalog.js";
import { assertBackupDir } from "../lib/store/backupDir.js";
import type { Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { humanBytes, localTime, table } from "../lib/core/format.js";
import { readMetricsState } from "../lib/core/metrics.js";
import type { MetricsState, WalReceiverMetrics } from "../lib/core/metrics.js";
import { formatSlotStatus, formatWalReceiver, slotStatus } from "../lib/receiver/status.js";
import type { SlotStatus } from "../lib/receiver/status.js";
import { summarizeWal } from "../lib/wal/summary.js";
import { TIERS } from "../lib/store/naming.js";
import type { Tier } from "../lib/store/naming.js";

export interface StatusArgs {
  json: boolean;
}

export interface NewestBackup {
  name: string;
  time: string;
  ageSeconds: number;
  bytes: number;
}

export interface TaskStatus {
  task: string;
  tier: string | null;
  lastRun: string;
  lastSuccess: string | null;
  ok: boolean;
  durationSeconds: number;
  bytes: number | null;
}

export interface StatusReport {
  backupDir: string;
  now: string;
  newest: Record<Tier, NewestBackup | null>;
  backups: number;
  unusable: number;
  /** null when METRICS_FILE is unset. */
  metricsFile: string | null;
  tasks: TaskStatus[];
  verifyChecks: Record<string, boolean>;
  /** wal-receive's last report in METRICS_FILE; null when it never ran (or METRICS_FILE is unset). */
  walReceiver?: WalReceiverMetrics | null;
  /** Without METRICS_FILE and with WAL in wal/: the receiver's slot as the server sees it (null when it cannot be asked). */
  walSlot?: SlotStatus | null;
}

const iso = (unixSeconds: number): string => new Date(unixSeconds * 1000).toISOString();

/** "3d 4h", "5h 12m", "42m", "12s": enough precision to judge freshness at a glance. */
export function humanAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  return m > 0 ? `${m}m` : `${s}s`;
}

export async function statusReport(config: Config, deps: Deps): Promise<StatusReport> {
  const now = deps.now();
  await assertBackupDir(config.backupDir, "no status can be given");
  const catalog = await scanCatalog(config.backupDir);
  const usable = catalog.filter((e) => e.problem === null && e.manifest !== null);
  const newest = Object.fromEntries(
    TIERS.map((tier) => {
      const e = usable.filter((x) => x.tier === tier).at(-1);
      return [tier, e === undefined ? null : { name: e.name, time: e.time.toISOString(), ageSeconds: Math.round((now.getTime() - e.time.getTime()) / 1000), bytes: e.bytes }];
    }),
  ) as Record<Tier, NewestBackup | null>;
  const state: MetricsState | null = config.metricsFile === null ? null : await readMetricsState(config.metricsFile);
  return {
    backupDir: config.backupDir,
    now: now.toISOString(),
    newest,
    backups: catalog.length,
    unusable: catalog.length - usable.length,
    metricsFile: config.metricsFile,
    tasks: (state?.series ?? []).map((s) => ({
      task: s.task,
      tier: s.tier,
      lastRun: iso(s.lastRun),
      lastSuccess: s.lastSuccess === null ? null : iso(s.lastSuccess),
      ok: s.lastOk,
      durationSeconds: s.lastDurationSeconds,
      bytes: s.lastBytes,
    })),
    verifyChecks: state?.verifyChecks ?? {},
    walReceiver: state?.walReceiver ?? null,
    walSlot: state === null && (await summarizeWal(config.backupDir)) !== null ? await slotStatus(config) : null,
  };
}

export function formatStatus(r: StatusReport, tz: string): string {
  const when = (isoTime: string | null) => (isoTime === null ? "never" : localTime(new Date(isoTime), tz));
  const out: string[] = [`Newest backups in BACKUP_DIR=${r.backupDir} (${r.backups} files, ${r.unusable} unusable)`];
  const rows = [["TIER", `TIME (${tz})`, "AGE", "SIZE", "NAME"]];
  for (const tier of TIERS) {
    const b = r.newest[tier];
    rows.push(b === null ? [tier, "none", "-", "-", "-"] : [tier, when(b.time), humanAge(b.ageSeconds), humanBytes(b.bytes), b.name]);
  }
  out.push(table(rows).trimEnd(), "");
  if (r.metricsFile === null) {
    out.push("Task results are not recorded: METRICS_FILE is unset; set it to a .prom file in node_exporter's textfile directory.");
  } else if (r.tasks.length === 0) {
    out.push(`No task has recorded a result in METRICS_FILE=${r.metricsFile} yet.`);
  } else {
    out.push(`Last task runs (METRICS_FILE=${r.metricsFile})`);
    const taskRows = [["TASK", "TIER", "LAST RUN", "RESULT", "LAST SUCCESS", "DURATION", "SIZE"]];
    for (const t of r.tasks) {
      const size = t.bytes === null ? "-" : humanBytes(t.bytes);
      taskRows.push([t.task, t.tier ?? "-", when(t.lastRun), t.ok ? "ok" : "FAILED", when(t.lastSuccess), `${t.durationSeconds.toFixed(1)} s`, size]);
    }
    out.push(table(taskRows).trimEnd());
    const checks = Object.entries(r.verifyChecks).sort(([a], [b]) => a.localeCompare(b));
    if (checks.length > 0) out.push("", `Last verify: ${checks.map(([name, ok]) => `${ok ? "PASS" : "FAIL"} ${name}`).join(", ")}`);
  }
  if (r.walReceiver) out.push("", formatWalReceiver(r.walReceiver, new Date(r.now), tz));
  else if (r.walSlot) out.push("", formatSlotStatus(r.walSlot));
  return out.join("\n") + "\n";
}

export async function run(config: Config, deps: Deps, args: StatusArgs): Promise<StatusReport> {
  const report = await statusReport(config, deps);
  deps.out(args.json ? JSON.stringify(report, null, 2) + "\n" : formatStatus(report, config.tz));
  return report;
}
