// The bucket's side of a replaced cluster (identity.ts): when wal-receive sets the old cluster's
// WAL aside in wal/, its objects under wal/ and wal-partial/ in the S3 mirror are moved too, to
// wal-replaced/<id>-<ms>/ (a server-side copy, then a delete; readers of the bucket list wal/ and
// wal-partial/ only, and pruning never touches the folder). Otherwise the new cluster's WAL,
// which starts over at the same names, would sit beside the old cluster's higher-numbered
// segments there (a restore to the end refused with a gap), and an upload of the same name and
// size would not replace an old object.
//
// The move is a job written into wal/ (`.pgsb-bucket-replaced-<id>-<ms>`) before pg_receivewal
// starts for the new cluster, and carried out by the uploader at the start of its next round,
// before it uploads anything: every object it then finds there is the old cluster's, but for one
// the new cluster may already have put there by another way (`mirror`), which is kept. A job
// that fails (S3 down) is tried again every round, and after a restart, until it is done;
// meanwhile nothing else goes up, so nothing of the new cluster can be moved with the old.
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../core/atomicWrite.js";
import { mapLimit } from "../core/concurrency.js";
import { errnoCode } from "../core/errors.js";
import type { MirrorTarget } from "../s3/client.js";
import { keyPrefix } from "../s3/client.js";
import type { ListedObject } from "../s3/objects.js";
import { copyObject, deleteKeys, listObjects } from "../s3/objects.js";

const JOB_RE = /^\.pgsb-bucket-replaced-(\d{1,20})-(\d{1,16})$/;
const COPY_CONCURRENCY = 8;
/** An object of the same name and size as a file in wal/ uploaded this close to the replacement, or after it, may be the new cluster's. */
const RECENT_MS = 5 * 60_000;

export interface BucketMoveJob {
  oldId: string;
  stamp: number;
  /** The job's file in wal/. */
  file: string;
}

/** Records the job in wal/ (carried out by the uploader; see the top of this file). */
export async function recordBucketMove(walFolder: string, oldId: string, stamp: number, mode: number): Promise<void> {
  await writeFileAtomic(join(walFolder, `.pgsb-bucket-replaced-${oldId}-${stamp}`), `${oldId} ${stamp}\n`, mode);
}

/** The jobs recorded in wal/, oldest first. */
export async function pendingBucketMoves(walFolder: string): Promise<BucketMoveJob[]> {
  const names = await readdir(walFolder).catch((err: unknown) => {
    if (errnoCode(err) === "ENOENT") return [] as string[];
    throw err;
  });
  return names
    .flatMap((n) => {
      const m = JOB_RE.exec(n);
      return m === null ? [] : [{ oldId: m[1] as string, stamp: Number(m[2]), file: join(walFolder, n) }];
    })
    .sort((a, b) => a.stamp - b.stamp);
}

export interface ObjectMove {
  from: string;
  to: string;
}

/**
 * Which listed objects (under `<prefix>wal/` and `<prefix>wal-partial/`) move, and where: all but
 * one whose name and size a file in wal/ has and that was uploaded within RECENT_MS before the
 * replacement or after it (`local`: name to size of wal/'s files). Pure.
 */
export function objectsToMove(listed: readonly ListedObject[], local: ReadonlyMap<string, number>, job: Pick<BucketMoveJob, "oldId" | "stamp">, prefix: string): ObjectMove[] {
  const dest = `${prefix}wal-replaced/${job.oldId}-${job.stamp}/`;
  return listed.flatMap((o) => {
    if (!o.key.startsWith(prefix)) return [];
    const rest = o.key.slice(prefix.length);
    if (!rest.startsWith("wal/") && !rest.startsWith("wal-partial/")) return [];
    const name = rest.slice(rest.indexOf("/") + 1);
    if (name === "" || name.includes("/")) return [];
    const maybeNew = local.get(name) === o.size && o.lastModified.getTime() >= job.stamp - RECENT_MS;
    return maybeNew ? [] : [{ from: o.key, to: dest + rest }];
  });
}

/** Carries out one job: the old cluster's objects copied into wal-replaced/ and deleted from where restores look; returns how many moved. S3 errors are thrown (the job stays). */
export async function moveReplacedObjects(t: MirrorTarget, job: BucketMoveJob, local: ReadonlyMap<string, number>): Promise<number> {
  const prefix = keyPrefix(t.s3);
  const listed = [...(await listObjects(t, `${prefix}wal/`)), ...(await listObjects(t, `${prefix}wal-partial/`))];
  const moves = objectsToMove(listed, local, job, prefix);
  await mapLimit(moves, COPY_CONCURRENCY, (m) => copyObject(t, m.from, m.to));
  if (moves.length > 0) await deleteKeys(t, moves.map((m) => m.from));
  await rm(job.file, { force: true });
  return moves.length;
}
