// The span of WAL in wal/: what `list` prints and what restore-pitr checks a target time against.
import type { SegmentFile, WalEntry, WalListing } from "./archive.js";

export interface WalRange {
  /** The lowest segment (by position, then timeline); complete or partial. */
  oldest: WalEntry<SegmentFile>;
  /** The highest segment on the highest timeline; often pg_receivewal's .partial. */
  newest: WalEntry<SegmentFile>;
  /** When the oldest segment was completed (its mtime). */
  oldestTime: Date;
  /**
   * The newest restorable time, taken as the newest segment's mtime: pg_receivewal writes
   * (and with --synchronous flushes) the .partial as WAL arrives, so it is the time of the
   * last received WAL. It can be later than the last commit when the server was idle.
   */
  newestTime: Date;
}

/** Null when wal/ holds no segment. Pure. */
export function walRange(listing: Pick<WalListing, "segments">): WalRange | null {
  let oldest: WalEntry<SegmentFile> | null = null;
  let newest: WalEntry<SegmentFile> | null = null;
  for (const e of listing.segments) {
    const f = e.file;
    if (oldest === null || f.segment < oldest.file.segment || (f.segment === oldest.file.segment && f.timeline < oldest.file.timeline)) oldest = e;
    if (newest === null || f.timeline > newest.file.timeline || (f.timeline === newest.file.timeline && (f.segment > newest.file.segment || (f.segment === newest.file.segment && e.mtime > newest.mtime)))) newest = e;
  }
  if (oldest === null || newest === null) return null;
  return { oldest, newest, oldestTime: oldest.mtime, newestTime: newest.mtime };
}
