// Atomic backup files: data goes to <name>.partial in the tier folder, is fsynced, the
// .sha256, .sha256.sig and .json sidecars are written (each atomically), the data file is renamed into
// place, the folder fsynced, and only then the latest_<tier> pointer moves.
import { mkdir, open, readFile, readlink, rename, rm, stat, symlink, unlink, writeFile } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { createHash, randomUUID } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { writeFileAtomic } from "../core/atomicWrite.js";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import type { Manifest } from "./manifest.js";
import type { Codec } from "../core/codec.js";
import type { Tier } from "./naming.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX, PARTIAL_SUFFIX, SIGNATURE_SUFFIX, latestPointerName } from "./naming.js";
import { checksumFileText } from "./checksum.js";
import { signChecksumFile } from "./signature.js";

const STORAGE_CODES: Record<string, string> = {
  EACCES: "permission denied: the task's user cannot write there; fix the owner/mode of the storage box folder (the task image runs as uid 1000 by default)",
  EPERM: "operation not permitted; fix the owner/mode of the storage box folder",
  EROFS: "the file system is read-only; remount the storage box read-write",
  ENOSPC: "no space left on the device; free space or run cleanup",
  EDQUOT: "the disk quota is exhausted; free space or raise the quota",
  ENOENT: "the folder does not exist; create it or fix the bind mount",
  EIO: "an I/O error from the storage device; check the storage box mount",
};

/** A storage failure as a TaskError naming BACKUP_DIR, the file and the fix. */
export function storageError(backupDir: string, path: string, err: unknown): TaskError {
  const code = errnoCode(err);
  const why = code !== undefined && STORAGE_CODES[code] !== undefined ? `${code}: ${STORAGE_CODES[code]}` : (err as Error).message;
  return new TaskError(ExitCode.storage, `BACKUP_DIR=${backupDir}: cannot write ${path} (${why})`, { cause: err });
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface PartialFile {
  path: string;
  finalPath: string;
  handle: FileHandle;
}

export async function createPartial(backupDir: string, dir: string, name: string): Promise<PartialFile> {
  const finalPath = join(dir, name);
  const path = finalPath + PARTIAL_SUFFIX;
  try {
    await mkdir(dir, { recursive: true });
    const handle = await open(path, "wx", 0o644);
    return { path, finalPath, handle };
  } catch (err) {
    throw storageError(backupDir, path, err);
  }
}

/** Removes a partial after a failure; never throws (the original error matters more). */
export async function discardPartial(p: PartialFile): Promise<void> {
  if (p.handle.fd !== -1) await p.handle.close().catch(() => undefined);
  await rm(p.path, { force: true }).catch(() => undefined);
}

export function checksumLine(sha256: string, name: string): string {
  return `${sha256}  ${name}\n`;
}

/** The sidecars of a data file, exactly as they are to be written. */
export interface Sidecars {
  checksum: string;
  manifest: string;
  /** NAME.sha256.sig, or null for an unsigned backup. */
  signature: Buffer | null;
}

/**
 * Makes a finished data file visible: fsync it, write its .sha256, .sha256.sig and .json
 * sidecars (each atomically), rename it from `partialPath` into place, fsync the folder. On
 * failure the sidecars are removed again and the error thrown; the caller removes the data file.
 */
export async function commitFile(partialPath: string, finalPath: string, sidecars: Sidecars): Promise<void> {
  try {
    const fh = await open(partialPath, "r+");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await writeFileAtomic(finalPath + CHECKSUM_SUFFIX, sidecars.checksum);
    // A signature left over from an earlier file of this name would not match; remove it.
    if (sidecars.signature !== null) await writeFileAtomic(finalPath + SIGNATURE_SUFFIX, sidecars.signature);
    else await rm(finalPath + SIGNATURE_SUFFIX, { force: true });
    await writeFileAtomic(finalPath + MANIFEST_SUFFIX, sidecars.manifest);
    await rename(partialPath, finalPath);
    await fsyncDir(dirname(finalPath));
  } catch (err) {
    for (const suffix of [CHECKSUM_SUFFIX, SIGNATURE_SUFFIX, MANIFEST_SUFFIX]) await rm(finalPath + suffix, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** The sidecars of a backup just written: the two-line .sha256 and, with a signing key, its signature. */
export function backupSidecars(name: string, manifest: Manifest, signingKey: KeyObject | null): Sidecars {
  const manifestText = JSON.stringify(manifest, null, 2) + "\n";
  const checksum = checksumFileText(name, manifest.sha256, createHash("sha256").update(manifestText).digest("hex"));
  return { checksum, manifest: manifestText, signature: signingKey === null ? null : signChecksumFile(checksum, signingKey) };
}

/** commitFile for a backup just written. After this the backup is visible. */
export async function commitPartial(backupDir: string, p: PartialFile, manifest: Manifest, signingKey: KeyObject | null): Promise<void> {
  try {
    if (p.handle.fd !== -1) await p.handle.close();
    await commitFile(p.path, p.finalPath, backupSidecars(basename(p.finalPath), manifest, signingKey));
  } catch (err) {
    await discardPartial(p);
    throw storageError(backupDir, p.finalPath, err);
  }
}

/** Where a latest pointer that cannot be a symlink (CIFS/SMB) is written instead: a text file holding the name. */
export function pointerFileName(tier: Tier, codec: Codec): string {
  return `${latestPointerName(tier, codec)}.txt`;
}

/**
 * Points latest_<tier> at `name`: an atomic symlink swap; where the file system refuses
 * symlinks, a pointer text file. Returns which kind was written.
 */
export async function updateLatestPointer(dir: string, tier: Tier, codec: Codec, name: string): Promise<"symlink" | "file"> {
  const link = join(dir, latestPointerName(tier, codec));
  const tmp = `${link}.tmp-${process.pid}`;
  try {
    await rm(tmp, { force: true });
    await symlink(name, tmp);
    await rename(tmp, link);
    await rm(join(dir, pointerFileName(tier, codec)), { force: true });
    return "symlink";
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    if (!["EPERM", "ENOTSUP", "EOPNOTSUPP", "EINVAL", "ENOSYS"].includes(errnoCode(err) ?? "")) throw err;
    await writeFileAtomic(join(dir, pointerFileName(tier, codec)), `${name}\n`);
    return "file";
  }
}

/** The backup name a latest pointer names, or null when there is none. */
export async function readLatestPointer(dir: string, tier: Tier, codec: Codec): Promise<string | null> {
  try {
    return basename(await readlink(join(dir, latestPointerName(tier, codec))));
  } catch {
    try {
      return (await readFile(join(dir, pointerFileName(tier, codec)), "utf8")).trim() || null;
    } catch {
      return null;
    }
  }
}

/**
 * Checks BACKUP_DIR can be written before any work starts, so a wrong mount fails fast and
 * clearly. BACKUP_DIR itself is never created: in a container it is the storage box's mount
 * point, and creating it would write the backups into the container instead.
 */
export async function assertWritable(backupDir: string, dir: string): Promise<void> {
  for (const target of [backupDir, dir]) {
    const probe = join(target, `.write-test-${randomUUID()}`);
    try {
      if (target !== backupDir) await mkdir(target, { recursive: true });
      await writeFile(probe, "");
      await unlink(probe);
    } catch (err) {
      throw storageError(backupDir, target, err);
    }
  }
}

export async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}
