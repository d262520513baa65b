// The pure parts of `cleanup` around the retention planner: reading --now, deciding
// whether BACKUP_DIR looks sane enough to delete from, spotting leftover files, and
// planning the latest_<tier> pointers, and the report. tasks/cleanup.ts does the filesystem work.
import { ExitCode, TaskError } from "../core/errors.js";
import { humanBytes, localTime, table } from "../core/format.js";
import type { Codec } from "../core/codec.js";
import type { Tier } from "../store/naming.js";
import { PARTIAL_SUFFIX, SIDECAR_SUFFIXES, parseBackupName } from "../store/naming.js";
import type { RetentionAction } from "./plan.js";

export const DAY_MS = 24 * 60 * 60 * 1000;

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})$/i;

/**
 * Reads `--now`: a date (midnight UTC) or a date-time with Z or an offset. A time without
 * a zone is refused rather than guessed: read in the wrong zone it shifts every age by
 * hours, which is exactly the size of the boundary cases retention cares about.
 * Returns null when the option is absent.
 */
export function parseNowOption(raw: string | undefined): Date | null {
  if (raw === undefined) return null;
  const bad = (why: string) =>
    new TaskError(ExitCode.usage, `--now ${JSON.stringify(raw)} ${why}; use e.g. 2027-01-01 (midnight UTC) or 2027-01-01T03:00:00+01:00 (a time needs Z or an offset)`);
  const text = raw.trim();
  const m = DATE_RE.exec(text) ?? DATE_TIME_RE.exec(text);
  if (m === null) throw bad("is not an ISO date or date-time with a time zone");
  const [year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0] = m.slice(1, 7).map((v) => (v === undefined ? 0 : Number(v)));
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || minute > 59 || second > 59) {
    throw bad("is not a real calendar time");
  }
  const time = new Date(text.length === 10 ? `${text}T00:00:00Z` : text);
  if (Number.isNaN(time.getTime())) throw bad("cannot be read as a time");
  return time;
}

export interface SanityInput {
  tier: Tier;
}

/**
 * Why BACKUP_DIR does not look like a backup folder cleanup may delete from, or null.
 * Differentials or incrementals without any full mean fulls were removed by hand or the
 * mount points somewhere else; sidecars without a single data file mean the data files
 * went missing. In both cases deleting more would destroy the evidence.
 */
export function backupDirProblem(backups: readonly SanityInput[], orphanSidecars: number): string | null {
  const fulls = backups.filter((b) => b.tier === "full").length;
  const others = backups.length - fulls;
  if (fulls === 0 && others > 0) {
    return `it holds ${others} differential/incremental backup(s) but no full backup at all, so none of them can be restored (were fulls deleted or moved by hand, or does BACKUP_DIR point at the wrong folder?)`;
  }
  if (backups.length === 0 && orphanSidecars > 0) {
    return `it holds ${orphanSidecars} .json/.sha256 sidecar file(s) but no backup data file at all (were the data files moved or lost?)`;
  }
  return null;
}

export interface Sidecar {
  /** The sidecar's file name. */
  name: string;
  /** The data file it belongs to. */
  dataName: string;
  /** The UTC stamp in the data file's name. */
  time: Date;
}

/**
 * Sidecars in one tier folder listing whose data file is absent. A sidecar whose data
 * file still exists as a .partial is not an orphan: the backup writes its sidecars before
 * it renames the partial into place (that partial is handled by its own age).
 */
export function orphanSidecars(names: readonly string[]): Sidecar[] {
  const present = new Set(names);
  const out: Sidecar[] = [];
  for (const name of names) {
    const suffix = SIDECAR_SUFFIXES.find((s) => name.endsWith(s));
    if (suffix === undefined) continue;
    const dataName = name.slice(0, -suffix.length);
    const parsed = parseBackupName(dataName);
    // Partials are named <data>.<random>.partial.
    if (parsed === null || present.has(dataName) || names.some((n) => n.startsWith(`${dataName}.`) && n.endsWith(PARTIAL_SUFFIX))) continue;
    out.push({ name, dataName, time: parsed.time });
  }
  return out;
}

export function isPartialName(name: string): boolean {
  return name.endsWith(PARTIAL_SUFFIX);
}

export interface PointerInput {
  name: string;
  tier: Tier;
  time: Date;
  valid: boolean;
}

export interface PointerState {
  tier: Tier;
  codec: Codec;
  /** latest_<tier>.sql.<ext>.age: the pointer of the encrypted backups. */
  encrypted: boolean;
  /** The backup the pointer names now, or null when there is no pointer. */
  current: string | null;
}

export interface PointerChange {
  tier: Tier;
  codec: Codec;
  encrypted: boolean;
  from: string | null;
  /** The newest remaining valid backup of this tier and codec, or null: remove the pointer. */
  to: string | null;
}

/**
 * Where each latest_<tier> pointer must point after cleanup: the newest remaining valid
 * backup of its tier and codec (a latest_full.sql.bz2 naming a .zst file would mislead
 * `bunzip2 -c latest_full.sql.bz2 | psql`), or nowhere. Only differences are returned.
 */
export function planPointers(remaining: readonly PointerInput[], current: readonly PointerState[]): PointerChange[] {
  const newest = new Map<string, PointerInput>();
  for (const b of remaining) {
    const parsed = parseBackupName(b.name);
    if (!b.valid || parsed === null) continue;
    const key = `${b.tier}/${parsed.codec}/${parsed.encrypted}`;
    const seen = newest.get(key);
    if (seen === undefined || b.time.getTime() > seen.time.getTime() || (b.time.getTime() === seen.time.getTime() && b.name > seen.name)) {
      newest.set(key, b);
    }
  }
  const changes: PointerChange[] = [];
  for (const { tier, codec, encrypted, current: from } of current) {
    const to = newest.get(`${tier}/${codec}/${encrypted}`)?.name ?? null;
    if (from !== to) changes.push({ tier, codec, encrypted, from, to });
  }
  return changes;
}

export type Location = "local" | "s3";

/**
 * The backups cleanup plans over: every local one, plus those only the S3 mirror holds
 * (deleted locally by a run whose S3 deletion failed), oldest first. A name in both is
 * local whatever its state: its files are what cleanup deletes and what the refusal checks read.
 */
export function withMirrorOnly<T extends { name: string; time: Date }>(local: readonly T[], remote: readonly T[]): { entry: T; location: Location }[] {
  const names = new Set(local.map((e) => e.name));
  const all = [...local.map((entry) => ({ entry, location: "local" as const })), ...remote.filter((e) => !names.has(e.name)).map((entry) => ({ entry, location: "s3" as const }))];
  return all.sort((a, b) => a.entry.time.getTime() - b.entry.time.getTime() || a.entry.name.localeCompare(b.entry.name));
}

export interface CleanupDecision {
  name: string;
  tier: Tier;
  time: string;
  action: RetentionAction;
  reason: string;
  /** Data file plus sidecars: what deleting it frees; for an S3-only backup its data object's size in S3. */
  bytes: number;
  /** "s3": only the S3 mirror holds it, so deleting it frees nothing locally. Absent: in BACKUP_DIR. */
  location?: "s3";
}

export interface CleanupReport {
  now: string;
  dryRun: boolean;
  /** keepFullDays null = fulls are kept forever. */
  policy: { keepAllDays: number; keepDifferentialDays: number; minFull: number; keepFullDays: number | null };
  decisions: CleanupDecision[];
  /** Bytes removed from BACKUP_DIR (with --dry-run: bytes a real run would remove). */
  freedBytes: number;
  /** Stale leftovers, as <tier>/<file>. */
  removedPartials: string[];
  removedOrphans: string[];
  pointers: PointerChange[];
}

export function formatCleanupReport(report: CleanupReport, tz: string, refused: string | null): string {
  const { policy } = report;
  const fulls = policy.keepFullDays === null ? "fulls forever" : `fulls ${policy.keepFullDays} d`;
  const lines = [
    `retention as of ${localTime(new Date(report.now), tz)}: everything ${policy.keepAllDays} d, differentials ${policy.keepDifferentialDays} d, ${fulls}, newest ${policy.minFull} fulls always`,
  ];
  if (refused !== null) lines.push(`REFUSED, a real run would delete nothing: ${refused}`);
  if (report.decisions.length === 0) lines.push("no backups");
  let text = lines.join("\n") + "\n";
  if (report.decisions.length > 0) {
    // The WHERE column appears only when the mirror holds backups BACKUP_DIR lacks.
    const where = report.decisions.some((d) => d.location === "s3");
    const rows = [["ACTION", ...(where ? ["WHERE"] : []), "TIER", `TIME (${tz})`, "SIZE", "NAME", "REASON"]];
    for (const d of report.decisions) {
      rows.push([d.action, ...(where ? [d.location === "s3" ? "S3 only" : "local"] : []), d.tier, localTime(new Date(d.time), tz), humanBytes(d.bytes), d.name, d.reason]);
    }
    text += table(rows);
  }
  const verb = report.dryRun ? "would remove" : "removed";
  const extra = [
    ...report.removedPartials.map((f) => `${verb} stale partial ${f}`),
    ...report.removedOrphans.map((f) => `${verb} orphaned sidecar ${f}`),
    ...report.pointers.map((p) => `latest ${p.tier} pointer (${p.codec}${p.encrypted ? ", encrypted" : ""}): ${p.from ?? "none"} -> ${p.to ?? "removed"}`),
  ];
  const deleted = report.decisions.filter((d) => d.action === "delete").length;
  const inS3 = report.decisions.filter((d) => d.action === "delete" && d.location === "s3").length;
  const summary = `keep ${report.decisions.length - deleted}, delete ${deleted}${inS3 > 0 ? ` (${inS3} only in S3)` : ""}, ${humanBytes(report.freedBytes)} ${report.dryRun ? "would be freed (dry run: nothing changed)" : "freed"}`;
  return text + [...extra, summary].join("\n") + "\n";
}
