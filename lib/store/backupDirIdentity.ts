// BACKUP_DIR is known by its identity, never assumed from a path (issue 25). A storage box that
// is not mounted leaves the folder under the mount point: often missing, but where an operator
// created it on the node's own disk (older READMEs said so), an empty or stale folder that a
// backup would fill unseen. The marker file is written when the folder is first set up; a task
// that finds no marker where the folder itself or METRICS_FILE says backups existed refuses with
// exit 9 instead of writing beside the box. Re-exported by ./backupDir.ts, where the tasks look.
import { lstatSync } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { createExclusive } from "../core/atomicWrite.js";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import { DEFAULT_FILE_MODES } from "../core/fileModes.js";
import type { Logger } from "../core/log.js";
import { readMetricsState } from "../core/metrics.js";

/** The marker's name in BACKUP_DIR. Any regular file of that name counts; the tool writes JSON with an id. */
export const IDENTITY_MARKER = ".pg-swarm-backup";

/** Folders whose entries mean backups were written here: the logical tiers and the physical tier. */
const BACKUP_FOLDERS = ["full", "differential", "incremental", "base", "wal"];

const MOUNT_FIX = 'Mount the storage box (docs/deploy.md "Deploy on Swarm": the stack binds the mount point /mnt/storagebox, so a box mounted later is seen) and run the task again';

export type IdentityState = "present" | "created" | "unmarked" | "empty";

export interface IdentityOptions {
  /** METRICS_FILE: its state records the last successful backups on this node. */
  metricsFile: string | null;
  log: Logger;
  /** Write the marker where it is missing and nothing says backups existed elsewhere (tasks that write BACKUP_DIR). */
  create: boolean;
  /** Mode of the marker file (BACKUP_FILE_MODE). */
  fileMode?: number;
}

/** Whether BACKUP_DIR carries the marker now (a regular file, not a symlink); for the log file's opening in tasks/cli.ts. */
export function hasIdentityMarker(backupDir: string): boolean {
  try {
    return lstatSync(join(backupDir, IDENTITY_MARKER)).isFile();
  } catch {
    return false;
  }
}

/** The first backup folder with an entry (a file other than a .partial), or null. */
async function backupsHere(backupDir: string): Promise<string | null> {
  for (const folder of BACKUP_FOLDERS) {
    const names = await readdir(join(backupDir, folder)).catch(() => [] as string[]);
    const one = names.find((n) => !n.endsWith(".partial") && !n.startsWith("."));
    if (one !== undefined) return `${folder}/${one}`;
  }
  return null;
}

/** When METRICS_FILE's state last recorded a successful backup or a WAL receiver report, or null. */
async function metricsSayBackups(metricsFile: string | null): Promise<Date | null> {
  if (metricsFile === null) return null;
  const state = await readMetricsState(metricsFile);
  const times = state.series.filter((s) => s.task.startsWith("backup") && s.lastSuccess !== null).map((s) => s.lastSuccess as number);
  const wal = state.walReceiver?.lastReceivedAt;
  if (typeof wal === "number") times.push(wal);
  return times.length === 0 ? null : new Date(Math.max(...times) * 1000);
}

function notMounted(backupDir: string, why: string): TaskError {
  return new TaskError(
    ExitCode.storage,
    `the storage box is not mounted at BACKUP_DIR=${backupDir}: ${why}; nothing was written or restored. ${MOUNT_FIX}. ` +
      `If this is a new, empty storage box on purpose, create the marker by hand: touch ${join(backupDir, IDENTITY_MARKER)}`,
  );
}

async function writeMarker(backupDir: string, mode: number): Promise<void> {
  const fh = await createExclusive(join(backupDir, IDENTITY_MARKER), mode);
  try {
    await fh.writeFile(JSON.stringify({ tool: "pg-swarm-backup", id: randomUUID(), createdAt: new Date().toISOString() }) + "\n");
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * The identity check every task makes before it writes into BACKUP_DIR or restores from it.
 * BACKUP_DIR must exist (the caller's assertBackupDir/assertWritable says so otherwise). With the
 * marker: "present". Without it:
 * - no backups here but METRICS_FILE records some: exit 9, "the storage box is not mounted at …";
 * - backups here (an installation from before the marker): with `create` the marker is written
 *   and the log says so ("created"), else "unmarked";
 * - nothing anywhere (a new box): with `create` the marker is written ("created"), else "empty".
 * A marker name taken by a symlink or folder is exit 9 too: the box is not what it claims.
 */
export async function assertBackupDirIdentity(backupDir: string, opts: IdentityOptions): Promise<IdentityState> {
  const path = join(backupDir, IDENTITY_MARKER);
  try {
    if ((await lstat(path)).isFile()) return "present";
    throw new TaskError(ExitCode.storage, `${path} is not a regular file (a symlink or folder took the identity marker's name); nothing was written or restored. Find out who created it, remove it, and run the task again`);
  } catch (err) {
    if (err instanceof TaskError) throw err;
    if (errnoCode(err) !== "ENOENT") throw new TaskError(ExitCode.storage, `${path} cannot be read (${errnoCode(err) ?? (err as Error).message}); nothing was written or restored. Fix BACKUP_DIR's owner or mode`, { cause: err });
  }
  const found = await backupsHere(backupDir);
  if (found === null) {
    const since = await metricsSayBackups(opts.metricsFile);
    if (since !== null) throw notMounted(backupDir, `it holds neither the identity marker ${IDENTITY_MARKER} nor any backup, but METRICS_FILE=${opts.metricsFile} records backups (the newest at ${since.toISOString()})`);
  }
  if (!opts.create) {
    opts.log.info({ backupDir }, `BACKUP_DIR has no identity marker ${IDENTITY_MARKER} yet; the next backup writes it`);
    return found === null ? "empty" : "unmarked";
  }
  try {
    await writeMarker(backupDir, opts.fileMode ?? DEFAULT_FILE_MODES.file);
  } catch (err) {
    // Another task on another node wrote it first.
    if (errnoCode(err) === "EEXIST") return assertBackupDirIdentity(backupDir, opts);
    throw new TaskError(ExitCode.storage, `BACKUP_DIR=${backupDir}: cannot write ${path}, its identity marker (${errnoCode(err) ?? (err as Error).message}); nothing was written. Fix BACKUP_DIR's owner, mode or mount`, { cause: err });
  }
  opts.log.info(
    { backupDir, marker: IDENTITY_MARKER, existingBackup: found },
    found === null
      ? `BACKUP_DIR set up: identity marker ${IDENTITY_MARKER} written; from now on a BACKUP_DIR without it, where backups existed, is refused as an unmounted storage box`
      : `BACKUP_DIR holds backups (${found}) but no identity marker (written before this version): marker ${IDENTITY_MARKER} written`,
  );
  return "created";
}

/**
 * The strict check for a long-running writer (wal-receive at every segment switch): the marker it
 * saw at start must still be there, else the box was unmounted under it (exit 9).
 */
export async function assertBackupDirMarker(backupDir: string): Promise<void> {
  if (hasIdentityMarker(backupDir)) return;
  const gone = await lstat(backupDir).then(() => false, () => true);
  throw notMounted(backupDir, gone ? "the folder itself is gone" : `its identity marker ${IDENTITY_MARKER}, there when this task started, is gone`);
}
