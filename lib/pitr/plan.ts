// Which base backup and which WAL files a point-in-time restore needs. Pure, so it is
// table-tested and `restore-pitr --dry-run` prints exactly what the task would do.
// The WAL's time is known only from the files' modification times (pg_receivewal writes a
// segment as the server sends it, basic_archive copies it when it is complete): a segment's
// mtime is when its newest record arrived, so the first segment modified at or after the
// target holds the target's records, and the newest file's mtime is the newest restorable time.
import { ExitCode, TaskError } from "../core/errors.js";
import type { BaseManifest } from "../physical/layout.js";
import { parseLsn, segmentName, segmentNumber, segmentOfLsn } from "../physical/layout.js";
import type { TimelineHistory } from "../wal/timelineHistory.js";
import type { SegmentFile } from "../wal/archive.js";
import { checkWalContinuity } from "../wal/continuity.js";

/** A base backup as the catalog of base/ sees it: unusable when `problem` is set or there is no manifest. */
export interface BaseCandidate {
  name: string;
  manifest: BaseManifest | null;
  problem: string | null;
}

/** What the plan needs of wal/ (walArchive's listing and its parsed histories). */
export interface WalInput {
  segments: readonly { file: SegmentFile; mtime: Date }[];
  /** The .history file names, all copied (recovery_target_timeline = 'latest' reads them). */
  historyNames: readonly string[];
  histories: ReadonlyMap<number, TimelineHistory>;
}

export type StagedSegment = { source: string; target: string; compression: SegmentFile["compression"] };

export interface PitrPlan {
  base: string;
  manifest: BaseManifest;
  /** null: recover to the end of the archived WAL. */
  target: Date | null;
  /** Segment files to copy into the data directory, in segment order; the newest .partial under its full name. */
  segments: StagedSegment[];
  /** Timeline history files of the base backup's timeline and later, as stored (maybe compressed); staged as NNNNNNNN.history. */
  history: string[];
  /** First and last segment the recovery needs. */
  firstSegment: string;
  lastSegment: string;
  /** The newest restorable time: the newest WAL file's mtime. */
  walEnd: Date | null;
}

const iso = (d: Date): string => d.toISOString();

function usable(bases: readonly BaseCandidate[]): (BaseCandidate & { manifest: BaseManifest })[] {
  return bases
    .filter((b): b is BaseCandidate & { manifest: BaseManifest } => b.problem === null && b.manifest !== null)
    .sort((a, b) => Date.parse(a.manifest.finishedAt) - Date.parse(b.manifest.finishedAt) || a.name.localeCompare(b.name));
}

/**
 * The segment files of timelines >= `timeline`, one per segment: a complete file before a
 * .partial, and of two alike (stored plain and encrypted after encryption was switched on, or
 * compressed two ways) the one written last.
 */
function segmentsFrom(wal: WalInput, timeline: number): WalInput["segments"] {
  const best = new Map<string, WalInput["segments"][number]>();
  for (const s of wal.segments) {
    if (s.file.timeline < timeline) continue;
    const key = `${s.file.timeline}/${s.file.segment}`;
    const had = best.get(key);
    if (had === undefined || (had.file.partial && !s.file.partial) || (had.file.partial === s.file.partial && s.mtime > had.mtime)) best.set(key, s);
  }
  return [...best.values()];
}

/**
 * The history files recovery reads: of the base backup's timeline and later ones (the newest
 * names all its ancestors; older ones are never asked for). One file per timeline: a history
 * stored two ways (compressed or not, encrypted or not) holds the same text.
 */
function stagedHistoryNames(names: readonly string[], baseTimeline: number): string[] {
  const wanted = names.filter((n) => Number.parseInt(n.slice(0, 8), 16) >= baseTimeline);
  return [...new Map([...wanted].sort().map((n) => [n.slice(0, 16), n])).values()];
}

/** The staged name of a segment: the 24 hex digits, without compression, .partial or .age. */
function fullName(f: SegmentFile): string {
  return f.name.slice(0, 24);
}

/**
 * The base backup a restore to `target` starts from: the newest usable one that finished
 * before it (the newest of all without a target; the oldest when none finished before it,
 * which planPitr then refuses), or null when none is usable. Pure.
 */
export function baseFor(bases: readonly BaseCandidate[], target: Date | null): (BaseCandidate & { manifest: BaseManifest }) | null {
  const good = usable(bases);
  return good.filter((b) => target === null || Date.parse(b.manifest.finishedAt) < target.getTime()).at(-1) ?? good[0] ?? null;
}

/**
 * Chooses the newest usable base backup that finished before `target` (or the newest of all
 * without one) and the WAL from its start segment to what the target needs. Throws a
 * TaskError (exit 4) naming the restorable range when the target is outside it, or the first
 * missing segment when the WAL has a gap; nothing has been written when it throws.
 */
export function planPitr(bases: readonly BaseCandidate[], wal: WalInput, target: Date | null): PitrPlan {
  const good = usable(bases);
  const oldest = good[0];
  if (oldest === undefined) {
    const why = bases.length === 0 ? "there is none" : `none is usable (${bases.map((b) => `${b.name}: ${b.problem ?? "no manifest"}`).join("; ")})`;
    throw new TaskError(ExitCode.refused, `restore-pitr needs a base backup in BACKUP_DIR/base, and ${why}; run \`backup base\` and keep the WAL receiver running`);
  }
  const walEnd = wal.segments.reduce<Date | null>((max, w) => (max === null || w.mtime > max ? w.mtime : max), null);
  const range = `restorable range: ${oldest.manifest.finishedAt} (end of the oldest base backup ${oldest.name}) to ${walEnd === null ? "no archived WAL" : `${iso(walEnd)} (newest WAL)`}`;
  if (target !== null && target.getTime() <= Date.parse(oldest.manifest.finishedAt)) {
    throw new TaskError(ExitCode.refused, `--at ${iso(target)} is before the end of the oldest base backup, so no base backup can reach it; ${range}. Choose a time inside the range, or restore a logical backup with restore-latest --at`);
  }
  if (target !== null && (walEnd === null || target > walEnd)) {
    throw new TaskError(ExitCode.refused, `--at ${iso(target)} is after the newest archived WAL, so recovery would stop short of it; ${range}. Choose a time inside the range, or leave out --at to recover to the end of the WAL`);
  }
  const chosen = baseFor(good, target) ?? oldest;
  const m = chosen.manifest;
  const size = m.walSegmentSize;
  const start = parseLsn(m.startLsn);
  const stop = parseLsn(m.stopLsn);
  if (start === null || stop === null) throw new TaskError(ExitCode.refused, `${chosen.name}.json has unreadable LSNs (start ${m.startLsn}, stop ${m.stopLsn}); the manifest is damaged: take a new base backup`);
  const startSeg = segmentOfLsn(start, size);
  const stopSeg = segmentOfLsn(stop, size);

  const files = segmentsFrom(wal, m.timeline).map((s) => ({ ...s, n: segmentNumber(s.file.segment, size) })).filter((s) => s.n >= startSeg);
  files.sort((a, b) => (a.n === b.n ? a.file.timeline - b.file.timeline : a.n < b.n ? -1 : 1));
  const newestPartial = files.filter((s) => s.file.partial).at(-1);
  const staged = files.filter((s) => !s.file.partial || s === newestPartial);
  // With a target, only the WAL up to the first segment written after it is needed.
  const covering = target === null ? undefined : staged.find((s) => s.mtime >= target);
  const needEnd = covering?.n ?? staged.at(-1)?.n ?? stopSeg;
  const used = staged.filter((s) => s.n <= needEnd);
  const refuse = (missing: string, why: string) =>
    new TaskError(
      ExitCode.refused,
      `the WAL has a gap: ${why}; base backup ${chosen.name} needs every segment from ${segmentName(m.timeline, startSeg, size)} to ${segmentName(m.timeline, needEnd < stopSeg ? stopSeg : needEnd, size)}` +
        `${target === null ? " (the end of the archived WAL)" : ` for --at ${iso(target)}`}; ${range}. Restore ${missing} from a copy, or choose a time before the gap`,
    );
  const firstName = segmentName(m.timeline, startSeg, size);
  if (used.length === 0) throw refuse(firstName, `WAL segment ${firstName} is missing from wal/, which ${wal.segments.length === 0 ? "holds no WAL" : "holds only older WAL"}`);
  const continuity = checkWalContinuity(used.map((s) => s.file), wal.histories, { timeline: m.timeline, lsn: start }, size);
  if (!continuity.ok) throw refuse(continuity.firstMissing, continuity.message);
  if (needEnd < stopSeg) {
    const name = segmentName(m.timeline, needEnd + 1n, size);
    throw refuse(name, `WAL segment ${name} is missing from wal/, and the base backup ends in ${segmentName(m.timeline, stopSeg, size)}, so it cannot be restored without it (use an older one or take a new base backup)`);
  }
  return {
    base: chosen.name,
    manifest: m,
    target,
    segments: used.map((s) => ({ source: s.file.name, target: fullName(s.file), compression: s.file.compression })),
    history: stagedHistoryNames(wal.historyNames, m.timeline),
    firstSegment: firstName,
    lastSegment: fullName((used.at(-1) as (typeof used)[number]).file),
    walEnd,
  };
}

/** The plan as text for --dry-run and the log. */
export function formatPitrPlan(p: PitrPlan): string {
  const partial = p.segments.filter((s) => s.source.endsWith(".partial")).map((s) => s.source);
  return [
    `base backup:  ${p.base} (start ${p.manifest.startLsn}, end ${p.manifest.stopLsn} at ${p.manifest.finishedAt}, timeline ${p.manifest.timeline})`,
    `target:       ${p.target === null ? "end of the archived WAL" : iso(p.target)}`,
    `WAL:          ${p.segments.length} segment file(s) ${p.firstSegment} .. ${p.lastSegment}${partial.length > 0 ? `, including ${partial.join(", ")} as its full name` : ""}; ${p.history.length} history file(s)`,
    `newest WAL:   ${p.walEnd === null ? "-" : iso(p.walEnd)}`,
    "",
  ].join("\n");
}
