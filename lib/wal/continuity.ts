// Gap detection: is every WAL segment from a start point (a base backup's start LSN) to the
// newest segment in wal/? Recovery reads segment n from the newest timeline on its path whose
// start is at or before n (the segment holding a switch point is read on the child
// timeline), so this walks the same path: the newest timeline's history back to the start's
// timeline. A .partial counts only as the last segment: in the middle it is a hole that a
// receiver left when it lost its slot, and recovery stops at its end.
import { formatLsn, segmentName, segmentNumber, segmentOfLsn } from "../physical/layout.js";
import { historyName } from "./timelineHistory.js";
import type { TimelineHistory } from "./timelineHistory.js";
import type { SegmentFile } from "./archive.js";

export interface WalStart {
  timeline: number;
  lsn: bigint;
}

export type WalProblem = "no-wal" | "missing-segment" | "missing-history" | "foreign-timeline";

export type WalContinuity =
  | { ok: true; from: string; to: string; segments: number; endsPartial: boolean }
  | { ok: false; problem: WalProblem; firstMissing: string; message: string };

interface Leg {
  timeline: number;
  /** First segment number read on this timeline. */
  fromSegment: bigint;
}

function fail(problem: WalProblem, firstMissing: string, message: string): WalContinuity {
  return { ok: false, problem, firstMissing, message };
}

/** The timelines from `start` to `newest`, each with the segment it begins at; a problem when they do not connect. */
function path(histories: ReadonlyMap<number, TimelineHistory>, start: WalStart, newest: number, segmentSize: number): Leg[] | WalContinuity {
  if (newest === start.timeline) return [{ timeline: newest, fromSegment: 0n }];
  const history = histories.get(newest);
  if (history === undefined) {
    return fail("missing-history", historyName(newest), `timeline history file ${historyName(newest)} is missing from wal/: WAL from timeline ${start.timeline} to ${newest} cannot be followed; copy it from the server's pg_wal/`);
  }
  const at = history.findIndex((s) => s.parentTimeline === start.timeline);
  const own = history[at];
  if (own === undefined || start.lsn >= own.switchLsn) {
    const why = own === undefined ? `timeline ${start.timeline} is not an ancestor of timeline ${newest}` : `timeline ${newest} branched off at ${formatLsn(own.switchLsn)}, before ${formatLsn(start.lsn)}`;
    return fail("foreign-timeline", historyName(newest), `the newest WAL (timeline ${newest}) does not continue from timeline ${start.timeline} at ${formatLsn(start.lsn)}: ${why}; take a new base backup`);
  }
  const legs: Leg[] = [{ timeline: start.timeline, fromSegment: 0n }];
  for (let i = at; i < history.length; i++) {
    const child = history[i + 1]?.parentTimeline ?? newest;
    legs.push({ timeline: child, fromSegment: segmentOfLsn((history[i] as { switchLsn: bigint }).switchLsn, segmentSize) });
  }
  return legs;
}

/**
 * Checks that every segment from `start`'s to the newest one is present. Pure: `segments`
 * are parsed names (walArchive's listing), `histories` the parsed .history files by timeline.
 */
export function checkWalContinuity(
  segments: readonly SegmentFile[],
  histories: ReadonlyMap<number, TimelineHistory>,
  start: WalStart,
  segmentSize: number,
): WalContinuity {
  const complete = new Set<string>();
  const partial = new Set<string>();
  let newest: { timeline: number; n: bigint } | null = null;
  for (const f of segments) {
    const n = segmentNumber(f.segment, segmentSize);
    (f.partial ? partial : complete).add(`${f.timeline}:${n}`);
    if (newest === null || f.timeline > newest.timeline || (f.timeline === newest.timeline && n > newest.n)) newest = { timeline: f.timeline, n };
  }
  const first = segmentOfLsn(start.lsn, segmentSize);
  const firstName = segmentName(start.timeline, first, segmentSize);
  if (newest === null) return fail("no-wal", firstName, `wal/ holds no WAL segment; start wal-receive (or archive_library = 'basic_archive') and take a new base backup`);
  const legs = path(histories, start, newest.timeline, segmentSize);
  if (!Array.isArray(legs)) return legs;
  const last = newest.n;
  if (last < first) {
    return fail("missing-segment", firstName, `WAL segment ${firstName} is missing from wal/: the archived WAL ends before ${formatLsn(start.lsn)}; check that wal-receive is running`);
  }
  let leg = 0;
  for (let n = first; n <= last; n++) {
    while (leg + 1 < legs.length && (legs[leg + 1] as Leg).fromSegment <= n) leg++;
    const tli = (legs[leg] as Leg).timeline;
    const key = `${tli}:${n}`;
    if (complete.has(key) || (n === last && partial.has(key))) continue;
    const name = segmentName(tli, n, segmentSize);
    return fail(
      "missing-segment",
      name,
      `WAL segment ${name} is missing from wal/ (needed to replay from ${formatLsn(start.lsn)} on timeline ${start.timeline} to the newest WAL, ${segmentName(newest.timeline, last, segmentSize)}); ` +
        `recovery stops before it: take a new base backup, after which the gap no longer matters`,
    );
  }
  return {
    ok: true,
    from: firstName,
    to: segmentName(newest.timeline, last, segmentSize),
    segments: Number(last - first + 1n),
    endsPartial: !complete.has(`${newest.timeline}:${last}`),
  };
}
