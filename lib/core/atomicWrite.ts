// Small files (sidecars, pointers, metrics) replaced in one step, so a reader sees the old
// content or the new, never half of it.
import { open, rename } from "node:fs/promises";

/** Writes a small file atomically: temp file in the same folder, fsync, rename. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, "w", 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
}
