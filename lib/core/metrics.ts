// The Prometheus textfile at METRICS_FILE, for node_exporter's textfile collector. Every
// task rewrites the whole file; the state behind it (one record per task and tier, and
// verify's last check results) lives in "<METRICS_FILE>.json" beside it, so a task keeps the
// other tasks' series without parsing Prometheus text back. Both files are replaced
// atomically (temp file in the same folder + rename), so the collector never reads half a
// file; the collector only reads *.prom, so the state and temp files are invisible to it.
// Both are 0644 whatever the umask: node_exporter runs as another user, and neither holds
// secrets. Temp files have random names and are never opened through a symlink.
import { open, readFile, rm, stat } from "node:fs/promises";
import { errnoCode } from "./errors.js";
import { writeFileAtomic } from "./atomicWrite.js";
import { METRICS_FILE_MODE } from "./fileModes.js";
import { READ_NOFOLLOW } from "./noFollow.js";
import { sleep } from "./concurrency.js";

export interface TaskResult {
  task: string;
  tier?: string;
  ok: boolean;
  durationSeconds: number;
  /** Bytes written (a backup's compressed size); kept from the previous run when absent. */
  bytes?: number;
  finishedAt: Date;
  /** verify only: per check name, whether all its checks passed; replaces the previous set. */
  checks?: Record<string, boolean>;
  /** The task's exit code (docs/cli.md "Exit codes"): 6 tells a failed S3 mirror from a failed backup. */
  exitCode?: number;
}

export interface SeriesState {
  task: string;
  tier: string | null;
  /** Unix seconds. */
  lastRun: number;
  lastSuccess: number | null;
  lastDurationSeconds: number;
  lastBytes: number | null;
  lastOk: boolean;
  /** Absent in state files written before the exit code was recorded. */
  lastExitCode?: number | null;
}

export interface MetricsState {
  format: 1;
  series: SeriesState[];
  verifyChecks: Record<string, boolean>;
  /** Notifications (pings, webhooks) that could not be delivered, per target, ever: a Prometheus counter. */
  notifyFailures?: Record<string, number>;
  /** wal-receive's last report (issue 19); absent until the receiver ran. */
  walReceiver?: WalReceiverMetrics;
}

/** What the wal-receive supervisor reports every status interval. */
export interface WalReceiverMetrics {
  slot: string;
  /** The position archived in wal/: flushed there (the slot's restart_lsn), or with a spool shipped there; as PostgreSQL prints it. */
  lsn: string | null;
  lsnBytes: number | null;
  /** Unix seconds when that position last advanced. */
  lastReceivedAt: number | null;
  lagSeconds: number;
  lagBytes: number | null;
  /** pg_receivewal restarts since the service started. */
  restarts: number;
  running: boolean;
  /** Unix seconds of this report: a stale one means the service itself is gone. */
  updatedAt: number;
  /** With S3_BUCKET: how far the bucket's copy of wal/ is behind (lib/receiver/walUploader.ts). */
  s3?: WalS3Metrics;
}

export interface WalS3Metrics {
  /** The last upload round succeeded. */
  ok: boolean;
  /** Age of the oldest WAL in wal/ that the bucket lacks: the recovery point with the storage box lost. */
  lagSeconds: number;
  pendingFiles: number;
  /** Failed upload rounds since wal-receive started. */
  failures: number;
  /** Files in wal/ not uploaded because their signature does not verify. */
  refusedFiles: number;
  /** Unix seconds of the last upload, or null. */
  lastUploadAt: number | null;
}

export const STATE_SUFFIX = ".json";
const LOCK_SUFFIX = ".lock";
const NOTIFY_TARGETS = ["healthcheck", "webhook"];
const LOCK_WAIT_MS = 10_000;
/** A lock older than this was left by a killed task. */
const LOCK_STALE_MS = 60_000;

export function emptyState(): MetricsState {
  return { format: 1, series: [], verifyChecks: {} };
}

/** The state after one more task result. Pure. */
export function applyResult(state: MetricsState, r: TaskResult): MetricsState {
  const tier = r.tier ?? null;
  const at = r.finishedAt.getTime() / 1000;
  const previous = state.series.find((s) => s.task === r.task && s.tier === tier);
  const next: SeriesState = {
    task: r.task,
    tier,
    lastRun: at,
    lastSuccess: r.ok ? at : (previous?.lastSuccess ?? null),
    lastDurationSeconds: r.durationSeconds,
    lastBytes: r.bytes ?? previous?.lastBytes ?? null,
    lastOk: r.ok,
    lastExitCode: r.exitCode ?? (r.ok ? 0 : null),
  };
  const series = [...state.series.filter((s) => s !== previous), next].sort(
    (a, b) => a.task.localeCompare(b.task) || (a.tier ?? "").localeCompare(b.tier ?? ""),
  );
  return { ...state, series, verifyChecks: r.checks !== undefined ? { ...r.checks } : state.verifyChecks };
}

/** The state after `counts` more undelivered notifications per target. Pure. */
export function applyNotifyFailures(state: MetricsState, counts: Readonly<Record<string, number>>): MetricsState {
  const next = { ...(state.notifyFailures ?? {}) };
  for (const [target, n] of Object.entries(counts)) if (n > 0) next[target] = (next[target] ?? 0) + n;
  return { ...state, notifyFailures: next };
}

/** Label values escaped as the text format requires: backslash, double quote, newline. */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labels(pairs: Record<string, string | null>): string {
  const parts = Object.entries(pairs)
    .filter((p): p is [string, string] => p[1] !== null)
    .map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

interface Family {
  name: string;
  help: string;
  type?: "counter";
  samples: [string, number][];
}

/** The textfile: HELP and TYPE for every family that has samples, one sample per line. Pure. */
export function formatMetrics(state: MetricsState): string {
  const task = (s: SeriesState) => labels({ task: s.task, tier: s.tier });
  const families: Family[] = [
    { name: "pgsb_last_run_timestamp_seconds", help: "When the task last finished, successful or not (Unix time).", samples: state.series.map((s) => [task(s), s.lastRun]) },
    {
      name: "pgsb_last_success_timestamp_seconds",
      help: "When the task last finished successfully (Unix time).",
      samples: state.series.filter((s) => s.lastSuccess !== null).map((s) => [task(s), s.lastSuccess as number]),
    },
    { name: "pgsb_last_duration_seconds", help: "How long the task's last run took.", samples: state.series.map((s) => [task(s), s.lastDurationSeconds]) },
    {
      name: "pgsb_last_backup_bytes",
      help: "Compressed size of the last backup file the task wrote.",
      samples: state.series.filter((s) => s.lastBytes !== null).map((s) => [task(s), s.lastBytes as number]),
    },
    { name: "pgsb_last_result", help: "1 when the task's last run succeeded, 0 when it failed.", samples: state.series.map((s) => [task(s), s.lastOk ? 1 : 0]) },
    {
      name: "pgsb_last_exit_code",
      help: "The exit code of the task's last run (docs/cli.md \"Exit codes\"; 6: the S3 mirror failed).",
      samples: state.series.filter((s) => typeof s.lastExitCode === "number").map((s) => [task(s), s.lastExitCode as number]),
    },
    {
      name: "pgsb_notify_failures_total",
      help: "Pings and webhooks that could not be delivered after their retries, per target.",
      type: "counter",
      // Both targets from the first task on, at 0: Prometheus' increase() needs the counter before its first step.
      samples: [...new Set([...(state.series.length > 0 ? NOTIFY_TARGETS : []), ...Object.keys(state.notifyFailures ?? {})])]
        .sort()
        .map((t) => [labels({ target: t }), state.notifyFailures?.[t] ?? 0]),
    },
    ...walReceiverFamilies(state.walReceiver),
    {
      name: "pgsb_verify_check_ok",
      help: "1 when every check of this name passed in the last verify run, 0 otherwise.",
      samples: Object.keys(state.verifyChecks)
        .sort()
        .map((c) => [labels({ check: c }), state.verifyChecks[c] === true ? 1 : 0]),
    },
  ];
  const lines: string[] = [];
  for (const f of families) {
    if (f.samples.length === 0) continue;
    lines.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.type ?? "gauge"}`);
    for (const [l, v] of f.samples) lines.push(`${f.name}${l} ${Number.isFinite(v) ? String(v) : "NaN"}`);
  }
  return lines.length === 0 ? "" : lines.join("\n") + "\n";
}

/** A family with one sample labelled `l`, or none when the value is unknown. */
function single(l: string): (name: string, help: string, v: number | null, type?: "counter") => Family {
  return (name, help, v, type) => ({ name, help, type, samples: v === null ? [] : [[l, v]] });
}

function walReceiverFamilies(w: WalReceiverMetrics | undefined): Family[] {
  if (w === undefined) return [];
  const l = labels({ slot: w.slot });
  const one = single(l);
  return [
    one("pgsb_wal_receive_up", "1 while pg_receivewal runs under wal-receive, 0 while it is restarting or stopped.", w.running ? 1 : 0),
    one("pgsb_wal_receive_lsn_bytes", "The WAL position archived in wal/ (flushed by pg_receivewal, the slot's restart_lsn; with signing or encryption, shipped from the spool), in bytes.", w.lsnBytes),
    one("pgsb_wal_receive_last_received_timestamp_seconds", "When the archived position last advanced (Unix time).", w.lastReceivedAt),
    one("pgsb_wal_receive_lag_seconds", "How long ago the server had the WAL not yet archived in wal/ (0 when caught up): the age of the recovery point.", w.lagSeconds),
    one("pgsb_wal_receive_lag_bytes", "The server's flushed WAL position minus the archived one.", w.lagBytes),
    one("pgsb_wal_receive_restarts_total", "pg_receivewal restarts since wal-receive started.", w.restarts, "counter"),
    one("pgsb_wal_receive_updated_timestamp_seconds", "When wal-receive last reported (Unix time); stale when the service is gone.", w.updatedAt),
    ...walS3Families(w.s3, l),
  ];
}

function walS3Families(s: WalS3Metrics | undefined, l: string): Family[] {
  if (s === undefined) return [];
  const one = single(l);
  return [
    one("pgsb_wal_receive_s3_up", "1 when wal-receive's last upload round to the S3 mirror succeeded, 0 while S3 fails.", s.ok ? 1 : 0),
    one("pgsb_wal_receive_s3_lag_seconds", "Age of the oldest WAL in wal/ not yet in the S3 mirror (0 when it has everything): the recovery point with the storage box lost.", s.lagSeconds),
    one("pgsb_wal_receive_s3_pending_files", "WAL files in wal/ waiting to be uploaded to the S3 mirror.", s.pendingFiles),
    one("pgsb_wal_receive_s3_failures_total", "Upload rounds to the S3 mirror that failed since wal-receive started.", s.failures, "counter"),
    one("pgsb_wal_receive_s3_refused_files", "WAL files in wal/ not uploaded because their signature does not verify.", s.refusedFiles),
    one("pgsb_wal_receive_s3_last_upload_timestamp_seconds", "When wal-receive last uploaded a WAL file to the S3 mirror (Unix time).", s.lastUploadAt),
  ];
}

function isState(v: unknown): v is MetricsState {
  const s = v as Partial<MetricsState> | null;
  return typeof s === "object" && s !== null && s.format === 1 && Array.isArray(s.series) && typeof s.verifyChecks === "object" && s.verifyChecks !== null;
}

/** The recorded state; empty when there is none yet or it cannot be read (the next write repairs it). */
export async function readMetricsState(metricsFile: string): Promise<MetricsState> {
  try {
    const parsed: unknown = JSON.parse(await readFile(metricsFile + STATE_SUFFIX, { encoding: "utf8", flag: READ_NOFOLLOW }));
    return isState(parsed) ? parsed : emptyState();
  } catch {
    return emptyState();
  }
}

/** Serializes read-modify-write between tasks that finish at the same moment (verify runs beside backups). */
async function withLock<T>(metricsFile: string, fn: () => Promise<T>): Promise<T> {
  const lock = metricsFile + LOCK_SUFFIX;
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      await (await open(lock, "wx", METRICS_FILE_MODE)).close();
      break;
    } catch (err) {
      if (errnoCode(err) !== "EEXIST") throw err;
      const age = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > LOCK_STALE_MS || Date.now() > deadline) await rm(lock, { force: true });
      else await sleep(50);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}

async function update(metricsFile: string, change: (state: MetricsState) => MetricsState): Promise<MetricsState> {
  try {
    return await withLock(metricsFile, async () => {
      const state = change(await readMetricsState(metricsFile));
      await writeFileAtomic(metricsFile + STATE_SUFFIX, JSON.stringify(state, null, 2) + "\n", METRICS_FILE_MODE);
      await writeFileAtomic(metricsFile, formatMetrics(state), METRICS_FILE_MODE);
      return state;
    });
  } catch (err) {
    throw new Error(
      `METRICS_FILE=${metricsFile} cannot be written (${errnoCode(err) ?? (err as Error).message}); make its folder writable for the task user (node_exporter's textfile directory) or unset METRICS_FILE`,
      { cause: err },
    );
  }
}

/**
 * Records one task result and rewrites METRICS_FILE. Throws an Error naming the file and
 * the fix; callers log it as a warning, since a metrics problem must not fail a backup.
 */
export function recordTaskResult(metricsFile: string, result: TaskResult): Promise<MetricsState> {
  return update(metricsFile, (state) => applyResult(state, result));
}

/** Records wal-receive's report; throws like recordTaskResult. */
export function recordWalReceiver(metricsFile: string, report: WalReceiverMetrics): Promise<MetricsState> {
  return update(metricsFile, (state) => ({ ...state, walReceiver: report }));
}

/** Adds undelivered notifications to pgsb_notify_failures_total; throws like recordTaskResult. */
export function recordNotifyFailures(metricsFile: string, counts: Readonly<Record<string, number>>): Promise<MetricsState> {
  return update(metricsFile, (state) => applyNotifyFailures(state, counts));
}
