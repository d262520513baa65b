// What `list --source s3` shows of the physical tier in the bucket, as `list` shows BACKUP_DIR's:
// the base backups (times, sizes, WAL range, why one is unusable — with a verify key, one that
// does not verify) and one line with the WAL range, its times from the oldest and newest
// segment's mtime metadata (two HEADs; LastModified for an object without it).
import type { KeyObject } from "node:crypto";
import { ExitCode } from "../core/errors.js";
import { localTime } from "../core/format.js";
import type { ListedBase } from "../base/listing.js";
import { parseWalName } from "../physical/layout.js";
import type { MirrorTarget } from "../s3/client.js";
import { keyPrefix, s3Failure, s3Url } from "../s3/client.js";
import { headObject } from "../s3/objects.js";
import type { WalSummary } from "../wal/summary.js";
import { listRemoteWal, MTIME_METADATA } from "../receiver/walUpload.js";
import type { RemoteWalObject } from "../receiver/walUpload.js";
import { listRemoteBases, readRemoteBases } from "./remoteBases.js";

export interface BucketPhysical {
  bases: ListedBase[];
  wal: WalSummary | null;
}

async function timeOf(t: MirrorTarget, o: RemoteWalObject): Promise<Date> {
  const meta = Date.parse((await headObject(t, o.key))?.metadata[MTIME_METADATA] ?? "");
  return Number.isNaN(meta) || meta > o.lastModified.getTime() ? o.lastModified : new Date(meta);
}

/** The WAL range in the bucket: lowest and highest segment (by position, then timeline), files and bytes. */
async function walSummary(t: MirrorTarget, objects: readonly RemoteWalObject[]): Promise<WalSummary | null> {
  const files = objects.filter((o) => !o.name.endsWith(".sig"));
  const segments = files.flatMap((o) => {
    const f = parseWalName(o.name);
    return f?.kind === "segment" ? [{ o, f }] : [];
  });
  if (segments.length === 0) return null;
  const oldest = segments.reduce((a, b) => (b.f.segment < a.f.segment || (b.f.segment === a.f.segment && b.f.timeline < a.f.timeline) ? b : a));
  const newest = segments.reduce((a, b) => (b.f.timeline > a.f.timeline || (b.f.timeline === a.f.timeline && b.f.segment > a.f.segment) ? b : a));
  const [oldestTime, newestTime] = await Promise.all([timeOf(t, oldest.o), timeOf(t, newest.o)]);
  return {
    oldest: oldest.o.name,
    newest: newest.o.name,
    oldestTime: oldestTime.toISOString(),
    newestTime: newestTime.toISOString(),
    timeline: newest.f.timeline,
    files: files.length,
    bytes: files.reduce((n, o) => n + o.size, 0),
    ignored: 0,
  };
}

export async function listBucketPhysical(t: MirrorTarget, verifyKey: KeyObject | null, tz: string): Promise<BucketPhysical> {
  try {
    const [remote, objects] = await Promise.all([listRemoteBases(t), listRemoteWal(t)]);
    const entries = await readRemoteBases(t, remote, verifyKey, ExitCode.mirrorFailed);
    const bases = entries.map((e) => {
      const time = e.manifest === null ? e.time : new Date(e.manifest.startedAt);
      return {
        name: e.name,
        time: time.toISOString(),
        localTime: localTime(time, tz),
        bytes: e.bytes ?? 0,
        startLsn: e.manifest?.startLsn ?? null,
        stopLsn: e.manifest?.stopLsn ?? null,
        timeline: e.manifest?.timeline ?? null,
        problem: e.problem === null ? null : `in S3: ${e.problem}`,
      };
    });
    return { bases, wal: await walSummary(t, objects) };
  } catch (err) {
    throw await s3Failure(t.s3, t.client, `listing of ${s3Url(t.s3, keyPrefix(t.s3))}`, err, ExitCode.mirrorFailed);
  }
}
