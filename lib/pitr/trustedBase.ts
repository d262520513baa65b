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
import { basename, dirname } from "node:path";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import { readSmallBytes } from "../core/noFollow.js";
import { SIDECAR_MAX_BYTES, parseChecksumFile } from "../store/checksum.js";
import { MANIFEST_MAX_BYTES, ManifestInvalid } from "../store/manifest.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX, SIGNATURE_SUFFIX } from "../store/naming.js";
import { UNSIGNED, checkSignatureBytes, unsignedProblem } from "../store/signature.js";
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
  /** The sidecars' bytes as they were read and checked: what the S3 mirror uploads. */
  sidecars: BaseSidecars;
}

export interface BaseSidecars {
  checksum: Buffer;
  /** The .sha256.sig; null when there is none (an unsigned backup). */
  signature: Buffer | null;
  manifest: Buffer;
}

/** A sidecar as read: its bytes, null when it does not exist, or why it could not be read. */
export type SidecarRead = Buffer | null | { problem: string };

/**
 * A base backup refused for its sidecars (exit 4). `untrusted`: its signature or checksums say
 * they are not the ones written (unsigned with a verify key, forged, changed after the backup) —
 * a restore never passes over such a one quietly; otherwise it is merely unusable (a missing or
 * malformed sidecar, a manifest that breaks the schema).
 */
export class BaseRefusal extends TaskError {
  constructor(
    message: string,
    readonly untrusted: boolean,
    options?: { cause?: unknown },
  ) {
    super(ExitCode.refused, message, options);
    this.name = "BaseRefusal";
  }
}

const refuse = (text: string, cause?: unknown) => new BaseRefusal(text, false, { cause });
const distrust = (text: string) => new BaseRefusal(text, true);

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

async function readSidecar(path: string, max: number, read: (p: string, m: number) => Promise<Buffer>): Promise<SidecarRead> {
  try {
    return await read(path, max);
  } catch (err) {
    if (errnoCode(err) === "ENOENT") return null;
    return { problem: errnoCode(err) ?? (err as Error).message };
  }
}

const isBytes = (r: SidecarRead): r is Buffer => Buffer.isBuffer(r);
const why = (r: SidecarRead): string => (r === null ? "ENOENT" : isBytes(r) ? "" : r.problem);

/**
 * The checked manifest and read expectation of base backup `name` from its sidecars' bytes,
 * read once wherever they are stored (`where`: "BACKUP_DIR/base" or the bucket's folder):
 * with a verify key the signature over the .sha256 first, then the manifest's bytes hashed
 * against it and parsed from those same bytes. Throws exit 4 naming the file and the fix.
 */
export function trustBaseBytes(name: string, read: { checksum: SidecarRead; signature: SidecarRead; manifest: SidecarRead }, verifyKey: KeyObject | null, where: string): Omit<TrustedBase, "path"> {
  const { checksum, signature, manifest: manifestRead } = read;
  if (!isBytes(checksum)) {
    if (verifyKey !== null) throw distrust(unsignedProblem(name, "checksum", why(checksum)));
    throw refuse(`${name}: checksum file ${name}${CHECKSUM_SUFFIX} is missing or unreadable in ${where} (${why(checksum)}); use another base backup`);
  }
  if (verifyKey !== null) {
    if (!isBytes(signature)) throw distrust(unsignedProblem(name, "signature", signature === null ? UNSIGNED : `cannot be read (${why(signature)})`));
    const signed = checkSignatureBytes(name, checksum, signature, verifyKey);
    if (!signed.ok) throw distrust(signed.problem);
  }
  const recorded = parseChecksumFile(checksum.toString("utf8"), name);
  if (typeof recorded === "string") throw refuse(recorded);
  if (!isBytes(manifestRead)) throw refuse(`${name}: manifest ${name}${MANIFEST_SUFFIX} cannot be read in ${where} (${why(manifestRead)}); use another base backup`);
  if (recorded.manifest !== null && createHash("sha256").update(manifestRead).digest("hex") !== recorded.manifest) {
    throw distrust(`${name}: manifest ${name}${MANIFEST_SUFFIX} was changed after the backup (it does not match ${name}${CHECKSUM_SUFFIX}); use another base backup`);
  }
  let manifest: BaseManifest;
  try {
    manifest = parseBaseManifest(manifestRead.toString("utf8"), `${where}/${name}${MANIFEST_SUFFIX}`, name);
  } catch (err) {
    throw refuse(`${name}: ${(err as Error).message}`, err);
  }
  if (manifest.sha256 !== recorded.data) throw distrust(`${name}: the .sha256 sidecar and the manifest disagree about the file's sha256; use another base backup`);
  return {
    name,
    manifest,
    expect: { name, chunks: manifest.chunks ?? null, sha256: recorded.data },
    signed: verifyKey !== null,
    sidecars: { checksum, signature: isBytes(signature) ? signature : null, manifest: manifestRead },
  };
}

/** The checked manifest and read expectation of the base backup at `path`; throws exit 4 naming the file and the fix. */
export async function trustBase(path: string, verifyKey: KeyObject | null): Promise<TrustedBase> {
  const [checksum, signature, manifest] = await Promise.all([
    readSidecar(path + CHECKSUM_SUFFIX, SIDECAR_MAX_BYTES, readSmallBytes),
    readSidecar(path + SIGNATURE_SUFFIX, SIDECAR_MAX_BYTES, readSmallBytes),
    readSidecar(path + MANIFEST_SUFFIX, MANIFEST_MAX_BYTES, readBounded),
  ]);
  return { ...trustBaseBytes(basename(path), { checksum, signature, manifest }, verifyKey, dirname(path)), path };
}
