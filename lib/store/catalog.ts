// The catalog: what backups exist in BACKUP_DIR, read from names and manifests only
// (never from mtimes, which copies and rsync change). Partials are ignored.
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Manifest } from "./manifest.js";
import { ManifestInvalid, readManifest } from "./manifest.js";
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
}

export function tierDir(backupDir: string, tier: Tier): string {
  return join(backupDir, tier);
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

async function readEntry(dir: string, name: string, files: Set<string>): Promise<CatalogEntry | null> {
  const parsed = parseBackupName(name);
  if (parsed === null) return null;
  const path = join(dir, name);
  const info = await stat(path);
  if (!info.isFile()) return null;
  let manifest: Manifest | null = null;
  let problem: string | null = null;
  if (!files.has(name + MANIFEST_SUFFIX)) {
    problem = `no manifest ${name}${MANIFEST_SUFFIX}`;
  } else {
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
  };
}

/** Every backup in BACKUP_DIR, oldest first. Missing folders read as empty. */
export async function scanCatalog(backupDir: string): Promise<CatalogEntry[]> {
  const entries: CatalogEntry[] = [];
  for (const tier of TIERS) {
    const dir = tierDir(backupDir, tier);
    const names = await listDir(dir);
    const files = new Set(names);
    for (const name of names) {
      const entry = await readEntry(dir, name, files);
      if (entry !== null && entry.tier === tier) entries.push(entry);
    }
  }
  return entries.sort((a, b) => a.time.getTime() - b.time.getTime() || a.name.localeCompare(b.name));
}

/** Backups a reader may use: manifest and checksum sidecar present and well-formed. */
export function usable(entries: readonly CatalogEntry[]): CatalogEntry[] {
  return entries.filter((e) => e.problem === null && e.manifest !== null);
}
