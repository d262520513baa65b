// Pure: which WAL files in wal/ the bucket lacks, in the order they go up, and which of the
// bucket's snapshots are stale. wal-receive's uploader (walUploader.ts) and `mirror` both plan
// with it. Every file goes up as stored (encrypted stays encrypted) with its .sig: timeline
// history files first (recovery follows them), then completed segments oldest first (a gap in
// the bucket makes everything after it unrestorable from there), then the snapshot of the
// segment being received — the newest .partial, refreshed whenever it changed. A snapshot in
// the bucket is stale once the bucket holds that segment complete; it is deleted after the
// complete one went up, never before, so the bucket always has the newest WAL one way or the other.
import type { WalFile } from "../physical/layout.js";
import { WAL_SIGNATURE_SUFFIX, walStem } from "../physical/layout.js";

/** A WAL file in wal/ as listWalArchive sees it. */
export interface LocalWal {
  file: Exclude<WalFile, { kind: "backup-label" }>;
  size: number;
  mtime: Date;
  /** `<name>.sig` is beside it. */
  signed: boolean;
}

/** What the bucket holds in wal/ and wal-partial/: object name (no folder) to size. */
export type RemoteWal = ReadonlyMap<string, number>;

export type UploadKind = "history" | "segment" | "snapshot";

export interface WalUpload {
  name: string;
  kind: UploadKind;
  size: number;
  mtime: Date;
  signed: boolean;
  /** Why it goes up: "not in S3", "size in S3 differs", "signature missing in S3", "changed". */
  reason: string;
}

export interface WalUploadPlan {
  upload: WalUpload[];
  /** Snapshots (and their .sig) to delete from the bucket once `upload` went up: their segment is there complete. */
  staleSnapshots: string[];
}

export interface WalUploadOptions {
  /** S3_WAL_SNAPSHOT_SECONDS > 0: the segment being received goes up too. */
  snapshots: boolean;
  /** "<name> <size> <mtime ms>" of the snapshot this process uploaded last: it goes up again only when it changed. */
  lastSnapshot: string | null;
}

/** "<name> <size> <mtime ms>": a file's state, to tell a snapshot that changed (or a refused file that changed) from one that did not. */
export function fileState(w: { name: string; size: number; mtime: Date }): string {
  return `${w.name} ${w.size} ${w.mtime.getTime()}`;
}

function order(a: LocalWal, b: LocalWal): number {
  const rank = (w: LocalWal) => (w.file.kind === "history" ? 0 : 1);
  const seg = (w: LocalWal) => (w.file.kind === "segment" ? w.file.segment : 0n);
  return rank(a) - rank(b) || a.file.timeline - b.file.timeline || (seg(a) < seg(b) ? -1 : seg(a) > seg(b) ? 1 : 0) || (a.file.name < b.file.name ? -1 : 1);
}

function missing(w: LocalWal, remote: RemoteWal): string | null {
  const size = remote.get(w.file.name);
  if (size === undefined) return "not in S3";
  if (size !== w.size) return `size in S3 differs (${size} bytes, local ${w.size})`;
  if (w.signed && !remote.has(w.file.name + WAL_SIGNATURE_SUFFIX)) return "signature missing in S3";
  return null;
}

const isPartial = (f: WalFile): boolean => f.kind === "segment" && f.partial;

export function planWalUploads(local: readonly LocalWal[], remote: RemoteWal, o: WalUploadOptions): WalUploadPlan {
  const complete = local.filter((w) => !isPartial(w.file)).sort(order);
  const upload: WalUpload[] = [];
  for (const w of complete) {
    const reason = missing(w, remote);
    if (reason !== null) upload.push({ name: w.file.name, kind: w.file.kind === "history" ? "history" : "segment", size: w.size, mtime: w.mtime, signed: w.signed, reason });
  }
  const completeStems = new Set([...complete.filter((w) => w.file.kind === "segment").map((w) => walStem(w.file)), ...[...remote.keys()].flatMap(remoteCompleteStem)]);
  const snapshot = local
    .filter((w) => isPartial(w.file) && !completeStems.has(walStem(w.file)))
    .sort(order)
    .at(-1);
  if (o.snapshots && snapshot !== undefined) {
    const reason = missing(snapshot, remote) ?? (fileState({ name: snapshot.file.name, size: snapshot.size, mtime: snapshot.mtime }) !== o.lastSnapshot ? "changed" : null);
    if (reason !== null) upload.push({ name: snapshot.file.name, kind: "snapshot", size: snapshot.size, mtime: snapshot.mtime, signed: snapshot.signed, reason });
  }
  const staleSnapshots = [...remote.keys()].filter((n) => {
    const stem = /^([0-9A-F]{24})(\.gz|\.lz4)?\.partial(\.age)?$/.exec(n)?.[1];
    return stem !== undefined && completeStems.has(stem);
  });
  return { upload, staleSnapshots: staleSnapshots.sort() };
}

/** The stem of a complete segment object in the bucket (not a snapshot, not a signature), or none. */
function remoteCompleteStem(name: string): string[] {
  const m = /^([0-9A-F]{24})(\.gz|\.lz4)?(\.age)?$/.exec(name);
  return m === null ? [] : [m[1] as string];
}
