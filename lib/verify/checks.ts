// verify's decisions, kept pure so they are table-tested: given the catalog, the clock and
// what was read back from the files, which checks pass. tasks/verify.ts does the reading.
// Per-file families (manifest, checksum, chain) report one failing check per bad file, or
// one passing check for the whole family, so a healthy report stays short.
import type { CatalogEntry } from "../store/catalog.js";
import type { SectionsResult } from "../sql/splitter.js";
import { printedName } from "../sql/sections.js";

export type Figures = Record<string, string | number | boolean | null>;

/** A check's outcome before its duration is known. */
export interface Finding {
  name: string;
  ok: boolean;
  file?: string;
  message: string;
  figures: Figures;
}

export interface Check extends Finding {
  durationMs: number;
}

/** An hourly incremental is due every hour; 26 h tolerates one missed day boundary plus a slow run. */
export const DEFAULT_MAX_AGE_HOURS = 26;
/** Fulls run weekly: 8 days allows one late run. */
export const FULL_MAX_AGE_HOURS = 192;
const HOUR_MS = 3_600_000;

export const pass = (name: string, message: string, figures: Figures = {}, file?: string): Finding => ({ name, ok: true, message, figures, ...(file === undefined ? {} : { file }) });
export const fail = (name: string, message: string, figures: Figures = {}, file?: string): Finding => ({ name, ok: false, message, figures, ...(file === undefined ? {} : { file }) });

const isUsable = (e: CatalogEntry): boolean => e.problem === null && e.manifest !== null;
const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** What is wrong with a backup's manifest beyond what the catalog already checked, or null. */
export function entryProblem(e: CatalogEntry): string | null {
  if (e.problem !== null) return e.problem;
  const m = e.manifest;
  if (m === null) return "no manifest";
  if (m.tier !== e.tier) return `the manifest says tier ${m.tier} but the file is in ${e.tier}/`;
  if (m.compressedBytes !== e.bytes) {
    return `the file is ${e.bytes} bytes but its manifest records ${m.compressedBytes}: it was truncated or replaced after the backup`;
  }
  const outside = m.included.filter((db) => !m.databases.includes(db));
  if (outside.length > 0) return `the manifest includes ${JSON.stringify(outside)}, which are missing from its database list`;
  if (!isRecord(m.rowCounts)) return "the manifest has no rowCounts";
  const stray = Object.keys(m.rowCounts).filter((db) => !m.included.includes(db));
  if (stray.length > 0) return `the manifest has row counts for ${JSON.stringify(stray)}, which the file does not include`;
  if (m.tier === "full" && m.parent !== null) return `a full backup must not record a parent (it records ${m.parent})`;
  return null;
}

/** A family of per-file results: one failing check per bad file, else one passing check. */
export function family(name: string, results: readonly { file: string; problem: string | null }[], passMessage: string, figures: Figures = {}): Finding[] {
  const bad = results.filter((r) => r.problem !== null);
  if (bad.length === 0) return [pass(name, passMessage, { files: results.length, ...figures })];
  return bad.map((r) => fail(name, r.problem as string, {}, r.file));
}

/**
 * The signatures of the newest chain's files (only with BACKUP_VERIFY_KEY_FILE): the chain a
 * restore would use must be ours, not merely intact.
 */
export function signatureFindings(results: readonly { file: string; problem: string | null }[]): Finding[] {
  return family("signature", results, `the ${results.length} file(s) of the newest chain are signed with the key BACKUP_VERIFY_KEY_FILE checks`);
}

export function manifestFindings(entries: readonly CatalogEntry[]): Finding[] {
  return family("manifest", entries.map((e) => ({ file: e.name, problem: entryProblem(e) })), `${entries.length} manifests are well-formed and match their files`);
}

/** Why a differential or incremental cannot reach a full through its parent links, or null. */
export function chainGap(e: CatalogEntry, byName: ReadonlyMap<string, CatalogEntry>): string | null {
  for (let cur = e; cur.tier !== "full"; ) {
    if (cur.parent === null) return `${cur.name} records no parent backup`;
    const parent = byName.get(cur.parent);
    if (parent === undefined) return `parent ${cur.parent} of ${cur.name} is missing`;
    if (!isUsable(parent)) return `parent ${parent.name} of ${cur.name} is unusable (${parent.problem ?? "no manifest"})`;
    // Strictly older parents also rule out loops in hand-edited manifests.
    if (parent.time >= cur.time) return `parent ${parent.name} of ${cur.name} is not older than it`;
    cur = parent;
  }
  return null;
}

export function chainFindings(entries: readonly CatalogEntry[]): Finding[] {
  const byName = new Map(entries.map((e) => [e.name, e]));
  const dependent = entries.filter((e) => e.tier !== "full" && isUsable(e));
  const results = dependent.map((e) => {
    const gap = chainGap(e, byName);
    return { file: e.name, problem: gap === null ? null : `${e.name} cannot be restored: ${gap}; restore an older chain, or run \`backup full\` to start a new one` };
  });
  return family("chain", results, `${dependent.length} differential/incremental backups reach a full through their parents`);
}

const hours = (ms: number): number => Math.round((ms / HOUR_MS) * 10) / 10;

/**
 * The newest backup of any tier must be younger than maxAgeHours (default 26 h), the newest
 * full younger than 8 days — or than maxAgeHours when that is longer, so a relaxed
 * --max-age never leaves the full check stricter than the one asked for.
 */
export function ageFindings(entries: readonly CatalogEntry[], now: Date, maxAgeHours?: number): Finding[] {
  const good = entries.filter(isUsable).sort((a, b) => a.time.getTime() - b.time.getTime());
  const limit = maxAgeHours ?? DEFAULT_MAX_AGE_HOURS;
  const fullLimit = Math.max(FULL_MAX_AGE_HOURS, limit);
  const one = (name: string, e: CatalogEntry | undefined, max: number, what: string, fix: string): Finding => {
    if (e === undefined) return fail(name, `no usable ${what} in BACKUP_DIR; ${fix}`, { maxAgeHours: max });
    const age = now.getTime() - e.time.getTime();
    const figures = { ageHours: hours(age), maxAgeHours: max, time: e.time.toISOString() };
    return age < max * HOUR_MS
      ? pass(name, `newest ${what} is ${hours(age)} h old (limit ${max} h)`, figures, e.name)
      : fail(name, `newest ${what} is ${hours(age)} h old, older than the ${max} h limit: backups have stopped; ${fix}`, figures, e.name);
  };
  return [
    one("newest-age", good.at(-1), limit, "backup", "check the backup services (swarm-cronjob, `make logs`) and the backup log"),
    one("full-age", good.filter((e) => e.tier === "full").at(-1), fullLimit, "full backup", "check the backup-full service, or run `backup full`"),
  ];
}

/** What one file of the newest chain gave when streamed through its decompressor. */
export interface StreamScan {
  /** Why the stream could not be read to its end (decompressor failure), or null. */
  error: string | null;
  /** The error was the stored bytes not matching their checksums (a checksum failure, not a decompression one). */
  integrity: boolean;
  rawBytes: number;
  sections: SectionsResult | null;
  /** Rows per table counted from the stream, per section as printed in its header. */
  rowCounts: ReadonlyMap<string, Record<string, number>>;
}

export interface RowDiff {
  table: string;
  expected: number | null;
  actual: number | null;
}

/** Tables whose counts differ; null means the table is absent on that side. */
export function rowCountDiffs(expected: Readonly<Record<string, number>>, actual: Readonly<Record<string, number | null>>): RowDiff[] {
  const tables = [...new Set([...Object.keys(expected), ...Object.keys(actual)])].sort();
  const get = (r: Readonly<Record<string, number | null>>, t: string): number | null => (Object.hasOwn(r, t) ? (r[t] ?? null) : null);
  return tables.map((table) => ({ table, expected: get(expected, table), actual: get(actual, table) })).filter((d) => d.expected !== d.actual);
}

/** Up to `max` diffs as text, e.g. `"app" public.items: 10 rows restored, manifest says 11`. */
export function describeDiffs(db: string, diffs: readonly RowDiff[], what: string, max = 5): string {
  const shown = diffs.slice(0, max).map((d) => {
    const actual = d.actual === null ? `absent from the ${what}` : `${d.actual} rows in the ${what}`;
    const expected = d.expected === null ? "not in the manifest" : `manifest says ${d.expected}`;
    return `${JSON.stringify(db)} ${d.table}: ${actual}, ${expected}`;
  });
  return shown.join("; ") + (diffs.length > max ? `; and ${diffs.length - max} more` : "");
}

const sumRows = (counts: Readonly<Record<string, number>>): number => Object.values(counts).reduce((a, b) => a + b, 0);

/** decompress, sections and stream-row-counts for one file of the newest chain. */
export function streamFindings(e: CatalogEntry, scan: StreamScan): Finding[] {
  const m = e.manifest;
  if (m === null) return [fail("decompress", "no manifest to compare the stream with", {}, e.name)];
  const figures = { rawBytes: scan.rawBytes, compressedBytes: e.bytes };
  const s = scan.sections;
  if (scan.integrity) return [fail("checksum", scan.error ?? "checksum mismatch", figures, e.name)];
  if (scan.error !== null || s === null) {
    return [fail("decompress", `decompression failed after ${scan.rawBytes} bytes: ${scan.error ?? "no output"}; the file is corrupt or truncated`, figures, e.name)];
  }
  const cut = s.sections.filter((x) => !x.complete).map((x) => x.name);
  let problem: string | null = null;
  if (!s.clusterTrailer) problem = `the SQL stream ends without pg_dumpall's "cluster dump complete" trailer after ${scan.rawBytes} bytes: the file is truncated`;
  else if (cut.length > 0) problem = `database section(s) ${JSON.stringify(cut)} end without pg_dump's "dump complete" trailer: the file is truncated`;
  else if (scan.rawBytes !== m.rawBytes) problem = `the file decompresses to ${scan.rawBytes} bytes but its manifest records ${m.rawBytes}`;
  if (problem !== null) return [fail("decompress", problem, figures, e.name)];
  const findings = [pass("decompress", `decompressed to the end; trailer present`, { ...figures, sections: s.sections.length }, e.name)];

  const expected = m.included.map(printedName).sort();
  const found = [...s.databases].sort();
  const missing = expected.filter((d) => !found.includes(d));
  const extra = found.filter((d) => !expected.includes(d));
  findings.push(
    missing.length === 0 && extra.length === 0 && found.length === expected.length
      ? pass("sections", `holds the ${found.length} database sections its manifest lists`, { sections: found.length }, e.name)
      : fail("sections", `sections differ from the manifest: missing ${JSON.stringify(missing)}, unexpected ${JSON.stringify(extra)}, found ${found.length} of ${expected.length}`, { sections: found.length, expected: expected.length }, e.name),
  );

  const bad: string[] = [];
  let tables = 0;
  let rows = 0;
  for (const db of m.included) {
    const want = m.rowCounts[db] ?? {};
    const got = scan.rowCounts.get(printedName(db)) ?? {};
    tables += Object.keys(got).length;
    rows += sumRows(got);
    const diffs = rowCountDiffs(want, got);
    if (diffs.length > 0) bad.push(describeDiffs(db, diffs, "stream"));
  }
  findings.push(
    bad.length === 0
      ? pass("stream-row-counts", `row counts of ${tables} tables match the manifest`, { tables, rows }, e.name)
      : fail("stream-row-counts", `row counts in the file differ from its manifest: ${bad.join("; ")}`, { tables, rows }, e.name),
  );
  return findings;
}

export interface RestoredCount {
  database: string;
  /** The backup whose section of this database was restored (its manifest has the expected counts). */
  provider: string;
  diffs: RowDiff[];
  tables: number;
  rows: number;
}

export function restoredRowFindings(results: readonly RestoredCount[]): Finding[] {
  const bad = results.filter((r) => r.diffs.length > 0);
  const tables = results.reduce((a, r) => a + r.tables, 0);
  const rows = results.reduce((a, r) => a + r.rows, 0);
  if (bad.length === 0) {
    return [pass("restore-row-counts", `row counts of ${tables} tables in ${results.length} restored databases match the manifests`, { databases: results.length, tables, rows })];
  }
  return bad.map((r) => fail("restore-row-counts", `restored rows differ from the manifest: ${describeDiffs(r.database, r.diffs, "restored table")}`, { database: r.database, mismatches: r.diffs.length }, r.provider));
}

/**
 * "schema.table" as pg_dump prints it in a COPY line (quote_ident rules: lower-case plain
 * names bare, everything else in double quotes with "" for a quote) split into its two
 * identifiers, so a query can re-quote them instead of pasting text into SQL.
 */
export function parseQualifiedName(printed: string): [string, string] | null {
  const parts: string[] = [];
  let i = 0;
  while (i <= printed.length) {
    let ident: string;
    if (printed[i] === '"') {
      let j = i + 1;
      ident = "";
      for (;;) {
        const q = printed.indexOf('"', j);
        if (q < 0) return null;
        ident += printed.slice(j, q);
        if (printed[q + 1] !== '"') {
          i = q + 1;
          break;
        }
        ident += '"';
        j = q + 2;
      }
    } else {
      const m = /^[^".\s]+/.exec(printed.slice(i));
      if (m === null) return null;
      ident = m[0];
      i += ident.length;
    }
    parts.push(ident);
    if (i === printed.length) break;
    if (printed[i] !== ".") return null;
    i++;
  }
  return parts.length === 2 ? [parts[0] as string, parts[1] as string] : null;
}

/** Whether every check of each name passed: the per-name view for metrics and status. */
export function resultsByName(checks: readonly Finding[]): Record<string, boolean> {
  const out: Record<string, boolean> = {};
  for (const c of checks) out[c.name] = (out[c.name] ?? true) && c.ok;
  return out;
}
