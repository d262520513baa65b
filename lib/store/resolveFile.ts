// FILE arguments: a path, or a bare backup name (20231215_030000_full.sql.bz2, or a
// latest_<tier> pointer name) looked up in BACKUP_DIR/<tier>/. The manifest beside it is
// read when present; a file without one (a seed-era backup) is still readable.
import { stat } from "node:fs/promises";
import { basename, extname, join, resolve } from "node:path";
import { tierDir } from "./catalog.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { Manifest } from "./manifest.js";
import { ManifestInvalid, readManifest } from "./manifest.js";
import type { Codec } from "../core/codec.js";
import type { Tier } from "./naming.js";
import { MANIFEST_SUFFIX, codecOfExtension, parseBackupName } from "./naming.js";
import { readLatestPointer } from "./storage.js";

export interface ResolvedFile {
  name: string;
  path: string;
  codec: Codec;
  manifest: Manifest | null;
  /** Why a manifest beside the file was not used, or null. */
  manifestProblem: string | null;
}

const POINTER = /^latest_(full|differential|incremental)\.sql(\.bz2|\.zst|\.gz)?$/;

function codecOf(name: string): Codec {
  const parsed = parseBackupName(name);
  if (parsed !== null) return parsed.codec;
  const ext = extname(name);
  return ext === ".bz2" || ext === ".zst" || ext === ".gz" ? codecOfExtension(ext) : "none";
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** Where a bare name lives in BACKUP_DIR, or null when it is not a backup or pointer name. */
async function inBackupDir(backupDir: string, name: string): Promise<string | null> {
  const parsed = parseBackupName(name);
  if (parsed !== null) return join(tierDir(backupDir, parsed.tier), name);
  const pointer = POINTER.exec(name);
  if (pointer === null) return null;
  const tier = pointer[1] as Tier;
  const target = await readLatestPointer(tierDir(backupDir, tier), tier, codecOfExtension(pointer[2] ?? ""));
  return target === null ? join(tierDir(backupDir, tier), name) : join(tierDir(backupDir, tier), target);
}

/** `fetchMissing` (the S3 mirror) is asked for a bare backup name that is not in BACKUP_DIR. */
export async function resolveFile(backupDir: string, file: string, fetchMissing?: (name: string) => Promise<string | null>): Promise<ResolvedFile> {
  let path: string;
  if (file.includes("/")) {
    path = resolve(file);
  } else {
    const found = await inBackupDir(backupDir, file);
    if (found === null) {
      throw new TaskError(ExitCode.usage, `FILE ${JSON.stringify(file)} is neither a path nor a backup name like 20231215_030000_full.sql.bz2; run \`list\` to see the backups`);
    }
    path = found;
  }
  if (!(await exists(path)) && !file.includes("/") && fetchMissing !== undefined && parseBackupName(file) !== null) {
    path = (await fetchMissing(file)) ?? path;
  }
  if (!(await exists(path))) {
    throw new TaskError(ExitCode.usage, `backup file ${path} does not exist (BACKUP_DIR=${backupDir}); run \`list\` to see the backups`);
  }
  const name = basename(path);
  let manifest: Manifest | null = null;
  let manifestProblem: string | null = null;
  if (await exists(path + MANIFEST_SUFFIX)) {
    try {
      manifest = await readManifest(path + MANIFEST_SUFFIX, name);
    } catch (err) {
      manifestProblem = err instanceof ManifestInvalid ? err.reason : (err as Error).message;
    }
  }
  return { name, path, codec: manifest?.compression.codec ?? codecOf(name), manifest, manifestProblem };
}
