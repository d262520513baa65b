// Pure: what `mirror` and `cleanup` delete of the physical tier in the bucket, by cleanup's own
// plan (retention/physicalPlan.ts). The bucket is planned as cleanup plans BACKUP_DIR, over the
// base backups both hold (a local one stands for its copy; one only the bucket still has — say
// cleanup deleted it locally while S3 was down — by its remote manifest, checked like a local
// one), and its WAL. Then one guard: nothing is deleted that cleanup keeps, or would keep, in
// BACKUP_DIR — the plan over the local base backups alone keeps it too (for WAL, by the
// segment its kept base backups start at). So a bucket whose BACKUP_DIR was lost, or holds
// fewer base backups than the bucket, loses nothing cleanup would not have deleted anyway, and
// with no good base backup kept locally no WAL is deleted from the bucket at all.
import type { RetentionPolicy } from "../retention/plan.js";
import type { BaseRetentionInput, WalStart } from "../retention/physicalPlan.js";
import { planBaseRetention, planWalRetention } from "../retention/physicalPlan.js";
import type { WalFile } from "../physical/layout.js";

export interface PruneBase extends BaseRetentionInput {
  /** Where the kept WAL starts for it: from its manifest; null without a usable one. */
  start: Omit<WalStart, "name"> | null;
}

export interface PruneInput {
  /** The base backups in BACKUP_DIR, as cleanup sees them (problem: as scanBaseCatalog says). */
  local: readonly PruneBase[];
  /** The base backups in the bucket (problem: incomplete, unusable or not verifying). */
  remote: readonly PruneBase[];
  /** The WAL files in the bucket (segments in wal/ and wal-partial/, history files). */
  remoteWal: readonly WalFile[];
  policy: RetentionPolicy;
  now: Date;
}

export interface PruneDecision {
  name: string;
  reason: string;
}

export interface PrunePlan {
  /** Base backups to delete from the bucket (data and sidecars), newest first. */
  bases: PruneDecision[];
  /** WAL files to delete from the bucket (each with its .sig), oldest first. */
  wal: PruneDecision[];
  /** Why WAL is kept from where it is, or why none is deleted. */
  walReason: string;
}

function starts(bases: readonly PruneBase[], keep: ReadonlySet<string>): WalStart[] {
  return bases.flatMap((b) => (keep.has(b.name) && b.problem === null && b.start !== null ? [{ name: b.name, ...b.start }] : []));
}

function kept(bases: readonly PruneBase[], policy: RetentionPolicy, now: Date): { keep: Set<string>; reasons: Map<string, string> } {
  const decisions = planBaseRetention(bases, policy, now);
  return { keep: new Set(decisions.filter((d) => d.action === "keep").map((d) => d.name)), reasons: new Map(decisions.map((d) => [d.name, d.reason])) };
}

export function planBucketPrune(input: PruneInput): PrunePlan {
  const localNames = new Set(input.local.map((b) => b.name));
  const union = [...input.local, ...input.remote.filter((b) => !localNames.has(b.name))];
  const all = kept(union, input.policy, input.now);
  const local = kept(input.local, input.policy, input.now);
  const bases = input.remote
    .filter((b) => !all.keep.has(b.name) && !local.keep.has(b.name))
    .map((b) => ({ name: b.name, reason: `${all.reasons.get(b.name) ?? "not kept"}${localNames.has(b.name) ? "" : " (only in S3)"}` }))
    .sort((a, b) => (a.name < b.name ? 1 : -1));
  const walAll = planWalRetention(input.remoteWal, starts(union, all.keep));
  const walLocal = planWalRetention(input.remoteWal, starts(input.local, local.keep));
  const deletedLocally = new Set(walLocal.delete.map((d) => d.name));
  const wal = walAll.delete.filter((d) => deletedLocally.has(d.name));
  const walReason =
    walLocal.keepFrom === null ? `BACKUP_DIR keeps every WAL file (${walLocal.reason}), so the bucket keeps its WAL too`
    : wal.length < walAll.delete.length ? `${walLocal.reason} in BACKUP_DIR, which the bucket keeps too (by its own base backups alone, from ${walAll.keepFrom ?? "its start"})`
    : walAll.reason;
  return { bases, wal, walReason };
}

/** The lines cleanup prints for the bucket. Pure. */
export function formatBucketPrune(p: PrunePlan, dryRun: boolean): string {
  const verb = dryRun ? "would delete" : "deleted";
  return [`S3 mirror (physical tier, cleanup's plan): ${verb} ${p.bases.length} base backup(s), ${p.wal.length} WAL file(s); ${p.walReason}`, ...p.bases.map((b) => `  ${verb} ${b.name}: ${b.reason}`)].join("\n") + "\n";
}

