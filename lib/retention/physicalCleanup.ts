// The physical tier's part of `cleanup`: plan base/ and wal/ with physicalPlan.ts, refuse
// while the newest base backup is bad (the older ones may be the only good copies), then
// delete newest base backup first (its manifest first, so a half-deleted one is never
// trusted), then the WAL no kept base backup needs, then stale base partials and orphaned sidecars.
import { lstat, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config/config.js";
import { ExitCode, errnoCode } from "../core/errors.js";
import { humanBytes, localTime, table } from "../core/format.js";
import type { Logger } from "../core/log.js";
import { symlinkRefusal } from "../core/noFollow.js";
import { DAY_MS, isPartialName } from "./cleanup.js";
import { verifyBackupFile } from "../store/signature.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX, SIDECAR_SUFFIXES, SIGNATURE_SUFFIX } from "../store/naming.js";
import { storageError } from "../store/storage.js";
import { listBaseDir, scanBaseCatalog } from "../base/catalog.js";
import type { BaseEntry } from "../base/catalog.js";
import type { WalFile } from "../physical/layout.js";
import { WAL_SIGNATURE_SUFFIX, baseDir, parseBaseName, parseWalName, signedWalName, walDir } from "../physical/layout.js";
import type { BaseDecision, WalPlan } from "./physicalPlan.js";
import { planBaseRetention, planWalRetention } from "./physicalPlan.js";

export interface PhysicalCleanupReport {
  bases: (Omit<BaseDecision, "time"> & { time: string; bytes: number })[];
  wal: WalPlan & { bytes: number };
  /** Stale base/*.partial files, orphaned base sidecars and WAL signatures (all older than a day), relative to BACKUP_DIR. */
  removedPartials: string[];
  /** Why nothing of the physical tier may be deleted, or null. */
  refused: string | null;
  freedBytes: number;
}

export interface PhysicalCleanupPlan {
  report: PhysicalCleanupReport;
  paths: { bases: string[]; wal: string[]; partials: string[] };
}

async function sizeOf(path: string): Promise<number> {
  return lstat(path).then((s) => s.size, () => 0);
}

/**
 * The WAL files in wal/ (regular files with a WAL name only) and the names of its regular
 * files (for the signatures beside them); none when it is missing. Exit 4 when wal/ is a symlink.
 */
async function walFiles(backupDir: string): Promise<{ files: WalFile[]; names: Set<string> }> {
  const dir = walDir(backupDir);
  const info = await lstat(dir).catch((err: unknown) => {
    if (errnoCode(err) === "ENOENT") return null;
    throw err;
  });
  if (info === null) return { files: [], names: new Set() };
  if (info.isSymbolicLink()) throw symlinkRefusal(ExitCode.refused, `BACKUP_DIR=${backupDir}: WAL folder`, dir);
  const names = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name);
  return { files: names.flatMap((n) => parseWalName(n) ?? []), names: new Set(names) };
}

/** WAL signatures whose file is gone (deleted by hand, or a cleanup stopped between the two). Pure. */
export function orphanWalSignatures(names: ReadonlySet<string>): string[] {
  return [...names].filter((n) => signedWalName(n) !== null && !names.has(n.slice(0, -WAL_SIGNATURE_SUFFIX.length))).sort();
}

/**
 * Sidecars in base/ whose tar is gone, named for a backup that started more than a day ago (the
 * stamp, not the mtime: a base backup writes its sidecars just before the rename). One whose tar
 * still exists as a .partial is a backup being committed, not an orphan.
 */
export function orphanBaseSidecars(names: readonly string[], clock: Date): string[] {
  const present = new Set(names);
  return names.filter((name) => {
    const suffix = SIDECAR_SUFFIXES.find((s) => name.endsWith(s));
    const dataName = suffix === undefined ? "" : name.slice(0, -suffix.length);
    const parsed = parseBaseName(dataName);
    if (parsed === null || present.has(dataName) || names.some((n) => n.startsWith(`${dataName}.`) && isPartialName(n))) return false;
    return clock.getTime() - parsed.time.getTime() > DAY_MS;
  });
}

async function refusal(config: Config, catalog: readonly BaseEntry[]): Promise<string | null> {
  const newest = catalog.at(-1);
  if (newest === undefined) return null;
  const problem = newest.problem ?? (await verifyBackupFile(newest.path, newest.manifest?.sha256, config.signing.verifyKey).then((v) => (v.ok ? null : v.problem)));
  if (problem === null) return null;
  return (
    `the newest base backup ${newest.name} failed verification (${problem}); while it is bad the older ones and their WAL may be the only good copies. ` +
    "Take a new one with `pg-swarm-backup backup base`"
  );
}

/** The plan as of `now`; stale partials are judged by the clock (they are about crashed runs). Null when there is no physical tier. */
export async function planPhysicalCleanup(config: Config, now: Date, clock: Date): Promise<PhysicalCleanupPlan | null> {
  const catalog = await scanBaseCatalog(config.backupDir);
  const { files, names } = await walFiles(config.backupDir);
  const listing = await listBaseDir(config.backupDir);
  if (catalog.length === 0 && files.length === 0 && listing.length === 0) return null;
  const decisions = planBaseRetention(catalog, config.retention, now);
  const keep = new Set(decisions.filter((d) => d.action === "keep").map((d) => d.name));
  const kept = catalog.filter((e) => keep.has(e.name) && e.problem === null && e.manifest !== null);
  const wal = planWalRetention(
    files,
    kept.flatMap((e) => (e.manifest === null ? [] : [{ name: e.name, timeline: e.manifest.timeline, startLsn: e.manifest.startLsn, walSegmentSize: e.manifest.walSegmentSize }])),
  );
  const byName = new Map(catalog.map((e) => [e.name, e]));
  const bases: PhysicalCleanupReport["bases"] = [];
  for (const d of decisions) {
    const path = byName.get(d.name)?.path ?? "";
    let bytes = 0;
    for (const suffix of ["", MANIFEST_SUFFIX, CHECKSUM_SUFFIX, SIGNATURE_SUFFIX]) bytes += await sizeOf(path + suffix);
    bases.push({ name: d.name, time: d.time.toISOString(), action: d.action, reason: d.reason, bytes });
  }
  // A WAL file's signature goes with it.
  const walPaths = wal.delete.flatMap((d) => [d.name, ...(names.has(d.name + WAL_SIGNATURE_SUFFIX) ? [d.name + WAL_SIGNATURE_SUFFIX] : [])]).map((n) => join(walDir(config.backupDir), n));
  let walBytes = 0;
  for (const p of walPaths) walBytes += await sizeOf(p);
  const partials: string[] = [];
  for (const d of listing.filter((x) => x.isFile() && isPartialName(x.name))) {
    const path = join(baseDir(config.backupDir), d.name);
    const info = await lstat(path).catch(() => null);
    if (info !== null && clock.getTime() - info.mtimeMs > DAY_MS) partials.push(path);
  }
  for (const name of orphanBaseSidecars(listing.map((d) => d.name), clock)) partials.push(join(baseDir(config.backupDir), name));
  for (const name of orphanWalSignatures(names)) {
    const path = join(walDir(config.backupDir), name);
    const info = await lstat(path).catch(() => null);
    if (info !== null && clock.getTime() - info.mtimeMs > DAY_MS) partials.push(path);
  }
  const report: PhysicalCleanupReport = {
    bases,
    wal: { ...wal, bytes: walBytes },
    removedPartials: partials.map((p) => p.slice(config.backupDir.length).replace(/^\/+/, "")),
    refused: await refusal(config, catalog),
    freedBytes: 0,
  };
  const doomed = bases.filter((b) => b.action === "delete").map((b) => byName.get(b.name)?.path ?? "");
  return { report, paths: { bases: doomed.reverse(), wal: walPaths, partials } };
}

async function remove(config: Config, path: string): Promise<number> {
  const bytes = await sizeOf(path);
  await rm(path, { force: true }).catch((err: unknown) => {
    throw storageError(config.backupDir, path, err);
  });
  return bytes;
}

/** Carries out a plan that was not refused; the caller checks `report.refused` first. */
export async function executePhysicalCleanup(config: Config, plan: PhysicalCleanupPlan, log: Logger): Promise<void> {
  const { report, paths } = plan;
  for (const path of paths.bases) {
    let freed = 0;
    for (const suffix of [MANIFEST_SUFFIX, "", CHECKSUM_SUFFIX, SIGNATURE_SUFFIX]) freed += await remove(config, path + suffix);
    report.freedBytes += freed;
    const name = path.slice(baseDir(config.backupDir).length + 1);
    log.info({ backup: name, tier: "base", reason: report.bases.find((b) => b.name === name)?.reason, bytes: freed }, `deleted ${name}`);
  }
  let walFreed = 0;
  for (const path of paths.wal) walFreed += await remove(config, path);
  report.freedBytes += walFreed;
  if (paths.wal.length > 0) log.info({ files: paths.wal.length, bytes: walFreed, keepFrom: report.wal.keepFrom }, `deleted ${paths.wal.length} WAL file(s): ${report.wal.reason}`);
  for (const path of paths.partials) report.freedBytes += await remove(config, path);
}

export function formatPhysicalCleanup(report: PhysicalCleanupReport, tz: string, dryRun: boolean): string {
  // A refusal is printed with the logical tiers' one: cleanup deletes nothing at all then.
  let text = "base backups (the fulls' policy) and WAL:\n";
  if (report.bases.length > 0) {
    text += table([["ACTION", `TIME (${tz})`, "SIZE", "NAME", "REASON"], ...report.bases.map((b) => [b.action, localTime(new Date(b.time), tz), humanBytes(b.bytes), b.name, b.reason])]);
  }
  const verb = dryRun ? "would remove" : "removed";
  const w = report.wal;
  const walLine = w.delete.length === 0 ? `WAL: delete none; ${w.reason}` : `WAL: delete ${w.delete.length} file(s) (${w.delete[0]?.name} .. ${w.delete.at(-1)?.name}, ${humanBytes(w.bytes)}); ${w.reason}`;
  const freed = dryRun ? report.bases.reduce((n, b) => n + (b.action === "delete" ? b.bytes : 0), w.bytes) : report.freedBytes;
  const summary = `base: keep ${report.bases.filter((b) => b.action === "keep").length}, delete ${report.bases.filter((b) => b.action === "delete").length}; ${humanBytes(freed)} ${dryRun ? "would be freed" : "freed"} in base/ and wal/`;
  return text + [walLine, ...report.removedPartials.map((p) => `${verb} stale ${p}`), summary].join("\n") + "\n";
}
