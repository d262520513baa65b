// The latest_<tier> pointer: a symlink the tool writes (its target a bare backup name), or,
// where the file system refuses symlinks (CIFS/SMB), latest_<tier>.<ext>.txt holding the
// name. BACKUP_DIR is shared with others, so a pointer is never followed: the symlink is read
// with readlink, the text file without following a symlink, and either must hold a bare
// backup name of its own tier and codec, or it is refused.
import { readlink, rename, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { tempPath, writeFileAtomic } from "../core/atomicWrite.js";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import { DEFAULT_FILE_MODES } from "../core/fileModes.js";
import { isSymlinkError, readSmallFile, symlinkRefusal } from "../core/noFollow.js";
import type { Codec } from "../core/codec.js";
import type { Tier } from "./naming.js";
import { latestPointerName, parseBackupName } from "./naming.js";

/** Where a latest pointer that cannot be a symlink (CIFS/SMB) is written instead: a text file holding the name. */
export function pointerFileName(tier: Tier, codec: Codec, encrypted = false): string {
  return `${latestPointerName(tier, codec, encrypted)}.txt`;
}

/**
 * The backup name a pointer's content names, or null when it is not a bare backup name of
 * this tier and codec. The name pattern admits no `/` and no `..`, so a valid name always
 * lies in the pointer's own folder. Pure.
 */
export function pointerTarget(content: string, tier: Tier, codec: Codec, encrypted = false): string | null {
  const name = content.replace(/\r?\n$/, "");
  const parsed = parseBackupName(name);
  return parsed !== null && parsed.tier === tier && parsed.codec === codec && parsed.encrypted === encrypted ? name : null;
}

/**
 * Points latest_<tier> at `name`: an atomic symlink swap; where the file system refuses
 * symlinks, a pointer text file. Returns which kind was written.
 */
export async function updateLatestPointer(dir: string, tier: Tier, codec: Codec, name: string, fileMode = DEFAULT_FILE_MODES.file): Promise<"symlink" | "file"> {
  // An encrypted backup gets its own pointer (latest_full.sql.bz2.age): `bunzip2 -c latest_full.sql.bz2` must never meet age's bytes.
  const encrypted = parseBackupName(name)?.encrypted === true;
  const link = join(dir, latestPointerName(tier, codec, encrypted));
  const tmp = tempPath(link, ".tmp");
  try {
    await symlink(name, tmp);
    await rename(tmp, link);
    await rm(join(dir, pointerFileName(tier, codec, encrypted)), { force: true });
    return "symlink";
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    if (!["EPERM", "ENOTSUP", "EOPNOTSUPP", "EINVAL", "ENOSYS"].includes(errnoCode(err) ?? "")) throw err;
    await writeFileAtomic(join(dir, pointerFileName(tier, codec, encrypted)), `${name}\n`, fileMode);
    return "file";
  }
}

/** The refusal for a pointer that does not hold a bare backup name (exit 4). */
function badPointer(path: string, content: string, tier: Tier): TaskError {
  return new TaskError(
    ExitCode.refused,
    `latest pointer ${path} holds ${JSON.stringify(content.slice(0, 200))}, not a bare ${tier} backup name like 20231215_030000_${tier}.sql.bz2; ` +
      `a pointer is never followed outside its folder. Find out who wrote it, then remove it (the next backup or cleanup writes a correct one) or name the backup file directly`,
  );
}

/**
 * The backup name a latest pointer names, or null when there is none. Throws a TaskError
 * (exit 4) for a pointer that is not a bare backup name of its tier and codec, or a pointer
 * text file that is a symlink.
 */
export async function readLatestPointer(dir: string, tier: Tier, codec: Codec, encrypted = false): Promise<string | null> {
  const link = join(dir, latestPointerName(tier, codec, encrypted));
  let content: string;
  let path = link;
  try {
    content = await readlink(link);
  } catch {
    path = join(dir, pointerFileName(tier, codec, encrypted));
    try {
      content = (await readSmallFile(path, 4096)).trim();
    } catch (err) {
      if (isSymlinkError(err)) throw symlinkRefusal(ExitCode.refused, "latest pointer file", path, err);
      return null;
    }
    if (content === "") return null;
  }
  const name = pointerTarget(content, tier, codec, encrypted);
  if (name === null) throw badPointer(path, content, tier);
  return name;
}
