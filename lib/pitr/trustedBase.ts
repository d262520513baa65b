// What a base backup's bytes must be, established from its small sidecars before the one read
// of the data file: with a verify key the .sha256 is read once and its signature checked over
// exactly those bytes; the manifest (.json) is read once, hashed, and those same bytes are
// parsed, so the chunk list the read checks against is the one the signature covers. The data
// file itself is not hashed here: openVerified checks it chunk by chunk (or whole, at the end,
// for a format-1 backup without chunks) in the read that extracts it.
import { createHash } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { basename } from "node:path";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import { readSmallBytes } from "../core/noFollow.js";
import { SIDECAR_MAX_BYTES, parseChecksumFile } from "../store/checksum.js";
import { MANIFEST_MAX_BYTES, ManifestInvalid } from "../store/manifest.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX } from "../store/naming.js";
import { checkSignature } from "../store/signature.js";
import type { Expectation } from "../store/verifiedRead.js";
import type { BaseManifest } from "../physical/layout.js";
import { parseBaseManifest } from "../base/manifest.js";

export interface TrustedBase {
  name: string;
  path: string;
  manifest: BaseManifest;
  expect: Expectation;
  /** The signature was checked with BACKUP_VERIFY_KEY_FILE. */
  signed: boolean;
}

const refuse = (text: string, cause?: unknown) => new TaskError(ExitCode.refused, text, { cause });

async function readBounded(path: string, max: number): Promise<Buffer> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const info = await fh.stat();
    if (!info.isFile()) throw Object.assign(new Error(`${path} is not a regular file`), { code: "EINVAL" });
    // One byte more than the size at open: a file that grew since reads long and fails its hash.
    const buf = Buffer.alloc(Math.min(info.size, max) + 1);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
    }
    if (n > max) throw new ManifestInvalid(path, `larger than ${max} bytes`);
    return buf.subarray(0, n);
  } finally {
    await fh.close();
  }
}

/** The checked manifest and read expectation of the base backup at `path`; throws exit 4 naming the file and the fix. */
export async function trustBase(path: string, verifyKey: KeyObject | null): Promise<TrustedBase> {
  const name = basename(path);
  let sidecar: Buffer;
  if (verifyKey !== null) {
    const signed = await checkSignature(path, verifyKey);
    if (!signed.ok) throw refuse(signed.problem);
    sidecar = signed.sidecar;
  } else {
    try {
      sidecar = await readSmallBytes(path + CHECKSUM_SUFFIX, SIDECAR_MAX_BYTES);
    } catch (err) {
      throw refuse(`${name}: checksum file ${name}${CHECKSUM_SUFFIX} is missing or unreadable (${errnoCode(err) ?? "error"}); use another base backup`, err);
    }
  }
  const recorded = parseChecksumFile(sidecar.toString("utf8"), name);
  if (typeof recorded === "string") throw refuse(recorded);
  let bytes: Buffer;
  try {
    bytes = await readBounded(path + MANIFEST_SUFFIX, MANIFEST_MAX_BYTES);
  } catch (err) {
    throw refuse(`${name}: manifest ${name}${MANIFEST_SUFFIX} cannot be read (${errnoCode(err) ?? (err as Error).message}); use another base backup`, err);
  }
  if (recorded.manifest !== null && createHash("sha256").update(bytes).digest("hex") !== recorded.manifest) {
    throw refuse(`${name}: manifest ${name}${MANIFEST_SUFFIX} was changed after the backup (it does not match ${name}${CHECKSUM_SUFFIX}); use another base backup`);
  }
  let manifest: BaseManifest;
  try {
    manifest = parseBaseManifest(bytes.toString("utf8"), path + MANIFEST_SUFFIX, name);
  } catch (err) {
    throw refuse(`${name}: ${(err as Error).message}`, err);
  }
  if (manifest.sha256 !== recorded.data) throw refuse(`${name}: the .sha256 sidecar and the manifest disagree about the file's sha256; use another base backup`);
  return { name, path, manifest, expect: { name, chunks: manifest.chunks ?? null, sha256: recorded.data }, signed: verifyKey !== null };
}
