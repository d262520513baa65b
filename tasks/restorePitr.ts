// restore-pitr [--at ISO-TIME] --pgdata DIR [--move-aside] [--trust-unsigned] [--dry-run]: prepares a stopped
// cluster's data directory for point-in-time recovery from BACKUP_DIR/base and BACKUP_DIR/wal.
// The result is started by postgres itself, which replays the staged WAL to the target and
// promotes. The decisions are in lib/pitr/plan.ts; lib/pitr/restore.ts acts.
import { isAbsolute, resolve } from "node:path";
import type { Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { ExitCode, TaskError } from "../lib/core/errors.js";
import { humanBytes } from "../lib/core/format.js";
import { inspectDataDir } from "../lib/pitr/dataDir.js";
import type { DataDirState } from "../lib/pitr/dataDir.js";
import { formatPitrPlan, planPitr } from "../lib/pitr/plan.js";
import type { PitrPlan } from "../lib/pitr/plan.js";
import { restorePitr } from "../lib/pitr/restore.js";
import { assertPlannedBase } from "../lib/pitr/baseChecks.js";
import { trustBase } from "../lib/pitr/trustedBase.js";
import { assertBaseDecryptable } from "../lib/pitr/baseExtract.js";
import type { PitrRestoreOptions, PitrRestoreOutcome } from "../lib/pitr/restore.js";
import { scanBaseCatalog } from "../lib/base/catalog.js";
import { historiesByTimeline, listWalArchive, readHistoryFiles } from "../lib/wal/archive.js";
import type { WalTrust } from "../lib/wal/readFile.js";
import { checkPlannedWal, stagedHistories } from "../lib/pitr/plannedWal.js";
import { statementsIn } from "../lib/wal/signedRecord.js";

export interface RestorePitrArgs {
  at?: string;
  pgdata: string;
  moveAside: boolean;
  /** "UID[:GID]": hand the restored files to this user (needs root). */
  owner?: string;
  /** Restore an unsigned base backup whose configuration runs commands or loads code (README "Restoring to a point in time"). */
  trustUnsigned?: boolean;
  dryRun: boolean;
}

export type RestorePitrResult = { status: "planned"; plan: PitrPlan } | ({ status: "restored"; plan: PitrPlan } & PitrRestoreOutcome);

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

export async function run(config: Config, deps: Deps, args: RestorePitrArgs): Promise<RestorePitrResult> {
  const log = deps.log.child({ task: "restore-pitr" });
  const target = parseAt(args.at);
  const owner = parseOwner(args.owner);
  if (args.pgdata === "") throw new TaskError(ExitCode.usage, "--pgdata is empty; name the data directory to prepare, e.g. --pgdata /var/lib/postgresql/data");
  const dataDir = isAbsolute(args.pgdata) ? args.pgdata : resolve(args.pgdata);
  const state = await inspectDataDir(dataDir);
  const refusal = refusalFor(dataDir, state, args.moveAside);
  // A dry run shows the plan and what would stop the restore, so it can run while postgres still does.
  if (refusal !== null && !args.dryRun) throw refusal;

  const [bases, listing] = await Promise.all([scanBaseCatalog(config.backupDir), listWalArchive(config.backupDir)]);
  const trust: WalTrust = { verifyKey: config.signing.verifyKey, identity: config.encryption.identity, env: deps.env };
  // Each history file is read once, checked (signature, decryption) and parsed; the plan follows what was checked.
  const histories = await readHistoryFiles(listing, trust).catch((err: unknown) => {
    throw nothingWritten(err);
  });
  const plan = planPitr(bases, { segments: listing.segments, historyNames: listing.histories.map((h) => h.file.name), histories: historiesByTimeline(histories) }, target);
  log.info({ backup: plan.base, target: target?.toISOString() ?? null, segments: plan.segments.length, first: plan.firstSegment, last: plan.lastSegment }, "point-in-time restore planned");
  const walRefusal = await checkPlannedWal(plan, statementsIn(listing.dir), histories, trust).then(() => null, (err: unknown) => err);
  if (args.dryRun) {
    const then = refusal !== null ? `would be refused now: ${refusal.message}` : state.kind === "non-empty" ? "its contents would be moved aside" : "would be created or filled";
    const wal = walRefusal === null ? `${config.signing.verifyKey === null ? "not checked (no BACKUP_VERIFY_KEY_FILE)" : "every planned file is signed"}` : `would be refused: ${(walRefusal as Error).message}`;
    deps.out(formatPitrPlan(plan) + `signatures:   ${wal}\ndata directory: ${dataDir} (${state.kind}): ${then}\n`);
    return { status: "planned", plan };
  }
  if (refusal !== null) throw refusal;
  if (walRefusal !== null) throw nothingWritten(walRefusal);
  const basePath = (bases.find((b) => b.name === plan.base) as (typeof bases)[number]).path;
  log.info({ backup: plan.base }, `checking ${plan.base}'s ${config.signing.verifyKey === null ? "checksum sidecar" : "signature"} and manifest; its chunks are checked as it is read`);
  const base = await trustBase(basePath, config.signing.verifyKey).catch((err: unknown) => {
    throw err instanceof TaskError ? new TaskError(err.exitCode, `restore-pitr refused, nothing was written: ${err.message}`, { cause: err }) : err;
  });
  assertPlannedBase(plan, base);
  assertBaseDecryptable(base, config.encryption.identity);
  if (!base.signed) log.warn({ backup: plan.base, unsigned: true }, `${plan.base} is used without a signature check (BACKUP_VERIFY_KEY_FILE is unset)`);
  const outcome = await restorePitr(plan, {
    backupDir: config.backupDir,
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
    histories: stagedHistories(plan, histories),
    wal: { verifyKey: trust.verifyKey, identity: trust.identity },
  });
  log.info({ backup: plan.base, dataDir, movedTo: outcome.movedTo, seconds: outcome.seconds }, "data directory prepared for point-in-time recovery");
  deps.out(
    `prepared ${dataDir} from ${plan.base} (${humanBytes(outcome.rawBytes)}) and ${plan.segments.length} WAL segment(s) up to ${plan.lastSegment} in ${outcome.seconds.toFixed(1)} s; ` +
      `start postgres on it: it recovers to ${target === null ? "the end of the archived WAL" : target.toISOString()} and promotes` +
      `${outcome.movedTo === null ? "" : `; the old data directory is at ${outcome.movedTo}`}\n`,
  );
  return { status: "restored", plan, ...outcome };
}
