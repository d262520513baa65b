// The retention planner: which backups cleanup keeps and which it deletes. It is pure
// (no clock, no filesystem) so the rules are table-tested and `cleanup --dry-run`
// prints exactly the plan a real run would execute.
//
// Rules, applied in this order (the first rule that keeps a backup gives its reason):
//  1. Age. age = now - time in exact UTC milliseconds, so a DST change shifts nothing.
//     "Within N days" means age <= N * 24h: a backup exactly 14.0 days old is within 14
//     days, one 14 days and 1 second old is not.
//     - time in the future (clock skew): kept; nothing about it can be judged yet.
//     - age <= keepAllDays: everything kept, invalid ones too (the operator must look at
//       a fresh failure, and deleting young data automatically is never right).
//     - age <= keepDifferentialDays: fulls and differentials kept, incrementals deleted.
//     - older: fulls only, and only while age <= keepFullDays (default Infinity: fulls
//       are kept indefinitely, one per week). keepFullDays never shortens the
//       differential window: a full younger than keepDifferentialDays is always kept.
//     - invalid backups (bad checksum or manifest) older than keepAllDays are deleted.
//  2. Minimum fulls: the newest `minFull` valid fulls are kept whatever their age.
//     Invalid fulls never count; nor do future-dated ones, whose time cannot be trusted
//     (they are kept by rule 1 anyway, so the minimum still protects two real fulls).
//  3. Dependencies: every kept backup keeps its whole parent chain, transitively, valid
//     or not (an invalid kept backup keeps its chain too, so the operator can still
//     inspect or repair it). This is what makes invariant 4 hold: the planner never
//     creates an orphan.
// A backup whose parent is not in the input is an orphan and cannot be restored; it is
// decided by the rules above like any other and its reason says so.
import type { Tier } from "../store/naming.js";

export interface RetentionPolicy {
  keepAllDays: number;
  keepDifferentialDays: number;
  minFull: number;
  /** Fulls older than this many days are deleted unless rule 2 or 3 keeps them; omitted = Infinity = kept forever. */
  keepFullDays?: number;
}

export interface RetentionInput {
  name: string;
  tier: Tier;
  /** The UTC start time from the manifest (or the name's stamp); never a file mtime. */
  time: Date;
  parent: string | null;
  valid: boolean;
  /** Why an invalid backup is invalid (CatalogEntry.problem); quoted in its reason. */
  problem?: string | null;
}

export type RetentionAction = "keep" | "delete";

export interface RetentionDecision {
  name: string;
  tier: Tier;
  time: Date;
  action: RetentionAction;
  reason: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;

interface Draft {
  input: RetentionInput;
  ageMs: number;
  keep: boolean;
  reason: string;
}

function checkPolicy(policy: RetentionPolicy): void {
  const days: [string, number][] = [
    ["keepAllDays", policy.keepAllDays],
    ["keepDifferentialDays", policy.keepDifferentialDays],
    ["keepFullDays", policy.keepFullDays ?? Infinity],
  ];
  // A NaN window would compare false everywhere and delete nearly everything, so refuse it.
  for (const [key, value] of days) {
    if (Number.isNaN(value) || value < 0) {
      throw new RangeError(`retention policy ${key}=${value} must be a number of days >= 0`);
    }
  }
  if (!Number.isInteger(policy.minFull) || policy.minFull < 0) {
    throw new RangeError(`retention policy minFull=${policy.minFull} must be an integer >= 0`);
  }
}

function byTimeThenName(a: RetentionInput, b: RetentionInput): number {
  const dt = a.time.getTime() - b.time.getTime();
  if (dt !== 0) return dt;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function invalidText(b: RetentionInput): string {
  return b.problem ? `invalid: ${b.problem}` : "invalid (bad checksum or manifest)";
}

function ageRule(b: RetentionInput, ageMs: number, policy: RetentionPolicy): { keep: boolean; reason: string } {
  const within = (days: number): boolean => ageMs <= days * DAY_MS;
  const { keepAllDays, keepDifferentialDays } = policy;
  const keepFullDays = policy.keepFullDays ?? Infinity;
  if (ageMs < 0) return { keep: true, reason: "time is in the future (clock skew?); kept until it is not" };
  if (!b.valid) {
    return within(keepAllDays)
      ? { keep: true, reason: `${invalidText(b)}; kept for inspection: within ${keepAllDays} days` }
      : { keep: false, reason: `${invalidText(b)}; older than ${keepAllDays} days` };
  }
  if (within(keepAllDays)) return { keep: true, reason: `within ${keepAllDays} days` };
  if (b.tier === "incremental") return { keep: false, reason: `incremental older than ${keepAllDays} days` };
  if (within(keepDifferentialDays)) return { keep: true, reason: `${b.tier} within ${keepDifferentialDays} days` };
  if (b.tier === "differential") return { keep: false, reason: `differential older than ${keepDifferentialDays} days` };
  if (keepFullDays === Infinity) return { keep: true, reason: "full: fulls are kept indefinitely" };
  return within(keepFullDays)
    ? { keep: true, reason: `full within ${keepFullDays} days` }
    : { keep: false, reason: `full older than ${keepFullDays} days` };
}

function keepNewestFulls(drafts: readonly Draft[], minFull: number): void {
  const counted = drafts.filter((d) => d.input.tier === "full" && d.input.valid && d.ageMs >= 0).reverse();
  for (const d of counted.slice(0, minFull)) {
    if (d.keep) continue;
    d.keep = true;
    d.reason = `one of the newest ${minFull} valid fulls`;
  }
}

function keepChains(drafts: readonly Draft[], byName: ReadonlyMap<string, Draft>): void {
  // Newest first, so an ancestor's reason names the newest backup that needs it. A name
  // is walked at most once: its chain was covered when it was first reached, which
  // keeps this linear and makes a parent cycle (corrupt manifests) terminate.
  const walked = new Set<string>();
  for (const root of [...drafts].reverse()) {
    if (!root.keep || walked.has(root.input.name)) continue;
    walked.add(root.input.name);
    let parent = root.input.parent;
    while (parent !== null && !walked.has(parent)) {
      const ancestor = byName.get(parent);
      if (ancestor === undefined) break;
      walked.add(parent);
      if (!ancestor.keep) {
        ancestor.keep = true;
        ancestor.reason = ancestor.input.valid
          ? `needed by ${root.input.name}`
          : `needed by ${root.input.name}, although ${invalidText(ancestor.input)}`;
      }
      parent = ancestor.input.parent;
    }
  }
}

export function planRetention(
  backups: readonly RetentionInput[],
  policy: RetentionPolicy,
  now: Date,
): RetentionDecision[] {
  checkPolicy(policy);
  if (Number.isNaN(now.getTime())) throw new RangeError("retention planning needs a valid current time");
  for (const b of backups) {
    if (Number.isNaN(b.time.getTime())) throw new RangeError(`backup ${b.name} has no valid start time`);
  }
  const drafts: Draft[] = [...backups].sort(byTimeThenName).map((input) => {
    const ageMs = now.getTime() - input.time.getTime();
    return { input, ageMs, ...ageRule(input, ageMs, policy) };
  });
  const byName = new Map(drafts.map((d) => [d.input.name, d]));
  keepNewestFulls(drafts, policy.minFull);
  keepChains(drafts, byName);
  return drafts.map(({ input, keep, reason }) => {
    const orphan = input.parent !== null && !byName.has(input.parent);
    return {
      name: input.name,
      tier: input.tier,
      time: new Date(input.time.getTime()),
      action: keep ? "keep" : "delete",
      reason: orphan ? `${reason}; orphan: parent ${input.parent} missing` : reason,
    };
  });
}
