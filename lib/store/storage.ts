// Atomic backup files: data goes to <name>.<random>.partial in the tier folder, is fsynced, the
// .sha256, .sha256.sig and .json sidecars are written (each atomically), the data file is renamed into
// place, the folder fsynced, and only then the latest_<tier> pointer moves.
// BACKUP_DIR is a share others can write: the partial and the sidecars' temp files get random
// names and are created O_EXCL|O_NOFOLLOW with the backup file mode, and a tier folder that
// is a symlink is refused (exit 9: the backup cannot be stored), never written through.
import { constants } from "node:fs";
import { mkdir, open, readlink, rename, rm, stat } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { createHash } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { createExclusive, tempPath, writeFileAtomic } from "../core/atomicWrite.js";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import type { FileModes } from "../core/fileModes.js";
import { DEFAULT_FILE_MODES } from "../core/fileModes.js";
import { symlinkRefusal } from "../core/noFollow.js";
import type { Manifest } from "./manifest.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX, PARTIAL_SUFFIX, SIDECAR_SUFFIXES, SIGNATURE_SUFFIX } from "./naming.js";
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

/**
 * Makes sure a tier folder exists and is a real folder, never a symlink. A folder it creates
 * gets `mode` (fchmod, whatever the umask); an existing one keeps its mode.
 */
export async function ensureTierDir(backupDir: string, dir: string, mode: number): Promise<void> {
  let created: string | undefined;
  try {
    created = await mkdir(dir, { recursive: true, mode });
  } catch (err) {
    throw storageError(backupDir, dir, err);
  }
  let fh: FileHandle;
  try {
    fh = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ELOOP" || code === "ENOTDIR") {
      const target = await readlink(dir).catch(() => null);
      if (target !== null) throw symlinkRefusal(ExitCode.storage, `BACKUP_DIR=${backupDir}: tier folder`, `${dir} (-> ${target})`, err);
    }
    throw storageError(backupDir, dir, err);
  }
  try {
    if (created !== undefined) await fh.chmod(mode);
  } catch (err) {
    throw storageError(backupDir, dir, err);
  } finally {
    await fh.close();
  }
}

export interface PartialFile {
  path: string;
  finalPath: string;
  handle: FileHandle;
  /** The mode the data file and its sidecars get. */
  mode: number;
}

/** A new data file `<name>.<random>.partial` in the tier folder, which is created when missing. */
export async function createPartial(backupDir: string, dir: string, name: string, modes: FileModes = DEFAULT_FILE_MODES): Promise<PartialFile> {
  const finalPath = join(dir, name);
  await ensureTierDir(backupDir, dir, modes.dir);
  const path = tempPath(finalPath, PARTIAL_SUFFIX);
  try {
    return { path, finalPath, handle: await createExclusive(path, modes.file), mode: modes.file };
  } catch (err) {
    throw storageError(backupDir, path, err);
  }
}

/** Removes a partial after a failure; never throws (the original error matters more). */
export async function discardPartial(p: PartialFile): Promise<void> {
  if (p.handle.fd !== -1) await p.handle.close().catch(() => undefined);
  await rm(p.path, { force: true }).catch(() => undefined);
}

/**
 * Removes the partial of a write that failed and returns the error to report: a system error
 * (ENOSPC, EIO …) as the storage's (exit 9, naming BACKUP_DIR); Node's own ERR_* codes and
 * TaskErrors as they are.
 */
export async function abandonPartial(backupDir: string, p: PartialFile, err: unknown): Promise<unknown> {
  await discardPartial(p);
  const code = errnoCode(err);
  return code !== undefined && !code.startsWith("ERR_") && !(err instanceof TaskError) ? storageError(backupDir, p.path, err) : err;
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
export async function commitFile(partialPath: string, finalPath: string, sidecars: Sidecars, fileMode: number): Promise<void> {
  try {
    const fh = await open(partialPath, "r+");
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await writeFileAtomic(finalPath + CHECKSUM_SUFFIX, sidecars.checksum, fileMode);
    // A signature left over from an earlier file of this name would not match; remove it.
    if (sidecars.signature !== null) await writeFileAtomic(finalPath + SIGNATURE_SUFFIX, sidecars.signature, fileMode);
    else await rm(finalPath + SIGNATURE_SUFFIX, { force: true });
    await writeFileAtomic(finalPath + MANIFEST_SUFFIX, sidecars.manifest, fileMode);
    await rename(partialPath, finalPath);
    await fsyncDir(dirname(finalPath));
  } catch (err) {
    for (const suffix of SIDECAR_SUFFIXES) await rm(finalPath + suffix, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** The sidecars of a backup just written: the two-line .sha256 and, with a signing key, its signature. Any manifest with the data file's sha256 (base manifests too). */
export function backupSidecars(name: string, manifest: Pick<Manifest, "sha256">, signingKey: KeyObject | null): Sidecars {
  const manifestText = JSON.stringify(manifest, null, 2) + "\n";
  const checksum = checksumFileText(name, manifest.sha256, createHash("sha256").update(manifestText).digest("hex"));
  return { checksum, manifest: manifestText, signature: signingKey === null ? null : signChecksumFile(checksum, signingKey) };
}

/** commitFile for a backup just written. After this the backup is visible. */
export async function commitPartial(backupDir: string, p: PartialFile, manifest: Pick<Manifest, "sha256">, signingKey: KeyObject | null): Promise<void> {
  try {
    if (p.handle.fd !== -1) await p.handle.close();
    await commitFile(p.path, p.finalPath, backupSidecars(basename(p.finalPath), manifest, signingKey), p.mode);
  } catch (err) {
    await discardPartial(p);
    throw storageError(backupDir, p.finalPath, err);
  }
}

/**
 * Checks BACKUP_DIR can be written before any work starts, so a wrong mount fails fast and
 * clearly. BACKUP_DIR itself is never created: in a container it is the storage box's mount
 * point, and creating it would write the backups into the container instead.
 */
export async function assertWritable(backupDir: string, dir: string, modes: FileModes = DEFAULT_FILE_MODES): Promise<void> {
  for (const target of [backupDir, dir]) {
    if (target !== backupDir) await ensureTierDir(backupDir, target, modes.dir);
    const probe = tempPath(join(target, ".write-test"), "");
    try {
      await (await createExclusive(probe, modes.file)).close();
      await rm(probe);
    } catch (err) {
      throw storageError(backupDir, target, err);
    }
  }
}

export async function fileSize(path: string): Promise<number> {
  return (await stat(path)).size;
}
