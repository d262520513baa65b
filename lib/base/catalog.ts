// The base backups in $BACKUP_DIR/base, read from names and manifests only (never mtimes),
// as lib/store/catalog.ts reads the logical tiers: partials are ignored, a base/ folder that
// is a symlink stops the scan (exit 4), and a backup whose data file or sidecar is a symlink
// is listed with that problem, its manifest unread, so no task uses it.
import { lstat, readdir } from "node:fs/promises";
import type { Dirent } from "node:fs";
import { join } from "node:path";
import { ExitCode, errnoCode } from "../core/errors.js";
import { symlinkRefusal } from "../core/noFollow.js";
import { ManifestInvalid } from "../store/manifest.js";
import { symlinkProblem } from "../store/catalog.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX } from "../store/naming.js";
import type { BaseManifest } from "../physical/layout.js";
import { baseDir, parseBaseName } from "../physical/layout.js";
import { readBaseManifest } from "./manifest.js";

export interface BaseEntry {
  name: string;
  /** Absolute path of the tar file. */
  path: string;
  /** When the backup started: the manifest's startedAt, else the name's UTC stamp. */
  time: Date;
  manifest: BaseManifest | null;
  /** Why this base backup cannot be trusted (symlink, no or bad manifest, no checksum sidecar), or null. */
  problem: string | null;
  bytes: number;
}

export type UsableBaseEntry = BaseEntry & { manifest: BaseManifest; problem: null };

/** Whether base/ exists. Throws a TaskError (exit 4) when it is a symlink: it is never read through. */
export async function baseDirExists(backupDir: string): Promise<boolean> {
  const dir = baseDir(backupDir);
  const info = await lstat(dir).catch((err: unknown) => {
    if (errnoCode(err) === "ENOENT") return null;
    throw err;
  });
  if (info?.isSymbolicLink() === true) throw symlinkRefusal(ExitCode.refused, `BACKUP_DIR=${backupDir}: base backup folder`, dir);
  return info !== null;
}

/** Every name in base/ (partials and sidecars included); none when it is missing. Exit 4 when it is a symlink. */
export async function listBaseDir(backupDir: string): Promise<Dirent[]> {
  return (await baseDirExists(backupDir)) ? readdir(baseDir(backupDir), { withFileTypes: true }) : [];
}

async function readEntry(dir: string, name: string, files: ReadonlyMap<string, Dirent>): Promise<BaseEntry | null> {
  const parsed = parseBaseName(name);
  if (parsed === null) return null;
  const path = join(dir, name);
  const info = await lstat(path);
  if (!info.isFile() && !info.isSymbolicLink()) return null;
  let manifest: BaseManifest | null = null;
  let problem = await symlinkProblem(path, name, files);
  if (problem === null && !files.has(name + MANIFEST_SUFFIX)) {
    problem = `no manifest ${name}${MANIFEST_SUFFIX}`;
  } else if (problem === null) {
    try {
      manifest = await readBaseManifest(path + MANIFEST_SUFFIX, name);
    } catch (err) {
      problem = err instanceof ManifestInvalid ? `invalid manifest: ${err.reason}` : (err as Error).message;
    }
  }
  if (problem === null && !files.has(name + CHECKSUM_SUFFIX)) problem = `no checksum file ${name}${CHECKSUM_SUFFIX}`;
  return { name, path, time: manifest !== null ? new Date(manifest.startedAt) : parsed.time, manifest, problem, bytes: info.size };
}

/** Every base backup in BACKUP_DIR/base, oldest first. A missing folder reads as empty. */
export async function scanBaseCatalog(backupDir: string): Promise<BaseEntry[]> {
  const dir = baseDir(backupDir);
  const files = new Map((await listBaseDir(backupDir)).map((d) => [d.name, d]));
  const entries: BaseEntry[] = [];
  for (const name of files.keys()) {
    const entry = await readEntry(dir, name, files);
    if (entry !== null) entries.push(entry);
  }
  return entries.sort((a, b) => a.time.getTime() - b.time.getTime() || a.name.localeCompare(b.name));
}

/** Base backups a reader may use: manifest and checksum sidecar present and well-formed. The checksum itself is not hashed here. */
export function usableBases(entries: readonly BaseEntry[]): UsableBaseEntry[] {
  return entries.filter((e): e is UsableBaseEntry => e.problem === null && e.manifest !== null);
}
