// restore-pitr [--at ISO-TIME] --pgdata DIR [--move-aside] [--trust-unsigned] [--source local|s3] [--dry-run]:
// prepares a stopped cluster's data directory for point-in-time recovery from BACKUP_DIR/base and
// BACKUP_DIR/wal, or (--source s3) from the S3 mirror with BACKUP_DIR empty or gone.
// The result is started by postgres itself, which replays the staged WAL to the target and
// promotes. The decisions are in lib/pitr/plan.ts, the sources in lib/pitr/source.ts and
// lib/offsite/pitrSource.ts; lib/pitr/restore.ts acts.
import { tmpdir } from "node:os";
import { isAbsolute, resolve } from "node:path";
import type { Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { ExitCode, TaskError } from "../lib/core/errors.js";
import { humanBytes } from "../lib/core/format.js";
import { inspectDataDir } from "../lib/pitr/dataDir.js";
import { assertBackupDir, assertBackupDirIdentity } from "../lib/store/backupDir.js";
import type { DataDirState } from "../lib/pitr/dataDir.js";
import { formatPitrPlan } from "../lib/pitr/plan.js";
import type { PitrPlan } from "../lib/pitr/plan.js";
import { restorePitr } from "../lib/pitr/restore.js";
import { assertBaseDecryptable } from "../lib/pitr/baseExtract.js";
import type { PitrRestoreOptions, PitrRestoreOutcome } from "../lib/pitr/restore.js";
import { localSource } from "../lib/pitr/source.js";
import type { PitrSource } from "../lib/pitr/source.js";
import type { WalTrust } from "../lib/wal/readFile.js";
import { checkPlannedWal, stagedHistories } from "../lib/pitr/plannedWal.js";

export interface RestorePitrArgs {
  at?: string;
  pgdata: string;
  moveAside: boolean;
  /** "UID[:GID]": hand the restored files to this user (needs root). */
  owner?: string;
  /** Restore an unsigned base backup whose configuration runs commands or loads code (docs/pitr.md "Restoring to a point in time"). */
  trustUnsigned?: boolean;
  dryRun: boolean;
  /** Where the base backups and WAL are read: BACKUP_DIR (default) or the S3 mirror (docs/s3.md). */
  source?: "local" | "s3";
}

export type RestorePitrResult = { status: "planned"; plan: PitrPlan } | ({ status: "restored"; plan: PitrPlan; fetched: { bytes: number; of: number } | null } & PitrRestoreOutcome);

function parseAt(at: string | undefined): Date | null {
  if (at === undefined) return null;
  // A time without a zone would be read in the task's TZ; PITR targets are unambiguous or refused.
  if (!/(Z|[+-]\d\d:?\d\d)$/i.test(at.trim())) throw new TaskError(ExitCode.usage, `--at ${JSON.stringify(at)} has no time zone; add Z or an offset, e.g. 2024-01-10T12:00:00Z`);
  const date = new Date(at);
  if (Number.isNaN(date.getTime())) throw new TaskError(ExitCode.usage, `--at ${JSON.stringify(at)} is not a date; use ISO 8601 with a zone, e.g. 2024-01-10T12:00:00Z`);
  return date;
}

function parseOwner(owner: string | undefined): { uid: number; gid: number } | null {
  if (owner === undefined) return null;
  const m = /^(\d+)(?::(\d+))?$/.exec(owner.trim());
  if (m === null) throw new TaskError(ExitCode.usage, `--owner ${JSON.stringify(owner)} is not UID[:GID]; use numbers, e.g. --owner 70:70 (the Alpine postgres image's user)`);
  if (process.getuid?.() !== 0) throw new TaskError(ExitCode.usage, "--owner needs root (only root can give files away); run the task as root, or as the user postgres runs as and without --owner");
  return { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) };
}

/** Why the data directory cannot be prepared as it is, or null. */
function refusalFor(dataDir: string, state: DataDirState, moveAside: boolean): TaskError | null {
  if (state.kind === "live") return new TaskError(ExitCode.refused, `--pgdata ${dataDir} belongs to a running PostgreSQL server (${state.why}); stop it first (on Swarm: scale the postgres service to 0), nothing was written`);
  if (state.kind === "not-a-directory") return new TaskError(ExitCode.refused, `--pgdata ${dataDir} is ${state.what}, not a folder; point --pgdata at the data directory itself, nothing was written`);
  if (state.kind === "non-empty" && !moveAside) {
    return new TaskError(ExitCode.refused, `--pgdata ${dataDir} is not empty (${state.entries} entries); add --move-aside to rename it to ${dataDir}.pgsb-moved-<time> (into ${dataDir}/.pgsb-moved-<time>/ when it is a mount point; never deleted), or choose an empty folder; nothing was written`);
  }
  return null;
}

/** A refusal found before anything was written says so. */
function nothingWritten(err: unknown): unknown {
  return err instanceof TaskError && err.exitCode === ExitCode.refused ? new TaskError(ExitCode.refused, `restore-pitr refused, nothing was written: ${err.message}`, { cause: err }) : err;
}

/** Plans from BACKUP_DIR or the S3 mirror; a refusal found while planning says nothing was written. */
async function planned(config: Config, deps: Deps, args: RestorePitrArgs, target: Date | null, trust: WalTrust, log: Deps["log"]): Promise<PitrSource> {
  const tmp = deps.env.TMPDIR ?? tmpdir();
  if (args.source !== "s3") {
    await assertBackupDir(config.backupDir, "nothing was restored");
    await assertBackupDirIdentity(config.backupDir, { metricsFile: config.metricsFile, log, create: false, fileMode: config.files.file });
  }
  const source = args.source === "s3" ? (await import("../lib/offsite/pitrSource.js")).bucketSource(config, target, trust, tmp, log) : localSource(config, target, trust, log);
  return source.catch((err: unknown) => {
    throw nothingWritten(err);
  });
}

export async function run(config: Config, deps: Deps, args: RestorePitrArgs): Promise<RestorePitrResult> {
  const log = deps.log.child({ task: "restore-pitr", source: args.source ?? "local" });
  const target = parseAt(args.at);
  const owner = parseOwner(args.owner);
  if (args.pgdata === "") throw new TaskError(ExitCode.usage, "--pgdata is empty; name the data directory to prepare, e.g. --pgdata /var/lib/postgresql/data");
  if (args.source === "s3" && config.s3 === null) throw new TaskError(ExitCode.usage, "--source s3 needs the S3 mirror's settings: set S3_BUCKET (and S3_ENDPOINT/S3_REGION, S3_PREFIX and the credentials) as the services that upload have them");
  const dataDir = isAbsolute(args.pgdata) ? args.pgdata : resolve(args.pgdata);
  const state = await inspectDataDir(dataDir);
  const refusal = refusalFor(dataDir, state, args.moveAside);
  // A dry run shows the plan and what would stop the restore, so it can run while postgres still does.
  if (refusal !== null && !args.dryRun) throw refusal;

  const trust: WalTrust = { verifyKey: config.signing.verifyKey, identity: config.encryption.identity, env: deps.env };
  const source = await planned(config, deps, args, target, trust, log);
  const plan = source.plan;
  log.info({ backup: plan.base, target: target?.toISOString() ?? null, segments: plan.segments.length, first: plan.firstSegment, last: plan.lastSegment }, "point-in-time restore planned");
  const walRefusal = await checkPlannedWal(plan, source.signatures, source.histories, trust).then(() => null, (err: unknown) => err);
  if (args.dryRun) {
    const then = refusal !== null ? `would be refused now: ${refusal.message}` : state.kind === "non-empty" ? "its contents would be moved aside" : "would be created or filled";
    const wal = walRefusal === null ? `${config.signing.verifyKey === null ? "not checked (no BACKUP_VERIFY_KEY_FILE)" : "every planned file is signed"}` : `would be refused: ${(walRefusal as Error).message}`;
    deps.out(formatPitrPlan(plan) + source.notes.map((n) => n + "\n").join("") + `signatures:   ${wal}\ndata directory: ${dataDir} (${state.kind}): ${then}\n`);
    return { status: "planned", plan };
  }
  if (refusal !== null) throw refusal;
  if (walRefusal !== null) throw nothingWritten(walRefusal);
  const { trusted: base, release } = await source.base((b) => assertBaseDecryptable({ ...b, path: b.name }, config.encryption.identity)).catch((err: unknown) => {
    throw err instanceof TaskError && err.exitCode === ExitCode.refused ? nothingWritten(err) : err;
  });
  try {
    if (!base.signed) log.warn({ backup: plan.base, unsigned: true }, `${plan.base} is used without a signature check (BACKUP_VERIFY_KEY_FILE is unset)`);
    const outcome = await restorePitr(plan, {
      backupDir: config.backupDir,
      walSource: source.wal,
      base,
      dataDir,
      // "live" and "not-a-directory" always come with a refusal, thrown above.
      existing: state.kind as PitrRestoreOptions["existing"],
      owner,
      trustUnsigned: args.trustUnsigned === true,
      identity: config.encryption.identity,
      threads: config.compression.threads,
      env: deps.env,
      log,
      now: deps.now,
      histories: stagedHistories(plan, source.histories),
      wal: { verifyKey: trust.verifyKey, identity: trust.identity },
    });
    const fetched = source.fetched();
    log.info({ backup: plan.base, dataDir, movedTo: outcome.movedTo, seconds: outcome.seconds, ...(fetched === null ? {} : { fetchedBytes: fetched.bytes, bucketBytes: fetched.of }) }, "data directory prepared for point-in-time recovery");
    deps.out(
      `prepared ${dataDir} from ${plan.base} (${humanBytes(outcome.rawBytes)}) and ${plan.segments.length} WAL segment(s) up to ${plan.lastSegment} in ${outcome.seconds.toFixed(1)} s; ` +
        `start postgres on it: it recovers to ${target === null ? "the end of the archived WAL" : target.toISOString()} and promotes` +
        `${outcome.movedTo === null ? "" : `; the old data directory is at ${outcome.movedTo}`}` +
        `${fetched === null ? "" : `; fetched ${humanBytes(fetched.bytes)} of the ${humanBytes(fetched.of)} in ${source.where}`}\n`,
    );
    return { status: "restored", plan, ...outcome, fetched };
  } finally {
    await release();
  }
}
