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
import { databasesCell, describeEntry } from "./list.js";

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

/** `mirror [--dry-run]`: upload whatever S3 lacks or holds differently, checking each object's sha256 metadata. */
export async function run(config: Config, deps: Deps, args: MirrorArgs): Promise<MirrorReport> {
  const s3 = requireS3(config);
  const log = deps.log.child({ task: "mirror" });
  // The lock keeps a concurrent cleanup from deleting a backup (locally and in S3) while it goes up.
  await assertBackupDir(config.backupDir, "nothing was uploaded");
  await assertBackupDirIdentity(config.backupDir, { metricsFile: config.metricsFile, log, create: false, fileMode: config.files.file });
  const lock = args.dryRun ? null : await acquireLock(config, "mirror", log);
  try {
    const report = await mirrorAll(mirrorTarget(s3, log, args.options), await scanCatalog(config.backupDir), { dryRun: args.dryRun, thorough: true });
    deps.out(formatReport(s3, report, args.dryRun));
    return report;
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

export interface ListS3Args {
  json: boolean;
  tier?: Tier;
}

/** `list --source s3`: the backups in the bucket, read from the listing and their remote manifests. */
export async function listS3(config: Config, deps: Deps, args: ListS3Args): Promise<void> {
  const s3 = requireS3(config);
  const t = mirrorTarget(s3, deps.log.child({ task: "list", source: "s3" }));
  const remote = (await listRemote(t)).filter((r) => args.tier === undefined || r.tier === args.tier);
  const entries = await remoteCatalog(t, config.backupDir, remote);
  const where = s3Url(s3, keyPrefix(s3));
  const listed = entries.map((e) => ({ ...describeEntry(e, config.tz), sha256: e.manifest?.sha256 ?? null }));
  if (args.json) {
    deps.out(JSON.stringify({ source: where, backups: listed }, null, 2) + "\n");
    return;
  }
  if (listed.length === 0) {
    deps.out(`no backups in ${where}${args.tier ? ` (tier ${args.tier})` : ""}; run \`pg-swarm-backup mirror\` to upload the local ones\n`);
    return;
  }
  const rows = [["TIER", `TIME (${config.tz})`, "SIZE", "DATABASES", "NAME"]];
  for (const b of listed) rows.push([b.tier, b.localTime, humanBytes(b.bytes), databasesCell(b), b.name]);
  deps.out(`${where}\n` + table(rows));
}
