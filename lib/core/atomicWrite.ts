// Creating files on a share others can write (other hosts, other stacks, the storage
// provider): a new file gets a random name and is opened O_CREAT|O_EXCL|O_NOFOLLOW, so a
// symlink or file planted at a name we would use can neither redirect the write nor be
// reused; its mode is set with fchmod, whatever the umask. Small files (sidecars, pointers,
// metrics) are then renamed into place, so a reader sees the old content or the new.
import { constants } from "node:fs";
import { open, rename, rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";

const CREATE_NEW = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** A fresh, unpredictable name beside `path`: `<path>.<random><suffix>`. */
export function tempPath(path: string, suffix: string): string {
  return `${path}.${randomBytes(8).toString("hex")}${suffix}`;
}

/** Creates a file that did not exist, never through a symlink, with exactly `mode`. */
export async function createExclusive(path: string, mode: number): Promise<FileHandle> {
  const fh = await open(path, CREATE_NEW, mode);
  try {
    await fh.chmod(mode);
    return fh;
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(path, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** Writes a small file atomically: a new temp file in the same folder, fsync, rename. */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  const tmp = tempPath(path, ".tmp");
  const fh = await createExclusive(tmp, mode);
  try {
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
}
