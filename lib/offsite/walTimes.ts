// Pure: which WAL objects' times restore-pitr --source s3 must ask the bucket for. The plan
// (pitr/plan.ts) times WAL by when each file was last written — an mtime in wal/, the "mtime"
// metadata the uploader sets in the bucket. A listing gives only LastModified, the upload time,
// which is never earlier than the file's mtime (it was uploaded after it was written) but can be
// much later (a segment uploaded when S3 came back after an outage). So LastModified is an
// upper bound, and the exact time (one HEAD) is needed only where an upper bound could change
// the plan: the newest restorable time is the exact time of the newest segment by position
// (WAL is written in order; a later timeline after an earlier one), and no other segment is
// taken as newer than it; for a target, the objects on the restore's path, in the order the plan
// reads them, from the first whose upper bound is not before the target up to the first whose
// exact time is at or after it (and the others at that position). Normally that is one or two HEADs.

export interface TimedSegment {
  /** Object key: what the caller HEADs. */
  key: string;
  timeline: number;
  /** Segment number (position), for the order the plan reads. */
  n: bigint;
  /** LastModified: the file's time is never later. */
  upper: Date;
  /** The file's time from the object's metadata, once asked (clamped to `upper`); null: not asked yet. */
  exact: Date | null;
  /** On the restore's path: the base backup's timeline or later, from its start segment on. */
  onPath: boolean;
  /** A snapshot of the segment being received (after a complete one at the same position). */
  partial?: boolean;
}

/** The newest segment by position: highest timeline, then segment, a snapshot after a complete one. */
function newest(segments: readonly TimedSegment[]): TimedSegment | undefined {
  const key = (s: TimedSegment): [number, bigint, number] => [s.timeline, s.n, s.partial === true ? 1 : 0];
  return segments.reduce<TimedSegment | undefined>((best, s) => {
    if (best === undefined) return s;
    const [a, b] = [key(s), key(best)];
    return a[0] > b[0] || (a[0] === b[0] && (a[1] > b[1] || (a[1] === b[1] && a[2] > b[2]))) ? s : best;
  }, undefined);
}

/**
 * The time the plan uses for `s`: the exact one once known, else the upper bound — but never
 * later than the newest segment's time (`segments`: all of them), which is the newest restorable time.
 */
export function timeOf(s: TimedSegment, segments: readonly TimedSegment[]): Date {
  if (s.exact !== null) return s.exact;
  const ceiling = newest(segments)?.exact ?? null;
  return ceiling !== null && ceiling < s.upper ? ceiling : s.upper;
}

const BATCH = 8;

function forNewest(segments: readonly TimedSegment[]): TimedSegment[] {
  const n = newest(segments);
  return n === undefined || n.exact !== null ? [] : [n];
}

function forTarget(segments: readonly TimedSegment[], target: Date): TimedSegment[] {
  const path = segments.filter((s) => s.onPath).sort((a, b) => (a.n === b.n ? a.timeline - b.timeline : a.n < b.n ? -1 : 1));
  const ask: TimedSegment[] = [];
  for (const s of path) {
    if (s.exact !== null && s.exact >= target) {
      // Found: every file at this position must be known too (the plan picks among them).
      return [...ask, ...path.filter((o) => o.n === s.n && o.exact === null)].slice(0, BATCH);
    }
    if (s.exact === null && s.upper >= target) ask.push(s);
    if (ask.length === BATCH) break;
  }
  return ask;
}

/** The segments to HEAD next (a batch); none when the plan's times are settled. Call again after each batch. */
export function timesToAsk(segments: readonly TimedSegment[], target: Date | null): string[] {
  const ask = [...(target === null ? [] : forTarget(segments, target)), ...forNewest(segments)];
  return [...new Set(ask.map((s) => s.key))];
}
