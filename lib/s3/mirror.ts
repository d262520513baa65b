// The S3 mirror: every local backup also as S3_PREFIX/<tier>/<name> with its .sha256,
// .sha256.sig (when signed) and .json beside it. Uploads stream from disk (multipart above the part size) with the sha256
// as object metadata and are checked with HEAD before the manifest goes up, so — as on
// disk — a remote backup without its manifest is incomplete and readers ignore it.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { ReadStream } from "node:fs";
import { access, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { GetObjectCommand, HeadObjectCommand } from "@aws-sdk/client-s3";
import type { CatalogEntry } from "../store/catalog.js";
import { tierDir } from "../store/catalog.js";
import type { Config } from "../config/config.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import type { Manifest } from "../store/manifest.js";
import { MANIFEST_MAX_BYTES, ManifestInvalid, parseManifest } from "../store/manifest.js";
import { SIDECAR_MAX_BYTES, hashTap, parseChecksumFile } from "../store/checksum.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX, PARTIAL_SUFFIX, SIGNATURE_SUFFIX, parseBackupName } from "../store/naming.js";
import type { Tier } from "../store/naming.js";
import { listRemote, planMirror } from "./remoteCatalog.js";
import type { MirrorTarget } from "./client.js";
import { ObjectTooLarge, getBytes, getText, mirrorTarget, objectKey, s3Failure, s3Url } from "./client.js";
import { deleteKeys, putBytes, uploadStream } from "./objects.js";
import { commitFile, ensureTierDir, storageError } from "../store/storage.js";
import { isStorageErrno } from "../store/backupDir.js";
import { shutdown } from "../core/shutdown.js";
import { createExclusive, tempPath } from "../core/atomicWrite.js";
import type { FileModes } from "../core/fileModes.js";
import { DEFAULT_FILE_MODES } from "../core/fileModes.js";

/** A local backup to upload: a usable CatalogEntry or a written BackupResult both fit. */
export interface LocalBackup {
  name: string;
  tier: Tier;
  path: string;
  manifest: Manifest;
}

export interface UploadResult {
  name: string;
  key: string;
  bytes: number;
  parts: number;
  seconds: number;
}

/** The backup's .sha256.sig, or null for an unsigned backup. */
async function readSignature(path: string): Promise<Buffer | null> {
  return readFile(path + SIGNATURE_SUFFIX).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  });
}

async function isSigned(path: string): Promise<boolean> {
  return access(path + SIGNATURE_SUFFIX).then(
    () => true,
    () => false,
  );
}

async function putSmall(t: MirrorTarget, key: string, body: string | Buffer): Promise<void> {
  const type = key.endsWith(MANIFEST_SUFFIX) ? "application/json" : key.endsWith(SIGNATURE_SUFFIX) ? "application/octet-stream" : "text/plain";
  await putBytes(t, key, body, {}, type);
}

/**
 * Uploads one backup: the data file (multipart when larger than the part size), HEAD to
 * check its size and sha256 metadata, then the .sha256 sidecar, its signature when there is
 * one, and last the manifest.
 * Throws a TaskError with ExitCode.mirrorFailed; the local files are only read.
 */
export async function uploadBackup(t: MirrorTarget, b: LocalBackup): Promise<UploadResult> {
  const key = objectKey(t.s3, b.tier, b.name);
  const log = t.log.child({ backup: b.name });
  const t0 = Date.now();
  let body: ReadStream | undefined;
  try {
    const bytes = (await stat(b.path)).size;
    const [checksum, manifestText, signature] = await Promise.all([readFile(b.path + CHECKSUM_SUFFIX, "utf8"), readFile(b.path + MANIFEST_SUFFIX, "utf8"), readSignature(b.path)]);
    const hash = createHash("sha256");
    body = createReadStream(b.path, { highWaterMark: 1 << 20 });
    const tap = hashTap(hash);
    body.once("error", (err) => tap.destroy(err));
    const parts = await uploadStream(t, key, body.pipe(tap), { bytes, sha256: b.manifest.sha256, hashed: () => hash.digest("hex"), label: b.path });
    await putSmall(t, key + CHECKSUM_SUFFIX, checksum);
    if (signature !== null) await putSmall(t, key + SIGNATURE_SUFFIX, signature);
    await putSmall(t, key + MANIFEST_SUFFIX, manifestText);
    const seconds = (Date.now() - t0) / 1000;
    log.info({ key, bytes, parts, seconds }, `uploaded ${b.name} to ${s3Url(t.s3, key)} (${(bytes / 1e6).toFixed(1)} MB in ${parts} part(s), ${seconds.toFixed(1)} s)`);
    return { name: b.name, key, bytes, parts, seconds };
  } catch (err) {
    throw await s3Failure(t.s3, t.client, `upload of ${b.name} to ${s3Url(t.s3, key)}`, err, ExitCode.mirrorFailed);
  } finally {
    // A failed upload stops reading halfway; close the file rather than wait for the GC.
    body?.destroy();
  }
}

export interface MirrorReport {
  /** What was (or, in a dry run, would be) uploaded and why, newest first. */
  planned: { name: string; reason: string }[];
  uploaded: UploadResult[];
  inSync: string[];
  skipped: { name: string; reason: string }[];
}

/**
 * Uploads every usable local backup that S3 lacks or holds differently; idempotent. With
 * `thorough`, backups whose listing looks right are HEAD-checked for their sha256 metadata
 * too (the `mirror` command); without it one LIST decides (the catch-up after each backup).
 * Newest first, so after an outage the backups that matter most go up first. Stops at the
 * first failure: when the server is gone, every further upload would fail the same way.
 */
export async function mirrorAll(t: MirrorTarget, catalog: readonly CatalogEntry[], opts: { dryRun?: boolean; thorough?: boolean } = {}): Promise<MirrorReport> {
  const signed = new Set<string>();
  for (const e of catalog) if (await isSigned(e.path)) signed.add(e.name);
  const plan = planMirror(catalog, await listRemote(t), signed);
  if (opts.thorough === true) {
    for (const e of [...plan.inSync]) {
      const key = objectKey(t.s3, e.tier, e.name);
      const head = await t.client.send(new HeadObjectCommand({ Bucket: t.s3.bucket, Key: key })).catch(async (err: unknown) => {
        throw await s3Failure(t.s3, t.client, `check of ${s3Url(t.s3, key)}`, err, ExitCode.mirrorFailed);
      });
      const sha = head.Metadata?.sha256;
      if (sha === e.manifest.sha256) continue;
      plan.inSync.splice(plan.inSync.indexOf(e), 1);
      plan.upload.push({ backup: e, reason: sha === undefined ? "no sha256 metadata in S3" : `sha256 in S3 differs (${sha.slice(0, 12)}…)` });
    }
  }
  const upload = [...plan.upload].sort((a, b) => b.backup.time.getTime() - a.backup.time.getTime());
  const report: MirrorReport = { planned: upload.map((u) => ({ name: u.backup.name, reason: u.reason })), uploaded: [], inSync: plan.inSync.map((e) => e.name), skipped: plan.skipped };
  if (opts.dryRun === true) return report;
  for (const u of upload) {
    t.log.info({ backup: u.backup.name, reason: u.reason }, `uploading ${u.backup.name}: ${u.reason}`);
    report.uploaded.push(await uploadBackup(t, u.backup));
  }
  return report;
}

/**
 * Downloads a backup into BACKUP_DIR/<tier>/ the way a backup is written: data to .partial
 * while hashing, the hash checked against the remote sidecar, manifest and sha256 metadata,
 * sidecars (the signature too) written as S3 holds them, then the rename. Signatures are
 * checked where restores check checksums (lib/restore/exec.ts), not here. Returns the local
 * path, or null when S3 has no complete copy. A corrupt copy is refused (ExitCode.refused) and
 * nothing is left behind. The partial gets a random name and is created O_EXCL|O_NOFOLLOW
 * with the backup file mode.
 */
export async function downloadBackup(t: MirrorTarget, name: string, backupDir: string, modes: FileModes = DEFAULT_FILE_MODES): Promise<string | null> {
  const parsed = parseBackupName(name);
  if (parsed === null) throw new TaskError(ExitCode.usage, `"${name}" is not a backup name (YYYYMMDD_HHMMSS_<tier>.sql[.bz2|.zst|.gz])`);
  const key = objectKey(t.s3, parsed.tier, name);
  const dir = tierDir(backupDir, parsed.tier);
  const path = join(dir, name);
  const partial = tempPath(path, PARTIAL_SUFFIX);
  const refuse = (why: string) => new TaskError(ExitCode.refused, `${s3Url(t.s3, key)} ${why}; it was not used and nothing was written to ${dir}`);
  const unregister = shutdown.register(`download ${partial}`, () => rm(partial, { force: true }));
  try {
    const [sidecar, manifestText, signature] = await Promise.all([
      getText(t, key + CHECKSUM_SUFFIX, SIDECAR_MAX_BYTES),
      getText(t, key + MANIFEST_SUFFIX, MANIFEST_MAX_BYTES),
      getBytes(t, key + SIGNATURE_SUFFIX, SIDECAR_MAX_BYTES),
    ]).catch((err: unknown) => {
      throw err instanceof ObjectTooLarge ? refuse(`has a sidecar that is too large (${err.message})`) : err;
    });
    if (sidecar === null || manifestText === null) return null;
    const recorded = parseChecksumFile(sidecar, name);
    if (typeof recorded === "string") throw refuse(`has an unusable checksum file (${recorded})`);
    const expected = recorded.data;
    if (recorded.manifest !== null && recorded.manifest !== createHash("sha256").update(manifestText).digest("hex")) {
      throw refuse("has a manifest that does not match its .sha256 file");
    }
    let manifest: Manifest;
    try {
      manifest = parseManifest(manifestText, name + MANIFEST_SUFFIX, name);
    } catch (err) {
      throw refuse(`has an unusable manifest (${err instanceof ManifestInvalid ? err.reason : (err as Error).message})`);
    }
    if (manifest.sha256 !== expected) throw refuse("has a .sha256 sidecar and a manifest that disagree");
    const obj = await t.client.send(new GetObjectCommand({ Bucket: t.s3.bucket, Key: key })).catch((err: unknown) => {
      if ((err as Error).name === "NoSuchKey") return null;
      throw err;
    });
    if (obj === null) return null;
    const meta = obj.Metadata?.sha256;
    if (meta !== undefined && meta !== expected) throw refuse(`has sha256 metadata ${meta.slice(0, 12)}… but its sidecar records ${expected.slice(0, 12)}…`);
    await ensureTierDir(backupDir, dir, modes.dir);
    const hash = createHash("sha256");
    t.log.info({ key, bytes: obj.ContentLength }, `downloading ${name} from ${s3Url(t.s3, key)}`);
    const out = (await createExclusive(partial, modes.file)).createWriteStream({ highWaterMark: 1 << 20 });
    await pipeline(obj.Body as NodeJS.ReadableStream, hashTap(hash), out);
    const actual = hash.digest("hex");
    if (actual !== expected) throw refuse(`is corrupt: checksum mismatch (downloaded ${actual.slice(0, 12)}…, recorded ${expected.slice(0, 12)}…)`);
    await commitFile(partial, path, { checksum: sidecar, manifest: manifestText, signature }, modes.file);
    t.log.info({ key, path }, `downloaded ${name} from S3; checksum verified`);
    return path;
  } catch (err) {
    await rm(partial, { force: true }).catch(() => undefined);
    // A full or read-only BACKUP_DIR is exit 9 naming it, as for a backup, not an S3 failure.
    if (!(err instanceof TaskError) && isStorageErrno(err)) throw storageError(backupDir, partial, err);
    throw await s3Failure(t.s3, t.client, `download of ${name} from ${s3Url(t.s3, key)}`, err, ExitCode.failed);
  } finally {
    unregister();
  }
}

/**
 * Deletes backups (data, .sha256, .sha256.sig, .json) from S3 by name. Manifests go first, so an
 * interrupted delete leaves an incomplete backup that readers ignore, never a manifest
 * without its data. Names S3 does not hold are fine. Throws ExitCode.mirrorFailed.
 */
export async function deleteRemote(t: MirrorTarget, names: readonly string[]): Promise<string[]> {
  const keysOf = (suffixes: string[]) =>
    names.flatMap((n) => {
      const p = parseBackupName(n);
      if (p === null) throw new TaskError(ExitCode.usage, `"${n}" is not a backup name; nothing was deleted from S3`);
      return suffixes.map((s) => objectKey(t.s3, p.tier, n) + s);
    });
  const deleted: string[] = [];
  for (const keys of [keysOf([MANIFEST_SUFFIX]), keysOf(["", CHECKSUM_SUFFIX, SIGNATURE_SUFFIX])]) {
    try {
      deleted.push(...(await deleteKeys(t, keys)));
    } catch (err) {
      throw await s3Failure(t.s3, t.client, `deletion of ${keys.length} object(s) in S3_BUCKET=${t.s3.bucket}`, err, ExitCode.mirrorFailed);
    }
  }
  if (names.length > 0) t.log.info({ backups: names, objects: deleted.length }, `deleted ${names.length} backup(s) from S3`);
  return deleted;
}

/**
 * For restore: when a backup is missing locally, fetch it from the mirror. Returns the local
 * path of the downloaded, checksum-verified backup, or null when S3 is off or lacks it.
 */
export async function fetchFromMirror(config: Config, name: string, log: Logger): Promise<string | null> {
  if (config.s3 === null) return null;
  return downloadBackup(mirrorTarget(config.s3, log.child({ mirror: "s3" })), name, config.backupDir, config.files);
}

export type RemoteDeletion = { status: "deleted"; names: string[]; objects: number } | { status: "off" | "keep" };

/** For cleanup: the same deletions in S3, unless the mirror is off or S3_RETENTION=keep. */
export async function mirrorDeletions(config: Config, names: readonly string[], log: Logger): Promise<RemoteDeletion> {
  if (config.s3 === null) return { status: "off" };
  if (config.s3.retention === "keep") {
    log.info({ backups: names }, "S3_RETENTION=keep: leaving S3 objects to the bucket's lifecycle rules");
    return { status: "keep" };
  }
  const objects = await deleteRemote(mirrorTarget(config.s3, log.child({ mirror: "s3" })), names);
  return { status: "deleted", names: [...names], objects: objects.length };
}
