// The catalog: what backups exist in BACKUP_DIR, read from names and manifests only
// (never from mtimes, which copies and rsync change). Partials are ignored. Readers that act
// on backups (restores, verify) scan it trusted: each manifest is read through its signed
// .sha256 (lib/store/trust.ts), so no unsigned manifest steers their plan.
// BACKUP_DIR is a share others can write, so nothing is read through a symlink: a tier folder
// that is a symlink stops the scan (exit 4, by name), and a backup whose data file or sidecar
// is a symlink is listed with that problem, its manifest unread, so no task uses it.
import { lstat, readdir } from "node:fs/promises";
import type { Dirent } from "node:fs";
import { join } from "node:path";
import { ExitCode, errnoCode } from "../core/errors.js";
import { symlinkRefusal } from "../core/noFollow.js";
import type { KeyObject } from "node:crypto";
import type { Manifest } from "./manifest.js";
import { ManifestInvalid, readManifest } from "./manifest.js";
import { readTrusted } from "./trust.js";
import type { Expectation } from "./verifiedRead.js";
import type { Tier } from "./naming.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX, TIERS, parseBackupName } from "./naming.js";

export interface CatalogEntry {
  name: string;
  tier: Tier;
  /** Absolute path of the data file. */
  path: string;
  /** When the backup started: the manifest's startedAt, else the name's UTC stamp. */
  time: Date;
  /** The backup this one depends on (see Manifest.parent); null for fulls and for entries without a manifest. */
  parent: string | null;
  manifest: Manifest | null;
  /** Why this backup cannot be trusted (no/bad manifest, no checksum sidecar), or null. */
  problem: string | null;
  bytes: number;
  /** From a trusted scan: what the data file's bytes must be (null from a plain scan, or for an unusable entry). */
  expect?: Expectation | null;
  /** From a trusted scan: its sidecars did not verify (unsigned with a verify key, forged, changed after the backup); `problem` says how. */
  untrusted?: boolean;
}

/** A trusted scan: every usable entry's manifest came through its .sha256, and with a verify key through its signature. */
export interface TrustOptions {
  verifyKey: KeyObject | null;
}

export function tierDir(backupDir: string, tier: Tier): string {
  return join(backupDir, tier);
}

/** Whether a tier folder exists. Throws a TaskError (exit 4) when it is a symlink: it is never read through. */
export async function tierDirExists(backupDir: string, tier: Tier): Promise<boolean> {
  const dir = tierDir(backupDir, tier);
  const info = await lstat(dir).catch((err: unknown) => {
    if (errnoCode(err) === "ENOENT") return null;
    throw err;
  });
  if (info?.isSymbolicLink() === true) throw symlinkRefusal(ExitCode.refused, `BACKUP_DIR=${backupDir}: tier folder`, dir);
  return info !== null;
}

async function readTierDir(backupDir: string, tier: Tier): Promise<Dirent[]> {
  return (await tierDirExists(backupDir, tier)) ? readdir(tierDir(backupDir, tier), { withFileTypes: true }) : [];
}

/** A tier folder's names; none when it is missing. Throws a TaskError (exit 4) when it is a symlink. */
export async function listTierDir(backupDir: string, tier: Tier): Promise<string[]> {
  return (await readTierDir(backupDir, tier)).map((d) => d.name);
}

/** From the listing's file type; lstat only where the file system does not report types. */
async function isSymlink(path: string, d: Dirent): Promise<boolean> {
  if (d.isSymbolicLink() || d.isFile() || d.isDirectory()) return d.isSymbolicLink();
  return lstat(path).then(
    (s) => s.isSymbolicLink(),
    () => false,
  );
}

/** Why a backup whose data file or sidecar (in `files`, its folder's listing) is a symlink cannot be read, or null. */
export async function symlinkProblem(path: string, name: string, files: ReadonlyMap<string, Dirent>): Promise<string | null> {
  for (const suffix of ["", MANIFEST_SUFFIX, CHECKSUM_SUFFIX]) {
    const d = files.get(name + suffix);
    if (d !== undefined && (await isSymlink(path + suffix, d))) {
      return `${name}${suffix} is a symlink; backups and sidecars are never read through a symlink. Find out who created it, then remove it`;
    }
  }
  return null;
}

async function readEntry(dir: string, name: string, files: ReadonlyMap<string, Dirent>, trust: TrustOptions | null): Promise<CatalogEntry | null> {
  const parsed = parseBackupName(name);
  if (parsed === null) return null;
  const path = join(dir, name);
  const info = await lstat(path);
  if (!info.isFile() && !info.isSymbolicLink()) return null;
  let manifest: Manifest | null = null;
  let expect: Expectation | null = null;
  let untrusted = false;
  // A symlinked backup is listed, so verify and cleanup see it, but never read.
  let problem = await symlinkProblem(path, name, files);
  if (problem === null && trust !== null) {
    const t = await readTrusted(path, name, trust.verifyKey, files.has(name + MANIFEST_SUFFIX));
    if (!t.ok) [problem, untrusted] = [t.problem, t.untrusted];
    else if (t.manifest === null) problem = `no manifest ${name}${MANIFEST_SUFFIX}`;
    else [manifest, expect] = [t.manifest, t.expect];
  } else if (problem === null && !files.has(name + MANIFEST_SUFFIX)) {
    problem = `no manifest ${name}${MANIFEST_SUFFIX}`;
  } else if (problem === null) {
    try {
      manifest = await readManifest(path + MANIFEST_SUFFIX, name);
    } catch (err) {
      problem = err instanceof ManifestInvalid ? `invalid manifest: ${err.reason}` : (err as Error).message;
    }
  }
  if (problem === null && !files.has(name + CHECKSUM_SUFFIX)) problem = `no checksum file ${name}${CHECKSUM_SUFFIX}`;
  return {
    name,
    tier: parsed.tier,
    path,
    time: manifest !== null ? new Date(manifest.startedAt) : parsed.time,
    parent: manifest?.parent ?? null,
    manifest,
    problem,
    bytes: info.size,
    expect,
    ...(untrusted ? { untrusted } : {}),
  };
}

/** Every backup in BACKUP_DIR, oldest first. Missing folders read as empty. `trust`: scan trusted (see the top of this file). */
export async function scanCatalog(backupDir: string, trust: TrustOptions | null = null): Promise<CatalogEntry[]> {
  const entries: CatalogEntry[] = [];
  for (const tier of TIERS) {
    const dir = tierDir(backupDir, tier);
    const listing = await readTierDir(backupDir, tier);
    const files = new Map(listing.map((d) => [d.name, d]));
    for (const name of files.keys()) {
      const entry = await readEntry(dir, name, files, trust);
      if (entry !== null && entry.tier === tier) entries.push(entry);
    }
  }
  return entries.sort((a, b) => a.time.getTime() - b.time.getTime() || a.name.localeCompare(b.name));
}

/** Backups a reader may use: manifest and checksum sidecar present and well-formed. */
export function usable(entries: readonly CatalogEntry[]): CatalogEntry[] {
  return entries.filter((e) => e.problem === null && e.manifest !== null);
}
