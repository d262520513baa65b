// Which cluster the WAL in wal/ and in the spool belongs to. A wiped cluster comes back with a
// new system identifier (initdb), and auto-restore fills it again; its WAL starts over at low
// segment numbers. Without this, pg_receivewal resumed after the old cluster's newest segment
// in the spool ("requested starting point … is ahead of the WAL flush position") and the
// service failed in a loop, after shipping the old cluster's last segment signed with the new
// cluster's identifier; and the new cluster's segments would take the names of old ones in wal/.
//
// So each folder carries a marker, `.pgsb-system-identifier`, written when wal-receive first
// receives into it. Before every pg_receivewal start the server's identifier is compared with
// the markers (identityPlan, pure): the old cluster's last WAL still in the spool is shipped to
// wal/ signed with its own identifier, then the old cluster's WAL is set aside — wal/'s into
// wal/.replaced-<id>-<ms>/ (readers of wal/ ignore folders; nothing is deleted; restore-pitr of
// the old cluster's base backups needs it moved back), the spool's into a folder of its own — and
// receiving starts over for the new cluster. A folder without a marker (the first start, or
// one written by an older version) is taken to hold the server's WAL, as before.
import { mkdir, readdir, rename } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../core/atomicWrite.js";
import { errnoCode } from "../core/errors.js";
import { readSmallFile } from "../core/noFollow.js";
import { WAL_IDENTITY_MARKER, WAL_SIGNATURE_SUFFIX, parseWalName } from "../physical/layout.js";

/** The identifier a folder's marker names; null when there is none, or it is not one (it is then rewritten). */
export async function readIdentityMarker(dir: string): Promise<string | null> {
  try {
    const text = (await readSmallFile(join(dir, WAL_IDENTITY_MARKER), 64)).trim();
    return /^\d{1,20}$/.test(text) ? text : null;
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return null;
    throw err;
  }
}

export async function writeIdentityMarker(dir: string, systemIdentifier: string, mode: number): Promise<void> {
  await writeFileAtomic(join(dir, WAL_IDENTITY_MARKER), systemIdentifier + "\n", mode);
}

export interface IdentityPlan {
  /** Ship the spool's remaining WAL to wal/ first, signed as this cluster's (the old one), or null. */
  shipSpoolAs: string | null;
  /** Set aside the spool's WAL as this cluster's, or null. */
  setAsideSpool: string | null;
  /** Set aside wal/'s WAL as this cluster's, or null. */
  setAsideWal: string | null;
}

/**
 * What to do before receiving from the server `server`, given the markers of the spool (null
 * without a spool, or without a marker) and of wal/. Pure. In spool mode wal/ is fed from the
 * spool only, so a spool of another cluster makes wal/'s unmarked WAL that cluster's too.
 */
export function identityPlan(o: { server: string; spool: boolean; spoolMarker: string | null; walMarker: string | null }): IdentityPlan {
  const spoolOld = o.spool && o.spoolMarker !== null && o.spoolMarker !== o.server ? o.spoolMarker : null;
  const walOld = o.walMarker !== null && o.walMarker !== o.server ? o.walMarker : o.walMarker === null ? spoolOld : null;
  // The old cluster's last WAL goes to wal/ only when wal/ holds that cluster's WAL (and is set aside with it).
  return { shipSpoolAs: spoolOld !== null && walOld === spoolOld ? spoolOld : null, setAsideSpool: spoolOld, setAsideWal: walOld };
}

/** Moves the WAL files of `dir` (segments, snapshots, history files, their signatures) into `<dir>/.replaced-<id>-<ms>/`; returns the folder and the names moved. */
export async function setAsideReplaced(dir: string, oldId: string, stamp: number, mode: number): Promise<{ folder: string; files: string[] }> {
  const folder = join(dir, `.replaced-${oldId}-${stamp}`);
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: unknown) => {
    if (errnoCode(err) === "ENOENT") return [];
    throw err;
  });
  const files = entries
    .filter((d) => d.isFile() && parseWalName(d.name.endsWith(WAL_SIGNATURE_SUFFIX) ? d.name.slice(0, -WAL_SIGNATURE_SUFFIX.length) : d.name) !== null)
    .map((d) => d.name)
    .sort();
  if (files.length === 0) return { folder, files };
  await mkdir(folder, { mode });
  for (const name of files) await rename(join(dir, name), join(folder, name));
  return { folder, files };
}
