// cleanup [--dry-run] [--json] [--now ISO-TIME]: plan with lib/retention/plan.ts, refuse when
// the newest backup is bad or BACKUP_DIR looks wrong, then delete, repair the latest
// pointers and remove stale leftovers (old .partial files, orphaned sidecars). With
// S3_RETENTION=mirror the plan also covers backups only the mirror still holds, so a
// deletion the mirror missed (server down) is retried by the next cleanup. A tier folder
// that is a symlink (planted on the shared BACKUP_DIR, perhaps at another cluster's
// backups) is refused, exit 4, before anything is read or deleted.
import { lstat, rm } from "node:fs/promises";
import { join } from "node:path";
import type { CatalogEntry } from "../lib/store/catalog.js";
import { listTierDir, scanCatalog, tierDir } from "../lib/store/catalog.js";
import { assertBackupDir, assertBackupDirIdentity } from "../lib/store/backupDir.js";
import { verifyBackupFile } from "../lib/store/signature.js";
import type { CleanupDecision, CleanupReport, PointerChange, PointerState } from "../lib/retention/cleanup.js";
import { DAY_MS, backupDirProblem, formatCleanupReport, isPartialName, orphanSidecars, parseNowOption, planPointers, withMirrorOnly } from "../lib/retention/cleanup.js";
import type { Config } from "../lib/config/config.js";
import type { Deps } from "../lib/core/deps.js";
import { ExitCode, TaskError, errnoCode } from "../lib/core/errors.js";
import { humanBytes } from "../lib/core/format.js";
import { acquireLock } from "../lib/postgres/lock.js";
import type { Logger } from "../lib/core/log.js";
import { CODECS } from "../lib/core/codec.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX, SIDECAR_SUFFIXES, SIGNATURE_SUFFIX, TIERS, latestPointerName } from "../lib/store/naming.js";
import type { Tier } from "../lib/store/naming.js";
import { planRetention } from "../lib/retention/plan.js";
import { storageError } from "../lib/store/storage.js";
import { pointerFileName, readLatestPointer, updateLatestPointer } from "../lib/store/latestPointer.js";
import { executePhysicalCleanup, formatPhysicalCleanup, planPhysicalCleanup } from "../lib/retention/physicalCleanup.js";
import { formatBucketPrune } from "../lib/offsite/prunePlan.js";

export interface CleanupArgs {
  dryRun: boolean;
  json: boolean;
  /** Plan as of this ISO time instead of the clock (see parseNowOption). */
  now?: string;
}

export type { CleanupDecision, CleanupReport } from "../lib/retention/cleanup.js";

interface Leftover {
  rel: string;
  path: string;
  bytes: number;
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await lstat(path)).size;
  } catch {
    return 0;
  }
}

async function listTier(backupDir: string, tier: Tier): Promise<string[]> {
  try {
    return await listTierDir(backupDir, tier);
  } catch (err) {
    if (err instanceof TaskError) throw err;
    throw new TaskError(ExitCode.storage, `BACKUP_DIR=${backupDir}: cannot read ${tierDir(backupDir, tier)} (${errnoCode(err) ?? "error"}); fix the folder's owner or mode`, { cause: err });
  }
}

/** Stale leftovers as of the clock (never --now: they are about crashed runs, not retention), and every orphan for the sanity check. */
async function findLeftovers(backupDir: string, clock: Date): Promise<{ partials: Leftover[]; orphans: Leftover[]; orphanCount: number }> {
  const partials: Leftover[] = [];
  const orphans: Leftover[] = [];
  let orphanCount = 0;
  for (const tier of TIERS) {
    const names = await listTier(backupDir, tier);
    for (const name of names.filter(isPartialName)) {
      const path = join(tierDir(backupDir, tier), name);
      // Gone already: a --dry-run holds no lock, so a running backup may just have renamed it.
      const info = await lstat(path).catch(() => null);
      // A partial has no manifest and its name stamp is the start of a dump that may have
      // run for hours, so its mtime (the last write) is the only sign it is abandoned.
      if (info?.isFile() === true && clock.getTime() - info.mtimeMs > DAY_MS) partials.push({ rel: `${tier}/${name}`, path, bytes: info.size });
    }
    for (const s of orphanSidecars(names)) {
      orphanCount++;
      const path = join(tierDir(backupDir, tier), s.name);
      if (clock.getTime() - s.time.getTime() > DAY_MS) orphans.push({ rel: `${tier}/${s.name}`, path, bytes: await sizeOf(path) });
    }
  }
  return { partials, orphans, orphanCount };
}

/**
 * Why cleanup must not delete anything, or null. Hashes the newest backup only: it is the one
 * whose failure matters now. With BACKUP_VERIFY_KEY_FILE an unsigned newest backup is bad too:
 * a forged newest file must not make cleanup delete the good backups it seems to supersede.
 */
async function refusal(config: Config, catalog: readonly CatalogEntry[], orphanCount: number): Promise<string | null> {
  const layout = backupDirProblem(catalog, orphanCount);
  if (layout !== null) {
    return `BACKUP_DIR=${config.backupDir} looks wrong: ${layout}. Check the mount and BACKUP_DIR, then take a new full with \`pg-swarm-backup backup full\``;
  }
  const newest = catalog.at(-1);
  if (newest === undefined) return null;
  const problem = newest.problem ?? (await verifyBackupFile(newest.path, newest.manifest?.sha256, config.signing.verifyKey).then((v) => (v.ok ? null : v.problem)));
  if (problem === null) return null;
  return (
    `the newest backup ${newest.name} failed verification (${problem}); while the newest backup is bad the older ones may be the only good copies. ` +
    "Run `pg-swarm-backup verify` to see which backups are intact, then take a new full with `pg-swarm-backup backup full`"
  );
}

/** A pointer that does not hold a bare backup name reads as INVALID_POINTER, so the plan rewrites or removes it. */
const INVALID_POINTER = "(invalid pointer)";

async function readPointers(backupDir: string, log: Logger): Promise<PointerState[]> {
  const states: PointerState[] = [];
  for (const tier of TIERS) {
    for (const codec of CODECS) {
      for (const encrypted of [false, true]) {
        const current = await readLatestPointer(tierDir(backupDir, tier), tier, codec, encrypted).catch((err: unknown) => {
          if (!(err instanceof TaskError)) throw err;
          log.warn({ tier, err: err.message }, `latest ${tier} pointer is not a backup name; cleanup replaces it`);
          return INVALID_POINTER;
        });
        states.push({ tier, codec, encrypted, current });
      }
    }
  }
  return states;
}

function remainingInputs(entries: readonly CatalogEntry[]) {
  return entries.map((e) => ({ name: e.name, tier: e.tier, time: e.time, valid: e.problem === null }));
}

async function removeFile(config: Config, path: string): Promise<number> {
  const bytes = await sizeOf(path);
  try {
    await rm(path, { force: true });
  } catch (err) {
    throw storageError(config.backupDir, path, err);
  }
  return bytes;
}

async function applyPointer(config: Config, change: PointerChange, log: Logger): Promise<void> {
  const dir = tierDir(config.backupDir, change.tier);
  try {
    if (change.to !== null) {
      await updateLatestPointer(dir, change.tier, change.codec, change.to, config.files.file);
    } else {
      // Both forms: the symlink and, where symlinks fail (CIFS/SMB), the pointer file.
      await rm(join(dir, latestPointerName(change.tier, change.codec, change.encrypted)), { force: true });
      await rm(join(dir, pointerFileName(change.tier, change.codec, change.encrypted)), { force: true });
    }
  } catch (err) {
    throw storageError(config.backupDir, join(dir, latestPointerName(change.tier, change.codec, change.encrypted)), err);
  }
  log.info({ tier: change.tier, from: change.from, to: change.to }, `latest ${change.tier} pointer ${change.to === null ? "removed" : `now names ${change.to}`}`);
}

/**
 * Deletes newest first, so a crash halfway never leaves a kept-looking child whose parent
 * is gone. Within a backup the manifest goes first: without it no reader trusts the data
 * file, so a half-deleted backup is never mistaken for a valid one.
 */
async function execute(config: Config, report: CleanupReport, byName: ReadonlyMap<string, CatalogEntry>, leftovers: readonly Leftover[], log: Logger): Promise<void> {
  let failure: unknown = null;
  try {
    for (const d of [...report.decisions].reverse().filter((x) => x.action === "delete" && x.location === undefined)) {
      const entry = byName.get(d.name);
      if (entry === undefined) continue;
      let freed = 0;
      for (const path of [entry.path + MANIFEST_SUFFIX, entry.path, entry.path + CHECKSUM_SUFFIX, entry.path + SIGNATURE_SUFFIX]) freed += await removeFile(config, path);
      report.freedBytes += freed;
      log.info({ backup: d.name, tier: d.tier, reason: d.reason, bytes: freed }, `deleted ${d.name}: ${d.reason}`);
    }
    for (const f of leftovers) {
      report.freedBytes += await removeFile(config, f.path);
      log.info({ file: f.rel, bytes: f.bytes }, `removed stale ${f.rel}`);
    }
  } catch (err) {
    failure = err;
  }
  // Pointers follow what is really on disk, so they are right even after a failed delete.
  const remaining = remainingInputs(await scanCatalog(config.backupDir));
  report.pointers = planPointers(remaining, await readPointers(config.backupDir, log));
  for (const change of report.pointers) {
    // After a failed delete, that failure is the one to report; a pointer problem is logged.
    await applyPointer(config, change, log).catch((err: unknown) => {
      if (failure === null) throw err;
      log.error({ err: (err as Error).message }, "latest pointer not repaired");
    });
  }
  if (failure !== null) throw failure;
}

/** The same deletions in the S3 mirror; the SDK is loaded only when S3_BUCKET is set. */
async function mirrorCleanup(config: Config, decisions: readonly CleanupDecision[], log: Logger): Promise<void> {
  const names = decisions.filter((d) => d.action === "delete").map((d) => d.name);
  if (config.s3 === null || names.length === 0) return;
  const { mirrorDeletions } = await import("../lib/s3/mirror.js");
  const r = await mirrorDeletions(config, names, log);
  if (r.status === "deleted") log.info({ backups: r.names, objects: r.objects }, `deleted ${r.names.length} backup(s) from the S3 mirror`);
}

/**
 * Backups only the mirror holds, when cleanup deletes in S3 too (S3_RETENTION=mirror).
 * A failed listing is returned, not thrown: cleanup then plans from BACKUP_DIR alone.
 */
async function mirrorOnly(config: Config, local: readonly CatalogEntry[], log: Logger): Promise<{ entries: CatalogEntry[]; failure: unknown }> {
  if (config.s3 === null || config.s3.retention !== "mirror") return { entries: [], failure: null };
  const [{ listRemote, remoteCatalog }, { mirrorTarget }] = await Promise.all([import("../lib/s3/remoteCatalog.js"), import("../lib/s3/client.js")]);
  const t = mirrorTarget(config.s3, log.child({ mirror: "s3" }));
  try {
    const names = new Set(local.map((e) => e.name));
    return { entries: await remoteCatalog(t, config.backupDir, (await listRemote(t)).filter((r) => !names.has(r.name))), failure: null };
  } catch (err) {
    log.warn({ err: (err as Error).message }, "the S3 mirror cannot be listed; planning from BACKUP_DIR only and deleting nothing in S3");
    return { entries: [], failure: err };
  }
}

export async function run(config: Config, deps: Deps, args: CleanupArgs): Promise<CleanupReport> {
  const log = deps.log.child({ task: "cleanup" });
  const clock = deps.now();
  const now = parseNowOption(args.now) ?? clock;
  const releasers: (() => Promise<void>)[] = [];
  try {
    await assertBackupDir(config.backupDir, "cleanup deleted nothing");
    await assertBackupDirIdentity(config.backupDir, { metricsFile: config.metricsFile, log, create: false, fileMode: config.files.file });
    if (!args.dryRun) {
      const lock = await acquireLock(config, "cleanup", log);
      releasers.push(() => lock.release());
    }
    const catalog = await scanCatalog(config.backupDir).catch((err: unknown) => {
      if (err instanceof TaskError) throw err;
      throw new TaskError(ExitCode.storage, `BACKUP_DIR=${config.backupDir} cannot be read (${errnoCode(err) ?? (err as Error).message}); cleanup deleted nothing`, { cause: err });
    });
    const found = await findLeftovers(config.backupDir, clock);
    const physical = await planPhysicalCleanup(config, now, clock);
    // A bad newest base backup stops the whole cleanup, as a bad newest logical backup does.
    const refused = (await refusal(config, catalog, found.orphanCount)) ?? physical?.report.refused ?? null;
    if (refused !== null && !args.dryRun) throw new TaskError(ExitCode.refused, `cleanup refused, nothing deleted: ${refused}`);
    const remote = await mirrorOnly(config, catalog, log);
    const located = new Map(withMirrorOnly(catalog, remote.entries).map((l) => [l.entry.name, l]));
    const { keepFullDays, ...rest } = config.retention;
    const planned = planRetention(
      [...located.values()].map(({ entry: e }) => ({ name: e.name, tier: e.tier, time: e.time, parent: e.parent, valid: e.problem === null, problem: e.problem })),
      config.retention,
      now,
    );
    const byName = new Map(catalog.map((e) => [e.name, e]));
    const decisions: CleanupDecision[] = [];
    for (const d of planned) {
      const decision = { name: d.name, tier: d.tier, time: d.time.toISOString(), action: d.action, reason: d.reason };
      const l = located.get(d.name);
      if (l?.location === "s3") {
        decisions.push({ ...decision, bytes: l.entry.bytes, location: "s3" });
        continue;
      }
      const path = l?.entry.path ?? "";
      let bytes = 0;
      for (const suffix of ["", ...SIDECAR_SUFFIXES]) bytes += await sizeOf(path + suffix);
      decisions.push({ ...decision, bytes });
    }
    const leftovers = [...found.partials, ...found.orphans];
    const report: CleanupReport = {
      now: now.toISOString(),
      dryRun: args.dryRun,
      policy: { ...rest, keepFullDays: Number.isFinite(keepFullDays) ? keepFullDays : null },
      decisions,
      freedBytes: 0,
      removedPartials: found.partials.map((f) => f.rel),
      removedOrphans: found.orphans.map((f) => f.rel),
      pointers: [],
    };
    if (args.now !== undefined && !args.dryRun) log.warn({ now: report.now }, `planning as of --now ${report.now}, not the clock`);
    if (args.dryRun) {
      const kept = catalog.filter((e) => decisions.find((d) => d.name === e.name)?.action === "keep");
      report.pointers = planPointers(remainingInputs(kept), await readPointers(config.backupDir, log));
      const local = decisions.filter((d) => d.action === "delete" && d.location === undefined);
      report.freedBytes = local.reduce((n, d) => n + d.bytes, 0) + leftovers.reduce((n, f) => n + f.bytes, 0);
    } else {
      await execute(config, report, byName, leftovers, log);
      if (physical !== null) await executePhysicalCleanup(config, physical, log);
      // Unlisted means unreachable: the next cleanup retries these deletions as S3-only backups.
      if (remote.failure === null) await mirrorCleanup(config, decisions, log);
    }
    const bucket = physical === null || config.s3?.retention !== "mirror" ? { plan: null, failure: null } : await (await import("../lib/offsite/pruneBucket.js")).pruneBucket(config, args.dryRun, now, log);
    const deleted = decisions.filter((d) => d.action === "delete").length;
    log.info(
      { dryRun: args.dryRun, now: report.now, kept: decisions.length - deleted, deleted, freedBytes: report.freedBytes, partials: report.removedPartials.length, orphans: report.removedOrphans.length },
      `cleanup ${args.dryRun ? "planned" : "done"}: keep ${decisions.length - deleted}, delete ${deleted}, ${humanBytes(report.freedBytes)} ${args.dryRun ? "would be freed" : "freed"}`,
    );
    deps.out(
      args.json
        ? JSON.stringify({ ...report, refused, physical: physical === null ? null : { ...physical.report, s3: bucket.plan } }, null, 2) + "\n"
        : formatCleanupReport(report, config.tz, refused) +
            (physical === null ? "" : formatPhysicalCleanup(physical.report, config.tz, args.dryRun)) +
            (bucket.plan === null ? "" : formatBucketPrune(bucket.plan, args.dryRun)),
    );
    if (refused !== null) throw new TaskError(ExitCode.refused, `cleanup would refuse: ${refused}`);
    if (remote.failure !== null) {
      const done = args.dryRun ? "planned from BACKUP_DIR only" : "deleted from BACKUP_DIR only, nothing in S3";
      throw new TaskError(ExitCode.mirrorFailed, `the S3 mirror cannot be listed (${(remote.failure as Error).message}); cleanup ${done}. The next cleanup deletes in S3 what it misses now`, { cause: remote.failure });
    }
    if (bucket.failure !== null) {
      throw new TaskError(ExitCode.mirrorFailed, `the physical tier in the S3 mirror was not pruned (${(bucket.failure as Error).message}); BACKUP_DIR was cleaned up. The next cleanup or mirror prunes it`, { cause: bucket.failure });
    }
    return report;
  } finally {
    for (const release of releasers.reverse()) await release();
  }
}
