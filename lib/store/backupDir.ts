// The one check every task that reads BACKUP_DIR makes first. A storage box that is not
// mounted leaves an empty or missing folder; reading that as "no backups" would make list and
// status look healthy and restore fail later with a raw ENOENT/ENOTDIR.
import { readdir, stat } from "node:fs/promises";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";

/** Errors that are the storage's (full, read-only, permissions, device), not the task's or the network's. */
const STORAGE_ERRNOS = new Set(["ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS", "EIO", "EFBIG", "ENOTDIR"]);

export function isStorageErrno(err: unknown): boolean {
  return STORAGE_ERRNOS.has(errnoCode(err) ?? "");
}

const MOUNT = "Mount the storage box there (the stack bind-mounts /mnt/storagebox/backups/postgresql) or fix BACKUP_DIR";

/**
 * Throws a storage error (exit 9) naming BACKUP_DIR and the fix unless it is a folder this
 * task can list. `outcome` says what was left undone, e.g. "nothing was restored".
 */
export async function assertBackupDir(backupDir: string, outcome: string): Promise<void> {
  let why: string;
  try {
    if ((await stat(backupDir)).isDirectory()) {
      await readdir(backupDir);
      return;
    }
    why = "is not a folder";
  } catch (err) {
    const code = errnoCode(err);
    why = code === "ENOENT" ? "does not exist" : code === "ENOTDIR" ? "is not a folder (a file is in its path)" : `cannot be read (${code ?? (err as Error).message})`;
    throw new TaskError(ExitCode.storage, `BACKUP_DIR=${backupDir} ${why}; ${outcome}. ${code === "EACCES" || code === "EPERM" ? "Fix the folder's owner or mode" : MOUNT}`, { cause: err });
  }
  throw new TaskError(ExitCode.storage, `BACKUP_DIR=${backupDir} ${why}; ${outcome}. ${MOUNT}`);
}

export { IDENTITY_MARKER, assertBackupDirIdentity, assertBackupDirMarker, hasIdentityMarker } from "./backupDirIdentity.js";
export type { IdentityOptions, IdentityState } from "./backupDirIdentity.js";
