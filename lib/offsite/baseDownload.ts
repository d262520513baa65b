// A base backup fetched from the bucket for restore-pitr --source s3, into a private folder
// (mkdtemp: 0700, a random name) in TMPDIR, removed when the restore ends (or at SIGTERM). It
// is downloaded whole first and then read once through openVerified, chunk by chunk against
// the signed chunk list, exactly as a base backup in BACKUP_DIR is: one reader checks and
// extracts. Downloading first (rather than streaming into the extraction) keeps that reader
// unchanged, lets a body cut off by the network resume where it stopped (objects.ts:
// downloadInto) instead of failing an extraction halfway, and proves the whole file's sha256
// before the data directory is touched. The cost is room in TMPDIR for the compressed backup,
// checked before the download starts.
import { createHash } from "node:crypto";
import { mkdtemp, rm, statfs } from "node:fs/promises";
import { join } from "node:path";
import { createExclusive } from "../core/atomicWrite.js";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import { humanBytes } from "../core/format.js";
import type { Logger } from "../core/log.js";
import { shutdown } from "../core/shutdown.js";
import type { MirrorTarget } from "../s3/client.js";
import { physicalKey, s3Failure, s3Url } from "../s3/client.js";
import { downloadInto } from "../s3/objects.js";
import type { TrustedBase } from "../pitr/trustedBase.js";

const PROGRESS_MS = 5000;
/** Room kept free beside the download. */
const SLACK_BYTES = 64 * 1024 * 1024;

export interface DownloadedBase {
  path: string;
  bytes: number;
  remove: () => Promise<void>;
}

export async function downloadBase(t: MirrorTarget, b: Omit<TrustedBase, "path">, tmp: string, log: Logger): Promise<DownloadedBase> {
  const bytes = b.manifest.compressedBytes;
  const key = physicalKey(t.s3, "base", b.name);
  let dir: string;
  try {
    dir = await mkdtemp(join(tmp, "pgsb-s3-base-"));
  } catch (err) {
    throw new TaskError(ExitCode.storage, `TMPDIR=${tmp} cannot hold the download of ${b.name} (${errnoCode(err) ?? (err as Error).message}); point TMPDIR at a writable folder with room for it`, { cause: err });
  }
  const folder = dir;
  const unregister = shutdown.register(`download folder ${dir}`, () => rm(folder, { recursive: true, force: true }));
  const remove = async () => {
    unregister();
    await rm(folder, { recursive: true, force: true });
  };
  try {
    const fs = await statfs(dir);
    const free = fs.bavail * fs.bsize;
    if (free < bytes + SLACK_BYTES) {
      throw new TaskError(ExitCode.storage, `TMPDIR=${tmp} has ${humanBytes(free)} free, but ${b.name} from the S3 mirror needs ${humanBytes(bytes)}; point TMPDIR at a disk with room for it (the base backup is downloaded whole before it is read)`);
    }
    const path = join(dir, b.name);
    const fh = await createExclusive(path, 0o600);
    const hash = createHash("sha256");
    let got = 0;
    let last = Date.now();
    try {
      await downloadInto(t, key, fh, bytes, hash, (n) => {
        got += n;
        if (Date.now() - last < PROGRESS_MS) return;
        last = Date.now();
        log.info({ backup: b.name, downloadedBytes: got, bytes }, `downloading ${b.name}: ${humanBytes(got)} of ${humanBytes(bytes)}`);
      });
      await fh.sync();
    } catch (err) {
      if (err instanceof TaskError) throw err;
      if (["ENOSPC", "EDQUOT", "EROFS", "EACCES"].includes(errnoCode(err) ?? "")) {
        throw new TaskError(ExitCode.storage, `TMPDIR=${tmp}: cannot write the download of ${b.name} (${errnoCode(err)}); point TMPDIR at a disk with room for it`, { cause: err });
      }
      throw await s3Failure(t.s3, t.client, `download of ${s3Url(t.s3, key)}`, err, ExitCode.failed);
    } finally {
      await fh.close();
    }
    const sha = hash.digest("hex");
    if (sha !== b.expect.sha256) {
      throw new TaskError(ExitCode.refused, `${s3Url(t.s3, key)} is corrupt: checksum mismatch (downloaded ${sha.slice(0, 12)}…, its signed manifest records ${String(b.expect.sha256).slice(0, 12)}…); nothing was written to the data directory. Upload it again from BACKUP_DIR (\`mirror\`) or use another base backup (--at)`);
    }
    return { path, bytes, remove };
  } catch (err) {
    await remove();
    throw err;
  }
}
