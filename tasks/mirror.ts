// mirror: re-sync every local backup to S3 (what is missing or differs), `backup` followed
// by its upload, and `list --source s3`. A mirror failure never touches the local backups;
// it ends the task with ExitCode.mirrorFailed so the operator sees it.
import { scanCatalog } from "../lib/store/catalog.js";
import { assertBackupDir, assertBackupDirIdentity } from "../lib/store/backupDir.js";
import type { Config, S3Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { ConfigError, ExitCode, TaskError } from "../lib/core/errors.js";
import { humanBytes, table } from "../lib/core/format.js";
import { acquireLock } from "../lib/postgres/lock.js";
import type { MirrorReport } from "../lib/s3/mirror.js";
import { mirrorAll, uploadBackup } from "../lib/s3/mirror.js";
import type { Tier } from "../lib/store/naming.js";
import { listRemote, remoteCatalog } from "../lib/s3/remoteCatalog.js";
import type { MirrorOptions } from "../lib/s3/client.js";
import { keyPrefix, mirrorTarget, s3Url } from "../lib/s3/client.js";
import type { BackupArgs, BackupResult } from "./backup.js";
import { run as backup } from "./backup.js";
import type { BaseBackupArgs, BaseBackupResult } from "./baseBackup.js";
import { run as baseBackup } from "./baseBackup.js";
import { databasesCell, describeEntry } from "./list.js";
import type { PhysicalMirrorReport } from "../lib/offsite/physicalMirror.js";
import { mirrorPhysical } from "../lib/offsite/physicalMirror.js";
import { uploadBase } from "../lib/offsite/baseUpload.js";
import { listBucketPhysical } from "../lib/offsite/listing.js";
import { formatBases } from "../lib/base/listing.js";
import { formatWalSummary } from "../lib/wal/summary.js";

export interface MirrorArgs {
  dryRun: boolean;
  /** Tests use small parts and few retries; production takes the defaults. */
  options?: MirrorOptions;
}

function requireS3(config: Config): S3Config {
  if (config.s3 === null) throw new ConfigError("S3_BUCKET is not set, so the S3 mirror is off; set S3_BUCKET (and S3_ENDPOINT/S3_REGION, credentials) to use it");
  return config.s3;
}

function formatReport(s3: S3Config, r: MirrorReport, dryRun: boolean): string {
  const lines = [`${dryRun ? "would upload" : "uploaded"} ${r.planned.length} backup(s) to ${s3Url(s3, keyPrefix(s3))}; ${r.inSync.length} already in S3`];
  for (const p of r.planned) lines.push(`  ${dryRun ? "upload" : "uploaded"} ${p.name}: ${p.reason}`);
  for (const s of r.skipped) lines.push(`  not uploaded ${s.name}: unusable locally (${s.reason})`);
  return lines.join("\n") + "\n";
}

function formatPhysical(p: PhysicalMirrorReport, dryRun: boolean): string {
  const verb = dryRun ? "would upload" : "uploaded";
  const lines = [`base backups: ${verb} ${p.bases.planned.length}; ${p.bases.inSync.length} already in S3`];
  for (const b of p.bases.planned) lines.push(`  ${dryRun ? "upload" : "uploaded"} ${b.name}: ${b.reason}`);
  for (const b of p.bases.skipped) lines.push(`  not uploaded ${b.name}: unusable locally (${b.reason})`);
  for (const b of p.bases.refused) lines.push(`  not uploaded ${b.name}: ${b.problem}`);
  const w = p.wal;
  lines.push(`WAL: ${verb} ${dryRun ? w.planned.length : w.uploaded.length} file(s)${w.planned.length > 0 ? ` (${w.planned[0]?.name} .. ${w.planned.at(-1)?.name})` : ""}${w.staleSnapshots.length > 0 ? `; ${dryRun ? "would delete" : "deleted"} ${w.staleSnapshots.length} stale snapshot(s)` : ""}`);
  for (const r of w.refused) lines.push(`  not uploaded ${r.name}: ${r.problem}`);
  if (p.prune === null) lines.push("pruning: none (S3_RETENTION=keep: the bucket's lifecycle rules decide)");
  else {
    const pr = p.prune;
    lines.push(`pruning (cleanup's plan): ${dryRun ? "would delete" : "deleted"} ${pr.bases.length} base backup(s), ${pr.wal.length} WAL file(s); ${pr.walReason}`);
    for (const b of pr.bases) lines.push(`  ${dryRun ? "delete" : "deleted"} ${b.name}: ${b.reason}`);
  }
  return lines.join("\n") + "\n";
}

export interface FullMirrorReport extends MirrorReport {
  physical: PhysicalMirrorReport | null;
}

/** `mirror [--dry-run]`: upload whatever S3 lacks or holds differently, checking each object's sha256 metadata; prune the physical tier by cleanup's plan. */
export async function run(config: Config, deps: Deps, args: MirrorArgs): Promise<FullMirrorReport> {
  const s3 = requireS3(config);
  const log = deps.log.child({ task: "mirror" });
  // The lock keeps a concurrent cleanup from deleting a backup (locally and in S3) while it goes up.
  await assertBackupDir(config.backupDir, "nothing was uploaded");
  await assertBackupDirIdentity(config.backupDir, { metricsFile: config.metricsFile, log, create: false, fileMode: config.files.file });
  const lock = args.dryRun ? null : await acquireLock(config, "mirror", log);
  try {
    const t = mirrorTarget(s3, log, args.options);
    const report = await mirrorAll(t, await scanCatalog(config.backupDir), { dryRun: args.dryRun, thorough: true });
    deps.out(formatReport(s3, report, args.dryRun));
    const physical = await mirrorPhysical(config, t, { dryRun: args.dryRun, thorough: true, upload: true, now: deps.now() }, log);
    if (physical !== null) deps.out(formatPhysical(physical, args.dryRun));
    const [refused, ...more] = physical?.bases.refused ?? [];
    if (refused !== undefined) {
      throw new TaskError(ExitCode.refused, `${refused.problem}${more.length > 0 ? ` (and ${more.length} more base backup(s): ${more.map((b) => b.name).join(", ")})` : ""}; everything else was mirrored`);
    }
    return { ...report, physical };
  } finally {
    await lock?.release();
  }
}

/**
 * `backup <tier>` with the mirror: the backup task, then — when S3_BUCKET is set and the
 * backup was written or skipped — its upload and a catch-up of anything an earlier failed
 * run left behind. A mirror failure is logged and thrown as ExitCode.mirrorFailed; the
 * local backup stays as written.
 */
export async function backupAndMirror(config: Config, deps: Deps, args: BackupArgs, options?: MirrorOptions): Promise<BackupResult> {
  const result = await backup(config, deps, args);
  if (config.s3 === null || result.status === "planned") return result;
  const log = deps.log.child({ task: "backup", tier: args.tier, mirror: "s3" });
  const t = mirrorTarget(config.s3, log, options);
  try {
    if (result.status === "written") await uploadBackup(t, result);
    const report = await mirrorAll(t, await scanCatalog(config.backupDir));
    if (report.uploaded.length > 0) log.info({ backups: report.uploaded.map((u) => u.name) }, `caught up: uploaded ${report.uploaded.length} backup(s) an earlier run had not`);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const local = result.status === "written" ? `the ${result.tier} backup ${result.path} is written and intact` : "no new backup was needed";
    log.error({ err: why }, `S3 mirror failed; ${local}`);
    throw new TaskError(ExitCode.mirrorFailed, `${local}, but the S3 mirror failed: ${why}. The next backup or \`pg-swarm-backup mirror\` uploads what is missing`, { cause: err });
  }
  return result;
}

/**
 * `backup base` with the mirror: the base backup, then — when S3_BUCKET is set — its upload and
 * a catch-up of base backups and WAL the bucket lacks. A mirror failure is logged and thrown as
 * ExitCode.mirrorFailed; the local base backup stays as written.
 */
export async function baseBackupAndMirror(config: Config, deps: Deps, args: BaseBackupArgs, options?: MirrorOptions): Promise<BaseBackupResult> {
  const result = await baseBackup(config, deps, args);
  if (config.s3 === null || result.status !== "written") return result;
  const log = deps.log.child({ task: "backup", tier: "base", mirror: "s3" });
  const t = mirrorTarget(config.s3, log, options);
  try {
    await uploadBase(t, result.path, config.signing.verifyKey);
    await mirrorPhysical(config, t, { dryRun: false, thorough: false, upload: true, now: deps.now() }, log);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    // The base backup just written does not read back as written: not a mirror problem, and not "intact".
    if (err instanceof TaskError && err.exitCode === ExitCode.refused) throw err;
    log.error({ err: why }, `S3 mirror failed; the base backup ${result.path} is written and intact`);
    throw new TaskError(ExitCode.mirrorFailed, `the base backup ${result.path} is written and intact, but the S3 mirror failed: ${why}. The next \`backup base\` or \`pg-swarm-backup mirror\` uploads what is missing`, { cause: err });
  }
  return result;
}

export interface ListS3Args {
  json: boolean;
  /** A logical tier, or "base" for the base backups only. */
  tier?: Tier | "base";
}

/** `list --source s3`: the backups in the bucket, read from the listing and their remote manifests, and the physical tier (base backups and the WAL range). */
export async function listS3(config: Config, deps: Deps, args: ListS3Args): Promise<void> {
  const s3 = requireS3(config);
  const t = mirrorTarget(s3, deps.log.child({ task: "list", source: "s3" }));
  const remote = args.tier === "base" ? [] : (await listRemote(t)).filter((r) => args.tier === undefined || r.tier === args.tier);
  const entries = await remoteCatalog(t, config.backupDir, remote);
  const where = s3Url(s3, keyPrefix(s3));
  const listed = entries.map((e) => ({ ...describeEntry(e, config.tz), sha256: e.manifest?.sha256 ?? null }));
  const physical = args.tier === undefined || args.tier === "base" ? await listBucketPhysical(t, config.signing.verifyKey, config.tz) : { bases: [], wal: null };
  const wal = args.tier === undefined ? physical.wal : null;
  if (args.json) {
    deps.out(JSON.stringify({ source: where, backups: listed, bases: physical.bases, wal }, null, 2) + "\n");
    return;
  }
  const walLine = wal === null ? "" : formatWalSummary(wal, config.tz);
  if (listed.length === 0 && physical.bases.length === 0) {
    deps.out(`no backups in ${where}${args.tier ? ` (tier ${args.tier})` : ""}; run \`pg-swarm-backup mirror\` to upload the local ones\n` + walLine);
    return;
  }
  const rows = [["TIER", `TIME (${config.tz})`, "SIZE", "DATABASES", "NAME"]];
  for (const b of listed) rows.push([b.tier, b.localTime, humanBytes(b.bytes), databasesCell(b), b.name]);
  const logical = listed.length > 0 ? table(rows) : "";
  const bases = physical.bases.length > 0 ? (logical === "" ? "" : "\n") + formatBases(physical.bases, config.tz) : "";
  deps.out(`${where}\n` + logical + bases + walLine);
}
