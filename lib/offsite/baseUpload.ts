// One base backup of BACKUP_DIR/base into the bucket, exactly as stored: its sidecars read
// once and checked (with a verify key, the signature; pitr/trustedBase.ts), then the data read
// once through openVerified — each 8 MiB chunk handed to the upload only after it matched the
// signed chunk list, so a file changed on the share never reaches S3 — as a multipart upload
// with its sha256 as metadata, proved by a HEAD, then the .sha256, the .sig and, last, the
// manifest: a base backup in the bucket with a manifest is complete.
import { createHash } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { basename } from "node:path";
import { ExitCode, TaskError } from "../core/errors.js";
import type { MirrorTarget } from "../s3/client.js";
import { physicalKey, s3Failure, s3Url } from "../s3/client.js";
import { putBytes, uploadStream } from "../s3/objects.js";
import { hashTap } from "../store/checksum.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX, SIGNATURE_SUFFIX } from "../store/naming.js";
import { IntegrityError, openVerified } from "../store/verifiedRead.js";
import { trustBase } from "../pitr/trustedBase.js";

export interface BaseUploaded {
  name: string;
  key: string;
  bytes: number;
  parts: number;
  seconds: number;
}

/** Throws exit 4 when the local base backup does not verify (nothing uploaded), exit 6 when S3 fails. */
export async function uploadBase(t: MirrorTarget, path: string, verifyKey: KeyObject | null): Promise<BaseUploaded> {
  const t0 = Date.now();
  const name = basename(path);
  const key = physicalKey(t.s3, "base", name);
  const trusted = await trustBase(path, verifyKey);
  const bytes = trusted.manifest.compressedBytes;
  const read = openVerified(path, trusted.expect);
  const hash = createHash("sha256");
  const tap = hashTap(hash);
  read.stream.once("error", (err) => tap.destroy(err));
  try {
    const parts = await uploadStream(t, key, read.stream.pipe(tap), { bytes, sha256: trusted.manifest.sha256, hashed: () => hash.digest("hex"), label: path });
    const { checksum, signature, manifest } = trusted.sidecars;
    await putBytes(t, key + CHECKSUM_SUFFIX, checksum, {}, "text/plain");
    if (signature !== null) await putBytes(t, key + SIGNATURE_SUFFIX, signature);
    await putBytes(t, key + MANIFEST_SUFFIX, manifest, {}, "application/json");
    const seconds = (Date.now() - t0) / 1000;
    t.log.info({ backup: name, key, bytes, parts, seconds }, `uploaded ${name} to ${s3Url(t.s3, key)} (${(bytes / 1e6).toFixed(1)} MB in ${parts} part(s), ${seconds.toFixed(1)} s)`);
    return { name, key, bytes, parts, seconds };
  } catch (err) {
    const integrity = err instanceof IntegrityError ? err : (err as Error).cause instanceof IntegrityError ? ((err as Error).cause as IntegrityError) : null;
    if (integrity !== null) throw new TaskError(ExitCode.refused, `${integrity.message}; it was not uploaded to S3: run verify, and take a new base backup`, { cause: err });
    throw await s3Failure(t.s3, t.client, `upload of ${name} to ${s3Url(t.s3, key)}`, err, ExitCode.mirrorFailed);
  } finally {
    read.stream.destroy();
  }
}
