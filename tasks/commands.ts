// The command definitions: each command's options and the handler it hands to `execute` (tasks/cli.ts,
// which reads argv and the environment and maps errors to exit codes). Task modules are imported
// when their command runs, so a no-change incremental does not pay for loading the S3 SDK or the restore code.
import type { Argv } from "yargs";
import type { Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { ExitCode, TaskError } from "../lib/core/errors.js";
import type { Tier } from "../lib/store/naming.js";
import { TIERS } from "../lib/store/naming.js";

/** What a handler reports back: an exit code other than 0, and what a backup wrote (for metrics and notifications). */
export interface Outcome {
  code?: ExitCode;
  bytes?: number;
  backup?: string;
  /** Nothing changed, nothing written: a success for the monitor, "skipped" in the webhook. */
  skipped?: boolean;
  summary?: string;
}
export type Handler = (config: Config, deps: Deps) => Promise<Outcome | void>;

/** Which runs are recorded in METRICS_FILE: mutating tasks, not dry runs or read-only commands (verify records its own). */
export interface MetricsLabel {
  task: string;
  tier?: string;
}

/** Runs a handler as `task`; `metrics`: recorded in METRICS_FILE; `notify`: pinged and reported to the webhook (defaults to `metrics`). */
export type Execute = (handler: Handler, task: string, metrics?: MetricsLabel, notify?: MetricsLabel) => Promise<void>;

const restoreLabel = (task: string, dryRun = false): MetricsLabel | undefined => (dryRun ? undefined : { task });

const CONTINUE_ON_ERROR = {
  type: "boolean",
  default: false,
  describe: "run every statement and list the failed ones (exit 10) instead of giving up a database at its first error",
} as const;

/** Every command, on the yargs instance the caller built (tasks/cli.ts adds the global settings and parses). */
export function registerCommands(parser: Argv, execute: Execute): Argv {
  return parser
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
          const report = await verify.run(config, deps, { json: a.json, maxAgeHours: a.maxAge, restore: a.restore, server: verifyServerConfig(deps.env) });
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
    );
}
