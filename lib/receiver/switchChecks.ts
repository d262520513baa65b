// The checks wal-receive makes before pg_receivewal starts and again at every segment switch
// and status tick (switchWatch.ts runs them): the one place for checks of that kind. A
// failure stops pg_receivewal and ends the service with the error.
//
// No symlinks in wal/: pg_receivewal creates each new segment with O_CREAT at a predictable
// name (the next segment's `….gz.partial`), so a symlink planted there by someone who can
// write the share would make it write WAL through it, to a file outside BACKUP_DIR. wal/ must
// be writable by the backup user only (docs/pitr.md "Streaming WAL"); these checks find a planted
// link at the latest at the next switch and stop the receiver before more is written.
//
// The storage box is still the one it started on: BACKUP_DIR's identity marker must still be
// there (lib/store/backupDirIdentity.ts); a box unmounted under the receiver leaves the empty
// mount point, and WAL written there would be hidden when it comes back (exit 9).
import { lstat, readdir, readlink } from "node:fs/promises";
import { join } from "node:path";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import { symlinkRefusal } from "../core/noFollow.js";
import { walDir } from "../physical/layout.js";
import { assertBackupDirMarker } from "../store/backupDir.js";

export interface SwitchCheckContext {
  backupDir: string;
  /** Where pg_receivewal writes: wal/, or the spool (which must not be a symlink either). */
  receiveDir: string;
}

async function refuseSymlinkFolder(ctx: SwitchCheckContext, dir: string, what: string): Promise<boolean> {
  try {
    const st = await lstat(dir);
    if (st.isSymbolicLink()) throw symlinkRefusal(ExitCode.storage, `BACKUP_DIR=${ctx.backupDir}: ${what}`, `${dir} (-> ${await readlink(dir).catch(() => "?")})`);
    return true;
  } catch (err) {
    if (err instanceof TaskError) throw err;
    if (errnoCode(err) === "ENOENT") return false;
    throw new TaskError(ExitCode.storage, `${what} ${dir} cannot be checked (${errnoCode(err) ?? (err as Error).message}); check the mount`, { cause: err });
  }
}

/** Throws a TaskError naming the symlink when wal/ (or the spool) is one, or holds one, or when BACKUP_DIR lost its identity marker. */
export async function switchChecks(ctx: SwitchCheckContext): Promise<void> {
  await assertBackupDirMarker(ctx.backupDir);
  const wal = walDir(ctx.backupDir);
  if (ctx.receiveDir !== wal) await refuseSymlinkFolder(ctx, ctx.receiveDir, "WAL_SPOOL_DIR folder");
  if (!(await refuseSymlinkFolder(ctx, wal, "WAL folder"))) return;
  const entries = await readdir(wal, { withFileTypes: true }).catch((err: unknown) => {
    throw new TaskError(ExitCode.storage, `WAL folder ${wal} cannot be listed (${errnoCode(err) ?? (err as Error).message}); check the mount`, { cause: err });
  });
  const link = entries.find((d) => d.isSymbolicLink());
  if (link === undefined) return;
  const path = join(wal, link.name);
  const target = await readlink(path).catch(() => "?");
  throw new TaskError(
    ExitCode.refused,
    `wal-receive stopped: ${path} is a symlink (-> ${target}); pg_receivewal would write WAL through it to a file outside BACKUP_DIR. ` +
      `${wal} must be writable by the backup user only: remove the symlink, find out who created it (anyone who can write the share can), then start wal-receive again`,
  );
}
