#!/usr/bin/env node
// The only place that reads argv and the environment, and maps errors to exit codes.
// Task modules are imported when their command runs, so a no-change incremental does not
// pay for loading the S3 SDK or the restore code.
import { availableParallelism } from "node:os";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import type { Config } from "../lib/config/config.js";
import { notifyConfig, resolveConfig } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { ExitCode, TaskError } from "../lib/core/errors.js";
import { createLogger } from "../lib/core/log.js";
import { Notifier, STOP_NOTIFY_BUDGET_MS } from "../lib/notify/notifier.js";
import type { Tier } from "../lib/store/naming.js";
import { TIERS } from "../lib/store/naming.js";
import { hasIdentityMarker } from "../lib/store/backupDirIdentity.js";
import { redact } from "../lib/core/secret.js";
import { onSignals, shutdown } from "../lib/core/shutdown.js";
import { TOOL } from "../lib/core/version.js";
import { isServerGone, serverGoneMessage } from "../lib/postgres/vanished.js";

/** What a handler reports back: an exit code other than 0, and what a backup wrote (for metrics and notifications). */
interface Outcome {
  code?: ExitCode;
  bytes?: number;
  backup?: string;
  /** Nothing changed, nothing written: a success for the monitor, "skipped" in the webhook. */
  skipped?: boolean;
  summary?: string;
}
type Handler = (config: Config, deps: Deps) => Promise<Outcome | void>;

/** Which runs are recorded in METRICS_FILE: mutating tasks, not dry runs or read-only commands (verify records its own). */
interface MetricsLabel {
  task: string;
  tier?: string;
}

const EXIT_TABLE = `Exit codes:
  0  success (a backup skipped because nothing changed is a success)
  1  the task failed (dump, compression, restore); nothing was changed
  2  usage or configuration error (the message names the variable)
  3  lock busy: another task holds the cluster lock
  4  refused for safety (wiped cluster, existing database, bad checksum)
  5  verify found problems
  6  S3 mirror failed; the local backup succeeded
  7  not implemented in this version (reserved)
  8  cannot connect to or authenticate with PostgreSQL
  9  storage error: BACKUP_DIR not writable, full or missing
 10  restore --continue-on-error restored what it could; failed statements are listed
130  stopped by SIGINT; 143 stopped by SIGTERM (children stopped, partial files and scratch clusters removed)`;

async function recordMetrics(config: Config, deps: Deps, label: MetricsLabel, exitCode: number, started: number, bytes?: number): Promise<void> {
  if (config.metricsFile === null) return;
  const { recordTaskResult } = await import("../lib/core/metrics.js");
  const ok = exitCode === ExitCode.ok;
  await recordTaskResult(config.metricsFile, { ...label, ok, exitCode, durationSeconds: (Date.now() - started) / 1000, bytes, finishedAt: deps.now() }).catch((err: unknown) =>
    deps.log.warn({ err: (err as Error).message, metricsFile: config.metricsFile }, "metrics not recorded"),
  );
}

/** Pings and the webhook for a task whose configuration failed: the monitor hears of it too, if its own settings are sound. */
function notifierWithoutConfig(task: string, tier: string | null): Notifier | undefined {
  try {
    const config = notifyConfig(process.env);
    const log = createLogger("info", null, { tool: TOOL.name, version: TOOL.version });
    return new Notifier(config, { task, tier, lockMode: "wait", log, metricsFile: process.env.METRICS_FILE || null });
  } catch {
    return undefined;
  }
}

/** `metrics`: recorded in METRICS_FILE; `notify`: pinged and reported to the webhook (defaults to `metrics`). */
async function execute(handler: Handler, task: string, metrics?: MetricsLabel, notify: MetricsLabel | undefined = metrics): Promise<void> {
  let config: Config | undefined;
  let deps: Deps | undefined;
  let notifier: Notifier | undefined;
  const started = Date.now();
  try {
    const cfg = resolveConfig(process.env);
    // The default LOG_FILE lives in BACKUP_DIR: opened only once the folder carries its identity
    // marker, so a task beside an unmounted storage box writes nothing there (docs/backups.md "The storage box's identity").
    const marked = process.env.LOG_FILE === undefined && cfg.logFile !== null ? () => hasIdentityMarker(cfg.backupDir) : undefined;
    const log = createLogger(cfg.logLevel, cfg.logFile, { tool: TOOL.name, version: TOOL.version }, cfg.files.file, marked);
    const d: Deps = { log, now: () => new Date(), env: process.env, out: (t) => process.stdout.write(t) };
    const n = notify === undefined ? undefined : new Notifier(cfg.notify, { task: notify.task, tier: notify.tier ?? null, lockMode: cfg.lock.mode, log, metricsFile: cfg.metricsFile, startedAt: started });
    [config, deps, notifier] = [cfg, d, n];
    if (n?.enabled) n.start();
    // On SIGTERM/SIGINT: /fail and the failure webhook beside the releasers, then the run recorded as failed.
    onSignals({
      task,
      log,
      alongside: n?.enabled ? (code) => n.failure(code, `stopped by ${shutdown.signal ?? "a signal"} (docker service rm, a stop, or a timeout) before the task finished`, STOP_NOTIFY_BUDGET_MS) : undefined,
      after: metrics === undefined ? undefined : (code) => recordMetrics(cfg, d, metrics, code, started),
      // The abandoned task still holds sockets and timers, so the loop would not drain before
      // Docker's SIGKILL; this is the one place that ends the process outright.
      exit: (code) => {
        process.exitCode = code;
        process.exit();
      },
    });
    const outcome = (await handler(config, deps)) ?? {};
    process.exitCode = outcome.code ?? ExitCode.ok;
    if (metrics !== undefined) await recordMetrics(config, deps, metrics, process.exitCode, started, outcome.bytes);
    await notifier?.finish({ exitCode: process.exitCode, message: outcome.summary ?? null, skipped: outcome.skipped, backup: outcome.backup, bytes: outcome.bytes });
  } catch (err) {
    // After a signal the handler above reports and exits; what the abandoned task throws meanwhile is its echo.
    if (shutdown.signal !== null) return;
    const exitCode = err instanceof TaskError ? err.exitCode : ExitCode.failed;
    let message = redact(err instanceof Error ? err.message : String(err), [config?.pg.password, config?.s3?.secretAccessKey]);
    if (!(err instanceof TaskError) && isServerGone(err)) message = serverGoneMessage(task, config?.pg.host ?? "PGHOST", message);
    process.stderr.write(JSON.stringify({ level: "error", time: new Date().toISOString(), task, exitCode, msg: message }) + "\n");
    process.stderr.write(`pg-swarm-backup ${task}: ${message}\n`);
    process.exitCode = exitCode;
    if (metrics !== undefined && config !== undefined && deps !== undefined) await recordMetrics(config, deps, metrics, exitCode, started);
    if (notify !== undefined) await (notifier ?? notifierWithoutConfig(notify.task, notify.tier ?? null))?.failure(exitCode, message);
  }
}

const restoreLabel = (task: string, dryRun = false): MetricsLabel | undefined => (dryRun ? undefined : { task });

const CONTINUE_ON_ERROR = {
  type: "boolean",
  default: false,
  describe: "run every statement and list the failed ones (exit 10) instead of giving up a database at its first error",
} as const;

export async function main(argv: string[]): Promise<void> {
  await yargs(argv)
    .scriptName("pg-swarm-backup")
    .usage("$0 <command> [options]\n\nTiered logical backups of a PostgreSQL cluster. Configuration comes from the environment (see docs/configuration.md).")
    .command(
      "backup <tier>",
      "back up the cluster: full (all databases), differential (changed since the last full), incremental (changed since the last backup), base (a physical base backup for point-in-time recovery)",
      (y) =>
        y
          .positional("tier", { choices: [...TIERS, "base"] as const, demandOption: true, describe: "which tier" })
          .option("force", { type: "boolean", default: false, describe: "back up even when nothing changed" })
          .option("dry-run", { type: "boolean", default: false, describe: "print which databases would be dumped and why; write nothing" })
          .option("allow-new-cluster", { type: "boolean", default: false, describe: "back up a fresh, empty cluster although older backups are of another cluster" }),
      (a) =>
        execute(
          async (config, deps) => {
            if (a.tier === "base") {
              const base = await import("./baseBackup.js");
              const baseArgs = { dryRun: a.dryRun, allowNewCluster: a.allowNewCluster };
              // With S3_BUCKET set the base backup is mirrored after the local write succeeded (exit 6 if only the mirror failed).
              const r = config.s3 !== null && !a.dryRun ? await (await import("./mirror.js")).baseBackupAndMirror(config, deps, baseArgs) : await base.run(config, deps, baseArgs);
              const summary = base.summarizeBase(r);
              deps.out(summary);
              return r.status === "written" ? { bytes: r.manifest.compressedBytes, backup: r.name, summary: summary.trim() } : {};
            }
            const args = { tier: a.tier as Tier, force: a.force, dryRun: a.dryRun, allowNewCluster: a.allowNewCluster };
            const backup = await import("./backup.js");
            // With S3_BUCKET set the backup is mirrored after the local write succeeded (exit 6 if only the mirror failed).
            const r = config.s3 !== null && !a.dryRun ? await (await import("./mirror.js")).backupAndMirror(config, deps, args) : await backup.run(config, deps, args);
            const summary = backup.summarize(r);
            deps.out(summary);
            if (r.status !== "written") return { skipped: r.status === "skipped", summary: summary.trim() };
            return { bytes: r.manifest.compressedBytes, backup: r.name, summary: summary.trim() };
          },
          `backup ${String(a.tier)}`,
          a.dryRun ? undefined : { task: "backup", tier: String(a.tier) },
        ),
    )
    .command(
      "list",
      "list the backups in BACKUP_DIR (or, with --source s3, in the S3 mirror)",
      (y) =>
        y
          .option("json", { type: "boolean", default: false })
          .option("tier", { choices: [...TIERS, "base"] as const, describe: "only this tier (base: the base backups)" })
          .option("source", { choices: ["local", "s3"] as const, default: "local" as const, describe: "list BACKUP_DIR or the S3 mirror (S3_BUCKET/S3_PREFIX)" }),
      (a) =>
        execute(async (config, deps) => {
          if (a.source === "s3") await (await import("./mirror.js")).listS3(config, deps, { json: a.json, tier: a.tier });
          else await (await import("./list.js")).run(config, deps, { json: a.json, tier: a.tier });
        }, "list"),
    )
    .command(
      "mirror",
      "upload every local backup, base backup and WAL file that the S3 mirror lacks or holds differently (idempotent; checks each backup's sha256), and prune the physical tier there by cleanup's plan",
      (y) => y.option("dry-run", { type: "boolean", default: false, describe: "print what would be uploaded and why; upload nothing" }),
      (a) =>
        execute(
          async (config, deps) => {
            await (await import("./mirror.js")).run(config, deps, { dryRun: a.dryRun });
          },
          "mirror",
          a.dryRun ? undefined : { task: "mirror" },
        ),
    )
    .command(
      "list-databases <file>",
      "list the databases a backup file holds (FILE: a path or a backup name)",
      (y) => y.positional("file", { type: "string", demandOption: true }).option("json", { type: "boolean", default: false }),
      (a) =>
        execute(async (config, deps) => {
          await (await import("./listDatabases.js")).run(config, deps, { file: a.file, json: a.json });
        }, "list-databases"),
    )
    .command(
      "restore-latest",
      "restore the newest state (full + differential + incrementals) into the cluster",
      (y) =>
        y
          .option("at", { type: "string", describe: "restore the state as of this ISO time instead of the newest" })
          .option("drop-existing", { type: "boolean", default: false, describe: "replace existing non-empty databases" })
          .option("continue-on-error", CONTINUE_ON_ERROR)
          .option("dry-run", { type: "boolean", default: false, describe: "print the plan; change nothing" }),
      (a) =>
        execute(
          async (config, deps) => {
            await (await import("./restore.js")).run(config, deps, { command: "restore-latest", at: a.at, dropExisting: a.dropExisting, continueOnError: a.continueOnError, dryRun: a.dryRun });
          },
          "restore-latest",
          restoreLabel("restore-latest", a.dryRun),
        ),
    )
    .command(
      "restore-full <file>",
      "restore every database of one backup file",
      (y) =>
        y
          .positional("file", { type: "string", demandOption: true })
          .option("drop-existing", { type: "boolean", default: false })
          .option("continue-on-error", CONTINUE_ON_ERROR),
      (a) =>
        execute(
          async (config, deps) => {
            await (await import("./restore.js")).run(config, deps, { command: "restore-full", file: a.file, dropExisting: a.dropExisting, continueOnError: a.continueOnError });
          },
          "restore-full",
          restoreLabel("restore-full"),
        ),
    )
    .command(
      "restore-database <file> <db>",
      "restore one database from a backup file",
      (y) =>
        y
          .positional("file", { type: "string", demandOption: true })
          .positional("db", { type: "string", demandOption: true })
          .option("as", { type: "string", describe: "restore under another name" })
          .option("drop-existing", { type: "boolean", default: false })
          .option("continue-on-error", CONTINUE_ON_ERROR),
      (a) =>
        execute(
          async (config, deps) => {
            await (await import("./restore.js")).run(config, deps, { command: "restore-database", file: a.file, db: a.db, as: a.as, dropExisting: a.dropExisting, continueOnError: a.continueOnError });
          },
          "restore-database",
          restoreLabel("restore-database"),
        ),
    )
    .command(
      "restore-pitr",
      "prepare a stopped cluster's data directory for point-in-time recovery from the base backups and the WAL archive",
      (y) =>
        y
          .option("at", { type: "string", describe: "recover to this ISO time (with a zone); default: the end of the archived WAL" })
          .option("pgdata", { type: "string", demandOption: true, describe: "the data directory to prepare (its server must be stopped)" })
          .option("move-aside", { type: "boolean", default: false, describe: "rename a non-empty --pgdata to DIR.pgsb-moved-<time> first (never deleted)" })
          .option("owner", { type: "string", describe: "UID[:GID] to own the restored files (as root: e.g. 70:70 for the Alpine postgres image); default: this task's user" })
          .option("trust-unsigned", { type: "boolean", default: false, describe: "without BACKUP_VERIFY_KEY_FILE: restore even when the base backup's configuration runs commands or loads code (listed in the refusal)" })
          .option("source", { choices: ["local", "s3"] as const, default: "local" as const, describe: "read the base backups and WAL from BACKUP_DIR, or from the S3 mirror (S3_BUCKET/S3_PREFIX; BACKUP_DIR may be empty)" })
          .option("dry-run", { type: "boolean", default: false, describe: "print the plan; write nothing" }),
      (a) =>
        execute(
          async (config, deps) => {
            await (await import("./restorePitr.js")).run(config, deps, { at: a.at, pgdata: a.pgdata, moveAside: a.moveAside, owner: a.owner, trustUnsigned: a.trustUnsigned, dryRun: a.dryRun, source: a.source });
          },
          "restore-pitr",
          restoreLabel("restore-pitr", a.dryRun),
        ),
    )
    .command(
      "auto-restore",
      "restore the newest backups into a wiped cluster; a no-op anywhere else",
      (y) => y.option("wait", { type: "number", default: 60, describe: "seconds to wait for PostgreSQL" }),
      (a) =>
        execute(
          async (config, deps) => {
            if (!Number.isFinite(a.wait) || a.wait < 0) throw new TaskError(ExitCode.usage, `--wait ${String(a.wait)} is not a number of seconds; use e.g. --wait 60`);
            await (await import("./autoRestore.js")).run(config, deps, { waitSeconds: a.wait });
          },
          "auto-restore",
          { task: "auto-restore" },
        ),
    )
    .command(
      "cleanup",
      "delete backups the retention policy no longer needs",
      (y) =>
        y
          .option("dry-run", { type: "boolean", default: false })
          .option("json", { type: "boolean", default: false })
          .option("now", { type: "string", describe: "plan as of this ISO time (a date, or a date-time with a zone)" }),
      (a) =>
        execute(
          async (config, deps) => {
            await (await import("./cleanup.js")).run(config, deps, { dryRun: a.dryRun, json: a.json, now: a.now });
          },
          "cleanup",
          a.dryRun ? undefined : { task: "cleanup" },
        ),
    )
    .command(
      "verify",
      "prove the backups are intact and restorable",
      (y) =>
        y
          .option("json", { type: "boolean", default: false })
          .option("max-age", { type: "number", describe: "hours; the newest backup must be younger" })
          .option("restore", { type: "boolean", default: false, describe: "restore the newest chain into a throwaway cluster and compare row counts" }),
      (a) =>
        execute(async (config, deps) => {
          const [verify, { verifyServerConfig }] = await Promise.all([import("./verify.js"), import("../lib/verify/target.js")]);
          const report = await verify.run(config, deps, { json: a.json, maxAgeHours: a.maxAge, restore: a.restore, server: verifyServerConfig(process.env) });
          const failed = report.checks.filter((c) => !c.ok).map((c) => `${c.name}${c.file === undefined ? "" : ` ${c.file}`}: ${c.message}`);
          return { code: report.ok ? ExitCode.ok : ExitCode.verifyFailed, summary: report.ok ? `all ${report.checks.length} checks passed` : failed.join("\n") };
        }, "verify", undefined, { task: "verify" }),
    )
    .command(
      "status",
      "show the newest backup per tier and each task's last run and result (from METRICS_FILE)",
      (y) => y.option("json", { type: "boolean", default: false }),
      (a) =>
        execute(async (config, deps) => {
          await (await import("./status.js")).run(config, deps, { json: a.json });
        }, "status"),
    )
    .command(
      "wal-receive",
      "stream WAL into BACKUP_DIR/wal with pg_receivewal through a replication slot; runs until stopped (the wal-receive service)",
      (y) => y.option("dry-run", { type: "boolean", default: false, describe: "print the slot and the pg_receivewal command; start nothing" }),
      (a) =>
        execute(
          async (config, deps) => {
            await (await import("./walReceive.js")).run(config, deps, { dryRun: a.dryRun });
          },
          "wal-receive",
          a.dryRun ? undefined : { task: "wal-receive" },
        ),
    )
    .command(
      "notify-test",
      "send a test ping (HEALTHCHECK_URL/log) and a test webhook (NOTIFY_URL) and show what each endpoint answered",
      (y) => y.option("json", { type: "boolean", default: false }),
      (a) =>
        execute(async (config, deps) => {
          const report = await (await import("./notifyTest.js")).run(config, deps, { json: a.json });
          return { code: report.ok ? ExitCode.ok : ExitCode.failed };
        }, "notify-test"),
    )
    .demandCommand(1, "name a command; see --help")
    .strict()
    .epilogue(`${EXIT_TABLE}\n\nCores here: ${availableParallelism()}. Docs: README.md and docs/cli.md`)
    .version(TOOL.version)
    .help()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((msg, err) => {
      if (err) throw err;
      process.stderr.write(`pg-swarm-backup: ${msg}\nRun with --help for usage.\n`);
      process.exitCode = ExitCode.usage;
    })
    .parseAsync();
}

await main(hideBin(process.argv));
