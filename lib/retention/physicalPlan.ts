// Pure: which base backups and which WAL files cleanup keeps. Base backups follow the fulls'
// policy (lib/retention/plan.ts: ages alike, RETENTION_MIN_FULL of them always kept, and a
// base backup with a problem never counts toward it). WAL is kept from the start segment of
// the kept good base backup that starts earliest (in LSN order, not time order: after a
// point-in-time restore a newer timeline may start below an older base's start), on every
// timeline; older segments, .partial and .backup files are deleted, and history files of
// timelines below every kept base's timeline (a later history file repeats its ancestry).
// Without a kept good base backup, or when they disagree on the segment size, no WAL is deleted.
import type { RetentionDecision, RetentionPolicy } from "./plan.js";
import { planRetention } from "./plan.js";
import type { WalFile } from "../physical/layout.js";
import { parseLsn, segmentName, segmentNumber, segmentOfLsn } from "../physical/layout.js";

export interface BaseRetentionInput {
  name: string;
  time: Date;
  /** A base backup with a problem (BaseEntry.problem) is never counted as a good kept one. */
  problem: string | null;
}

export type BaseDecision = Omit<RetentionDecision, "tier">;

/** The start of the WAL a kept good base backup needs. */
export interface WalStart {
  name: string;
  timeline: number;
  startLsn: string;
  walSegmentSize: number;
}

export interface WalDecision {
  name: string;
  reason: string;
}

export interface WalPlan {
  /** The files to delete, oldest first, each with its reason. */
  delete: WalDecision[];
  /** The first segment kept, e.g. "000000010000000000000042", or null when nothing is deleted for lack of a kept good base. */
  keepFrom: string | null;
  /** Why WAL is kept from there, or why nothing is deleted. */
  reason: string;
}

function baseWords(reason: string): string {
  return reason.replace(/\bfulls\b/g, "base backups").replace(/\bfull\b/g, "base backup");
}

/** The fulls' decision for base backups; reasons speak of base backups. */
export function planBaseRetention(bases: readonly BaseRetentionInput[], policy: RetentionPolicy, now: Date): BaseDecision[] {
  const planned = planRetention(
    bases.map((b) => ({ name: b.name, tier: "full" as const, time: b.time, parent: null, valid: b.problem === null, problem: b.problem })),
    policy,
    now,
  );
  return planned.map(({ name, time, action, reason }) => ({ name, time, action, reason: baseWords(reason) }));
}

/**
 * The WAL plan for the base backups that stay. `kept`: the kept base backups without a
 * problem, with their manifests' start. `files`: what wal/ holds (parseWalName).
 */
export function planWalRetention(files: readonly WalFile[], kept: readonly WalStart[]): WalPlan {
  if (kept.length === 0) return { delete: [], keepFrom: null, reason: "no good base backup is kept, so every WAL file is kept (a base backup is what makes WAL restorable)" };
  const sizes = new Set(kept.map((k) => k.walSegmentSize));
  if (sizes.size > 1) return { delete: [], keepFrom: null, reason: `the kept base backups disagree on wal_segment_size (${[...sizes].join(", ")}); no WAL is deleted` };
  const size = kept[0]?.walSegmentSize as number;
  let first = kept[0] as WalStart;
  let firstSeg = -1n;
  for (const k of kept) {
    const seg = segmentOfLsn(parseLsn(k.startLsn) ?? 0n, size);
    if (firstSeg === -1n || seg < firstSeg) [first, firstSeg] = [k, seg];
  }
  const minTimeline = Math.min(...kept.map((k) => k.timeline));
  const keepFrom = segmentName(first.timeline, firstSeg, size);
  const doomed: WalDecision[] = [];
  for (const f of files) {
    if (f.kind === "history") {
      if (f.timeline < minTimeline) doomed.push({ name: f.name, reason: `history of timeline ${f.timeline}, older than every kept base backup's timeline (${minTimeline})` });
    } else if (segmentNumber(f.segment, size) < firstSeg) {
      const what = f.kind === "backup-label" ? "backup history file" : f.partial ? "partial segment" : "segment";
      doomed.push({ name: f.name, reason: `${what} before ${keepFrom}, where the oldest kept base backup ${first.name} starts` });
    }
  }
  doomed.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { delete: doomed, keepFrom, reason: `kept from ${keepFrom}: the start of ${first.name}, the kept base backup that starts earliest` };
}
