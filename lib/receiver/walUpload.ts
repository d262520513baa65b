// One WAL file of wal/ into the bucket, exactly as stored: read once (O_NOFOLLOW, bounded) into
// memory, with a key its signature checked against those bytes — a file a share writer put
// or changed in wal/ does not verify and is not uploaded —, then the bytes PUT with the file's
// mtime as metadata (restore-pitr --source s3 plans with WAL times, as it does with mtimes in
// wal/), then its .sig as read. Completed files go to S3_PREFIX/wal/, the snapshot of the
// segment being received to S3_PREFIX/wal-partial/ (client.ts: physicalKey).
import type { KeyObject } from "node:crypto";
import { lstat } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode } from "../core/errors.js";
import { readSmallFile, readWholeFile } from "../core/noFollow.js";
import type { WalFile } from "../physical/layout.js";
import { WAL_SIGNATURE_SUFFIX, parseWalName } from "../physical/layout.js";
import type { MirrorTarget, PhysicalFolder } from "../s3/client.js";
import { keyPrefix, physicalKey } from "../s3/client.js";
import { listObjects, putBytes } from "../s3/objects.js";
import type { ListedObject } from "../s3/objects.js";
import { UntrustedWal, walStatementOf } from "../wal/readFile.js";
import { WAL_SIGNATURE_MAX_BYTES, bytesProblem } from "../wal/signature.js";

/** The object metadata that carries a WAL file's modification time (ISO 8601). */
export const MTIME_METADATA = "mtime";

export function walFolder(file: WalFile): PhysicalFolder {
  return file.kind === "segment" && file.partial ? "wal-partial" : "wal";
}

export function walObjectKey(t: Pick<MirrorTarget, "s3">, file: WalFile): string {
  return physicalKey(t.s3, walFolder(file), file.name);
}

export type WalUploadOutcome = { uploaded: true; key: string; bytes: number } | { uploaded: false; problem: string };

/**
 * Uploads `name` from `dir` (BACKUP_DIR/wal). `verifyKey`: with it, only a file whose signature
 * verifies goes up (else the outcome says why not); `maxBytes`: the largest stored file that can
 * be WAL. A file gone meanwhile (cleanup, a snapshot completed) is "gone". S3 errors are thrown.
 */
export async function uploadWalFile(t: MirrorTarget, dir: string, name: string, verifyKey: KeyObject | null, maxBytes: number): Promise<WalUploadOutcome> {
  const file = parseWalName(name);
  if (file === null || file.kind === "backup-label") return { uploaded: false, problem: `${name} is not a WAL segment or history file` };
  const path = join(dir, name);
  let bytes: Buffer;
  let mtime: Date;
  let sig: string | null;
  try {
    mtime = (await lstat(path)).mtime;
    bytes = await readWholeFile(path, maxBytes);
    sig = await readSmallFile(path + WAL_SIGNATURE_SUFFIX, WAL_SIGNATURE_MAX_BYTES).catch((err: unknown) => {
      if (errnoCode(err) === "ENOENT") return null;
      throw err;
    });
  } catch (err) {
    const code = errnoCode(err);
    return { uploaded: false, problem: code === "ENOENT" ? "gone" : `${path} cannot be read (${code ?? (err as Error).message})` };
  }
  if (verifyKey !== null) {
    try {
      const mismatch = bytesProblem(walStatementOf(name, sig, verifyKey, null), bytes);
      if (mismatch !== null) return { uploaded: false, problem: `WAL file ${mismatch}` };
    } catch (err) {
      if (err instanceof UntrustedWal) return { uploaded: false, problem: err.problem };
      throw err;
    }
  }
  const key = walObjectKey(t, file);
  await putBytes(t, key, bytes, { [MTIME_METADATA]: mtime.toISOString() });
  if (sig !== null) await putBytes(t, key + WAL_SIGNATURE_SUFFIX, sig, {}, "text/plain");
  return { uploaded: true, key, bytes: bytes.length };
}

/** An object in the bucket's wal/ or wal-partial/ folder. */
export interface RemoteWalObject {
  /** The file name, without the folder. */
  name: string;
  folder: "wal" | "wal-partial";
  key: string;
  size: number;
  lastModified: Date;
}

/**
 * The objects of one listed folder that are WAL files (or their signatures) of that folder:
 * anything else — another name, a snapshot in wal/, a complete segment in wal-partial/ — is not
 * what the uploader put there and is ignored. Pure.
 */
export function walObjectsIn(folder: "wal" | "wal-partial", prefix: string, listed: readonly ListedObject[]): RemoteWalObject[] {
  return listed.flatMap((o) => {
    const name = o.key.slice(prefix.length);
    const file = parseWalName(name.endsWith(WAL_SIGNATURE_SUFFIX) ? name.slice(0, -WAL_SIGNATURE_SUFFIX.length) : name);
    return o.key.startsWith(prefix) && file !== null && file.kind !== "backup-label" && walFolder(file) === folder ? [{ name, folder, key: o.key, size: o.size, lastModified: o.lastModified }] : [];
  });
}

/** The WAL files and signatures in S3_PREFIX/wal/ and S3_PREFIX/wal-partial/ (two paginated LISTs, no GETs); S3 errors are thrown. */
export async function listRemoteWal(t: MirrorTarget): Promise<RemoteWalObject[]> {
  const out: RemoteWalObject[] = [];
  for (const folder of ["wal", "wal-partial"] as const) {
    const prefix = `${keyPrefix(t.s3)}${folder}/`;
    out.push(...walObjectsIn(folder, prefix, await listObjects(t, prefix)));
  }
  return out;
}

/** The sizes by name that planWalUploads compares with. Pure. */
export function remoteSizes(objects: readonly RemoteWalObject[]): Map<string, number> {
  return new Map(objects.map((o) => [o.name, o.size]));
}
