// The WAL archive in one line, for `list` (and the same data for --json): which segments
// wal/ spans and the oldest and newest time they cover.
import { humanBytes, localTime } from "../core/format.js";
import { listWalArchive } from "./archive.js";
import { walRange } from "./range.js";

export interface WalSummary {
  oldest: string;
  newest: string;
  /** mtime of the oldest segment: when it was completed. */
  oldestTime: string;
  /** mtime of the newest segment or .partial: the newest restorable time. */
  newestTime: string;
  timeline: number;
  files: number;
  bytes: number;
  /** Names in wal/ that are not WAL (left alone). */
  ignored: number;
}

export async function summarizeWal(backupDir: string): Promise<WalSummary | null> {
  const listing = await listWalArchive(backupDir);
  const range = walRange(listing);
  if (range === null) return null;
  return {
    oldest: range.oldest.file.name,
    newest: range.newest.file.name,
    oldestTime: range.oldestTime.toISOString(),
    newestTime: range.newestTime.toISOString(),
    timeline: range.newest.file.timeline,
    files: listing.segments.length + listing.histories.length,
    bytes: [...listing.segments, ...listing.histories].reduce((n, e) => n + e.size, 0),
    ignored: listing.ignored.length,
  };
}

/** The line `list` prints under the backups when wal/ holds WAL. Pure. */
export function formatWalSummary(s: WalSummary, tz: string): string {
  const extra = s.ignored > 0 ? `, ${s.ignored} other file(s) ignored` : "";
  return `WAL: ${localTime(new Date(s.oldestTime), tz)} to ${localTime(new Date(s.newestTime), tz)} (timeline ${s.timeline}, ${s.oldest} to ${s.newest}, ${s.files} files, ${humanBytes(s.bytes)}${extra})\n`;
}
