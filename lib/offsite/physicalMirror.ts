// `mirror` for the physical tier, and the bucket's part of `cleanup`: base backups of
// BACKUP_DIR/base the bucket lacks go up (baseUpload.ts: verified chunk by chunk as they are
// read), WAL of wal/ the bucket lacks goes up (the same plan and upload as wal-receive's, so a
// gap left while wal-receive could not reach S3, or WAL archived before S3 was set, is caught
// up), snapshots made stale by a complete segment are deleted, and — unless S3_RETENTION=keep —
// the bucket is pruned by cleanup's plan with the guard of prunePlan.ts. Uploads come first, so
// a prune never removes what a kept base backup needs and only BACKUP_DIR holds.
import { createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import type { Config } from "../config/config.js";
import { mapLimit } from "../core/concurrency.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { listBaseDir, scanBaseCatalog, usableBases } from "../base/catalog.js";
import { WAL_SIGNATURE_SUFFIX, parseWalName, walDir } from "../physical/layout.js";
import type { WalFile } from "../physical/layout.js";
import type { MirrorTarget } from "../s3/client.js";
import { physicalKey, s3Failure, s3Url, keyPrefix } from "../s3/client.js";
import { deleteKeys, headObject } from "../s3/objects.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX, SIGNATURE_SUFFIX } from "../store/naming.js";
import { listWalArchive } from "../wal/archive.js";
import { storedLimit } from "../wal/readFile.js";
import { listRemoteWal, remoteSizes, uploadWalFile, walObjectKey } from "../receiver/walUpload.js";
import { localWal } from "../receiver/walUploader.js";
import { planWalUploads } from "../receiver/walUploads.js";
import { uploadBase } from "./baseUpload.js";
import type { PruneBase, PrunePlan } from "./prunePlan.js";
import { planBucketPrune } from "./prunePlan.js";
import type { RemoteBase } from "./remoteBases.js";
import { listRemoteBases, readRemoteBases } from "./remoteBases.js";
import { planBaseUploads } from "./uploadPlan.js";

export interface PhysicalMirrorReport {
  bases: {
    planned: { name: string; reason: string }[];
    uploaded: string[];
    inSync: string[];
    skipped: { name: string; reason: string }[];
    /** Found not to match their manifest as they were read for the upload: not uploaded (the others were). */
    refused: { name: string; problem: string }[];
  };
  wal: { planned: { name: string; reason: string }[]; uploaded: string[]; refused: { name: string; problem: string }[]; staleSnapshots: string[] };
  /** The bucket's pruning; null with S3_RETENTION=keep. */
  prune: PrunePlan | null;
}

export interface PhysicalMirrorOptions {
  dryRun: boolean;
  /** Check the sha256 metadata of base backups whose listing looks right (the `mirror` command). */
  thorough: boolean;
  /** Upload what the bucket lacks (mirror); cleanup only prunes. */
  upload: boolean;
  /** Retention's clock (cleanup --now). */
  now: Date;
}

/** What checks WAL before it goes up: BACKUP_VERIFY_KEY_FILE, or the public half of BACKUP_SIGNING_KEY_FILE. */
export function walUploadKey(config: Config): KeyObject | null {
  return config.signing.verifyKey ?? (config.signing.key === null ? null : createPublicKey(config.signing.key));
}

const fail = (t: MirrorTarget, what: string) => async (err: unknown) => {
  throw await s3Failure(t.s3, t.client, what, err, ExitCode.mirrorFailed);
};

async function uploadBases(config: Config, t: MirrorTarget, remote: readonly RemoteBase[], o: PhysicalMirrorOptions, log: Logger): Promise<PhysicalMirrorReport["bases"]> {
  const catalog = await scanBaseCatalog(config.backupDir);
  const names = new Set((await listBaseDir(config.backupDir)).map((d) => d.name));
  const plan = planBaseUploads(
    catalog.map((e) => ({ name: e.name, bytes: e.bytes, problem: e.problem, signed: names.has(e.name + SIGNATURE_SUFFIX) })),
    remote,
  );
  if (o.thorough) {
    for (const name of [...plan.inSync]) {
      const sha = catalog.find((e) => e.name === name)?.manifest?.sha256;
      const head = await headObject(t, physicalKey(t.s3, "base", name)).catch(fail(t, `check of ${name} in ${s3Url(t.s3, keyPrefix(t.s3))}`));
      if (head?.metadata.sha256 === sha) continue;
      plan.inSync.splice(plan.inSync.indexOf(name), 1);
      plan.upload.push({ name, reason: head?.metadata.sha256 === undefined ? "no sha256 metadata in S3" : `sha256 in S3 differs (${head.metadata.sha256.slice(0, 12)}…)` });
    }
  }
  const report = { planned: plan.upload, uploaded: [] as string[], inSync: plan.inSync, skipped: plan.skipped, refused: [] as { name: string; problem: string }[] };
  if (o.dryRun || !o.upload) return report;
  for (const u of plan.upload) {
    log.info({ backup: u.name, reason: u.reason }, `uploading base backup ${u.name}: ${u.reason}`);
    const path = (catalog.find((e) => e.name === u.name) as (typeof catalog)[number]).path;
    try {
      report.uploaded.push((await uploadBase(t, path, config.signing.verifyKey)).name);
    } catch (err) {
      // A base backup that does not verify is not uploaded; the others still are.
      if (!(err instanceof TaskError && err.exitCode === ExitCode.refused)) throw err;
      log.error({ backup: u.name, problem: err.message }, `base backup ${u.name} is not uploaded to the S3 mirror: ${err.message}`);
      report.refused.push({ name: u.name, problem: err.message });
    }
  }
  return report;
}

async function uploadWal(config: Config, t: MirrorTarget, o: PhysicalMirrorOptions, log: Logger): Promise<{ report: PhysicalMirrorReport["wal"]; remoteFiles: WalFile[] }> {
  const [listing, objects] = await Promise.all([listWalArchive(config.backupDir), listRemoteWal(t).catch(fail(t, `listing of ${s3Url(t.s3, `${keyPrefix(t.s3)}wal/`)}`))]);
  const remote = remoteSizes(objects);
  const plan = planWalUploads(localWal(listing), remote, { snapshots: config.s3?.walSnapshotSeconds !== 0, lastSnapshot: null });
  const report = { planned: plan.upload.map((u) => ({ name: u.name, reason: u.reason })), uploaded: [] as string[], refused: [] as { name: string; problem: string }[], staleSnapshots: plan.staleSnapshots };
  const remoteFiles = objects.flatMap((x) => (x.name.endsWith(WAL_SIGNATURE_SUFFIX) ? [] : (parseWalName(x.name) ?? [])));
  if (o.dryRun || !o.upload) return { report, remoteFiles };
  const newest = usableBases(await scanBaseCatalog(config.backupDir)).at(-1);
  const maxBytes = storedLimit(newest?.manifest.walSegmentSize ?? 1 << 30);
  const key = walUploadKey(config);
  await mapLimit(plan.upload, 4, async (u) => {
    const r = await uploadWalFile(t, walDir(config.backupDir), u.name, key, maxBytes).catch(fail(t, `upload of ${u.name} to ${s3Url(t.s3, `${keyPrefix(t.s3)}wal/`)}`));
    if (r.uploaded) report.uploaded.push(u.name);
    else if (r.problem !== "gone") report.refused.push({ name: u.name, problem: r.problem });
  });
  for (const r of report.refused) log.error({ file: r.name, problem: r.problem }, `${r.name} in wal/ is not uploaded to the S3 mirror: ${r.problem}`);
  if (report.uploaded.length > 0) log.info({ files: report.uploaded.length }, `uploaded ${report.uploaded.length} WAL file(s) the S3 mirror lacked`);
  const stale = plan.staleSnapshots.flatMap((n) => {
    const f = parseWalName(n);
    return f === null ? [] : [walObjectKey(t, f), walObjectKey(t, f) + WAL_SIGNATURE_SUFFIX];
  });
  if (stale.length > 0) await deleteKeys(t, stale).catch(fail(t, `deletion of stale snapshots in ${s3Url(t.s3, `${keyPrefix(t.s3)}wal-partial/`)}`));
  return { report, remoteFiles };
}

/** The bucket's pruning by cleanup's plan (prunePlan.ts); deleted unless `dryRun`. */
async function prune(config: Config, t: MirrorTarget, remote: readonly RemoteBase[], remoteWal: readonly WalFile[], o: PhysicalMirrorOptions, log: Logger): Promise<PrunePlan> {
  const local = await scanBaseCatalog(config.backupDir);
  const localNames = new Set(local.map((e) => e.name));
  const remoteOnly = await readRemoteBases(t, remote.filter((r) => !localNames.has(r.name)), config.signing.verifyKey, ExitCode.mirrorFailed);
  const start = (m: { timeline: number; startLsn: string; walSegmentSize: number } | null) => (m === null ? null : { timeline: m.timeline, startLsn: m.startLsn, walSegmentSize: m.walSegmentSize });
  const toPrune = (e: { name: string; time: Date; problem: string | null; manifest: Parameters<typeof start>[0] }): PruneBase => ({ name: e.name, time: e.time, problem: e.problem, start: start(e.manifest) });
  const plan = planBucketPrune({
    local: local.map(toPrune),
    remote: [...local.filter((e) => remote.some((r) => r.name === e.name)).map(toPrune), ...remoteOnly.map((e) => toPrune({ ...e, time: e.manifest === null ? e.time : new Date(e.manifest.startedAt) }))],
    remoteWal,
    policy: config.retention,
    now: o.now,
  });
  if (o.dryRun) return plan;
  const baseKeys = (suffixes: string[]) => plan.bases.flatMap((b) => suffixes.map((s) => physicalKey(t.s3, "base", b.name) + s));
  // Manifests first: a base backup half deleted is incomplete, never a manifest without its data.
  for (const keys of [baseKeys([MANIFEST_SUFFIX]), baseKeys(["", CHECKSUM_SUFFIX, SIGNATURE_SUFFIX])]) {
    if (keys.length > 0) await deleteKeys(t, keys).catch(fail(t, `deletion of base backups in ${s3Url(t.s3, `${keyPrefix(t.s3)}base/`)}`));
  }
  const walKeys = plan.wal.flatMap((d) => {
    const f = parseWalName(d.name);
    return f === null ? [] : [walObjectKey(t, f), walObjectKey(t, f) + WAL_SIGNATURE_SUFFIX];
  });
  if (walKeys.length > 0) await deleteKeys(t, walKeys).catch(fail(t, `deletion of WAL in ${s3Url(t.s3, `${keyPrefix(t.s3)}wal/`)}`));
  if (plan.bases.length + plan.wal.length > 0) {
    log.info({ bases: plan.bases.map((b) => b.name), walFiles: plan.wal.length, walReason: plan.walReason }, `pruned the S3 mirror: ${plan.bases.length} base backup(s), ${plan.wal.length} WAL file(s)`);
  }
  return plan;
}

/** Null when neither BACKUP_DIR nor the bucket has a physical tier. Throws exit 6 when S3 fails, exit 4 for a base/ or wal/ that is a symlink. */
export async function mirrorPhysical(config: Config, t: MirrorTarget, o: PhysicalMirrorOptions, log: Logger): Promise<PhysicalMirrorReport | null> {
  const remote = await listRemoteBases(t).catch(fail(t, `listing of ${s3Url(t.s3, `${keyPrefix(t.s3)}base/`)}`));
  const bases = await uploadBases(config, t, remote, o, log);
  const wal = await uploadWal(config, t, o, log);
  const empty = bases.planned.length + bases.inSync.length + bases.skipped.length + remote.length + wal.report.planned.length + wal.remoteFiles.length === 0;
  if (empty) return null;
  const pruned = config.s3?.retention === "keep" ? null : await prune(config, t, remote, wal.remoteFiles, o, log);
  return { bases, wal: wal.report, prune: pruned };
}
