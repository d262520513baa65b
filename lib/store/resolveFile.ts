// FILE arguments: a path, or a bare backup name (20231215_030000_full.sql.bz2, or a
// latest_<tier> pointer name) looked up in BACKUP_DIR/<tier>/ and nowhere else. Its sidecars
// are read as lib/store/trust.ts reads them (the signature first, with a verify key): a file
// without a manifest (a seed-era backup) is still readable without a verify key.
// BACKUP_DIR is a share others can write, so nothing is followed through a symlink: a
// symlinked tier folder or backup file is refused (exit 4), a symlinked manifest is not read,
// and a latest pointer (the tool's own symlink, or its .txt form) is read, checked to hold a
// bare backup name, and resolved in its own folder.
import { lstat } from "node:fs/promises";
import { basename, dirname, extname, join, resolve } from "node:path";
import { tierDir, tierDirExists } from "./catalog.js";
import { ExitCode, TaskError } from "../core/errors.js";
import { symlinkRefusal } from "../core/noFollow.js";
import type { KeyObject } from "node:crypto";
import type { Manifest } from "./manifest.js";
import { readTrusted } from "./trust.js";
import type { Expectation } from "./verifiedRead.js";
import type { Codec } from "../core/codec.js";
import type { Tier } from "./naming.js";
import { ENCRYPTED_SUFFIX, MANIFEST_SUFFIX, TIERS, codecOfExtension, parseBackupName } from "./naming.js";
import { readLatestPointer } from "./latestPointer.js";

export interface ResolvedFile {
  name: string;
  path: string;
  codec: Codec;
  /** Age-encrypted (its name ends in .age): read through AGE_IDENTITY_FILE. */
  encrypted: boolean;
  /** From the bytes its .sha256 covers (and with a verify key, signed); null when it has none or cannot be trusted. */
  manifest: Manifest | null;
  /** What its bytes must be; with no usable sidecar, nothing (sha256 and chunks null). */
  expect: Expectation;
  /** Why its sidecars cannot be trusted (missing, changed, unsigned), or null. */
  trustProblem: string | null;
}

const POINTER = /^latest_(full|differential|incremental)\.sql(\.bz2|\.zst|\.gz)?(\.age)?$/;

/** The format of a file given by path under any name: its extensions, [codec][.age]. */
function formatOf(name: string): { codec: Codec; encrypted: boolean } {
  const parsed = parseBackupName(name);
  if (parsed !== null) return parsed;
  const encrypted = name.endsWith(ENCRYPTED_SUFFIX);
  const ext = extname(encrypted ? name.slice(0, -ENCRYPTED_SUFFIX.length) : name);
  return { codec: ext === ".bz2" || ext === ".zst" || ext === ".gz" ? codecOfExtension(ext) : "none", encrypted };
}

type Kind = "file" | "symlink" | "other" | "none";

async function kindOf(path: string): Promise<Kind> {
  return lstat(path).then(
    (s) => (s.isSymbolicLink() ? "symlink" : s.isFile() ? "file" : "other"),
    () => "none",
  );
}

/** The backup a latest pointer in `dir` names; the pointer's own path when there is none (it then does not exist). */
async function viaPointer(dir: string, pointerName: string): Promise<string> {
  const m = POINTER.exec(pointerName) as RegExpExecArray;
  const target = await readLatestPointer(dir, m[1] as Tier, codecOfExtension(m[2] ?? ""), m[3] !== undefined);
  return join(dir, target ?? pointerName);
}

/** Where a bare name lives in BACKUP_DIR, or null when it is not a backup or pointer name. */
async function inBackupDir(backupDir: string, name: string): Promise<string | null> {
  const parsed = parseBackupName(name);
  const tier = parsed?.tier ?? (POINTER.exec(name)?.[1] as Tier | undefined);
  if (tier === undefined) return null;
  const dir = tierDir(backupDir, tier);
  const exists = await tierDirExists(backupDir, tier);
  return parsed !== null || !exists ? join(dir, name) : viaPointer(dir, name);
}

/** `fetchMissing` (the S3 mirror) is asked for a bare backup name that is not in BACKUP_DIR; `verifyKey` (BACKUP_VERIFY_KEY_FILE) checks its signature. */
export async function resolveFile(
  backupDir: string,
  file: string,
  fetchMissing?: (name: string) => Promise<string | null>,
  verifyKey: KeyObject | null = null,
): Promise<ResolvedFile> {
  let path: string;
  if (file.includes("/")) {
    path = resolve(file);
    // A path into BACKUP_DIR's tier folders gets the same symlinked-folder refusal as a bare name.
    const tier = TIERS.find((t) => dirname(path) === tierDir(backupDir, t));
    if (tier !== undefined) await tierDirExists(backupDir, tier);
    // The tool's own latest_<tier> symlink given as a path: read, checked and resolved like a bare pointer name.
    if (POINTER.test(basename(path)) && (await kindOf(path)) === "symlink") path = await viaPointer(dirname(path), basename(path));
  } else {
    const found = await inBackupDir(backupDir, file);
    if (found === null) {
      throw new TaskError(ExitCode.usage, `FILE ${JSON.stringify(file)} is neither a path nor a backup name like 20231215_030000_full.sql.bz2; run \`list\` to see the backups`);
    }
    path = found;
  }
  let kind = await kindOf(path);
  if (kind === "none" && !file.includes("/") && fetchMissing !== undefined && parseBackupName(file) !== null) {
    path = (await fetchMissing(file)) ?? path;
    kind = await kindOf(path);
  }
  if (kind === "symlink") throw symlinkRefusal(ExitCode.refused, "backup file", path);
  if (kind !== "file") {
    throw new TaskError(ExitCode.usage, `backup file ${path} does not exist (BACKUP_DIR=${backupDir}); run \`list\` to see the backups`);
  }
  const name = basename(path);
  const format = formatOf(name);
  const manifestKind = await kindOf(path + MANIFEST_SUFFIX);
  const unknown = { name, chunks: null, sha256: null };
  if (manifestKind === "symlink") {
    const trustProblem = `${name}${MANIFEST_SUFFIX} is a symlink; it was not read. Find out who created it, then remove it`;
    return { name, path, ...format, manifest: null, expect: unknown, trustProblem };
  }
  const t = await readTrusted(path, name, verifyKey, manifestKind === "file");
  if (!t.ok) {
    const invalid = /^invalid manifest: (.*)$/s.exec(t.problem);
    const trustProblem = invalid === null ? t.problem : `the manifest ${path}${MANIFEST_SUFFIX} is unusable (${invalid[1] as string}); restore another backup`;
    return { name, path, ...format, manifest: null, expect: unknown, trustProblem };
  }
  return { name, path, codec: t.manifest?.compression.codec ?? format.codec, encrypted: format.encrypted, manifest: t.manifest, expect: t.expect, trustProblem: null };
}
