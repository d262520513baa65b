// Backup signatures: NAME.sha256.sig holds the raw 64-byte Ed25519 signature over the exact
// bytes of NAME.sha256, which lists the sha256 of the data file and of its manifest. So
// `openssl pkeyutl -verify -pubin -inkey verify.pem -rawin -in NAME.sha256 -sigfile NAME.sha256.sig`
// and `sha256sum -c NAME.sha256` check a backup with stock tools. Checksums catch corruption;
// only the signature tells our backups from files someone else put on the share.
import { sign, verify } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { basename } from "node:path";
import { errnoCode } from "../core/errors.js";
import type { ChecksumVerdict } from "./checksum.js";
import { SIDECAR_MAX_BYTES, parseChecksumFile, verifyChecksum } from "./checksum.js";
import { readSmallBytes } from "../core/noFollow.js";
import { CHECKSUM_SUFFIX, SIGNATURE_SUFFIX } from "./naming.js";

export function signChecksumFile(checksumText: string, key: KeyObject): Buffer {
  return sign(null, Buffer.from(checksumText, "utf8"), key);
}

/** Why a signature is missing: the backup was written without a signing key, or by someone else. */
export const UNSIGNED = "is missing: the backup is unsigned (written without BACKUP_SIGNING_KEY_FILE) or forged";

export type SignatureVerdict = { ok: true; sidecar: Buffer } | { ok: false; missing: boolean; problem: string };

const FIX = "restore only backups signed with the key whose public half BACKUP_VERIFY_KEY_FILE holds; if this backup is yours and predates signing, take a new signed full (`backup full`) or unset BACKUP_VERIFY_KEY_FILE for this one run";

/**
 * Checks the signature of the backup at `path` and returns the .sha256 bytes it covers, so
 * the caller hashes against exactly what was verified. A signed .sha256 must list the
 * manifest: every signed backup we write does, and the manifest steers the restore too.
 */
export async function checkSignature(path: string, key: KeyObject): Promise<SignatureVerdict> {
  const name = basename(path);
  let sidecar: Buffer;
  try {
    sidecar = await readSmallBytes(path + CHECKSUM_SUFFIX, SIDECAR_MAX_BYTES);
  } catch (err) {
    return { ok: false, missing: true, problem: unsignedProblem(name, "checksum", errnoCode(err) ?? "unreadable") };
  }
  let signature: Buffer;
  try {
    signature = await readSmallBytes(path + SIGNATURE_SUFFIX, SIDECAR_MAX_BYTES);
  } catch (err) {
    const why = errnoCode(err) === "ENOENT" ? UNSIGNED : `cannot be read (${errnoCode(err) ?? "error"})`;
    return { ok: false, missing: true, problem: unsignedProblem(name, "signature", why) };
  }
  return checkSignatureBytes(name, sidecar, signature, key);
}

/**
 * The signature verdict over a .sha256's bytes already read (from BACKUP_DIR or the bucket):
 * whether `signature` is the verify key's over exactly `sidecar`, which must list the manifest. Pure.
 */
export function checkSignatureBytes(name: string, sidecar: Buffer, signature: Buffer, key: KeyObject): SignatureVerdict {
  // verify() throws on some malformed signatures instead of returning false; either way it does not match.
  let valid = false;
  try {
    valid = verify(null, sidecar, key, signature);
  } catch {
    valid = false;
  }
  if (!valid) {
    return {
      ok: false,
      missing: false,
      problem: `${name}: signature ${name}${SIGNATURE_SUFFIX} does not match: ${name}${CHECKSUM_SUFFIX} was changed after signing, or another key signed it; ${FIX}`,
    };
  }
  const parsed = parseChecksumFile(sidecar.toString("utf8"), name);
  if (typeof parsed !== "string" && parsed.manifest === null) {
    return { ok: false, missing: false, problem: `${name}: the signed ${name}${CHECKSUM_SUFFIX} does not cover the manifest; ${FIX}` };
  }
  return { ok: true, sidecar };
}

/** Why a backup whose sidecars are missing is not signed: the problem text checkSignature gives. */
export function unsignedProblem(name: string, what: "checksum" | "signature", why: string): string {
  return what === "checksum"
    ? `${name}: checksum file ${name}${CHECKSUM_SUFFIX} is missing (${why}), so nothing is signed; ${FIX}`
    : `${name}: signature ${name}${SIGNATURE_SUFFIX} ${why}; ${FIX}`;
}

/**
 * What restores, list-databases and cleanup trust a backup by: with a verify key, the
 * signature first and then the checksums of the very bytes it covers; without one, the
 * checksums alone (as before signing existed). `dataSha`: the data file's hash, when the
 * caller hashed it while reading it anyway.
 */
export async function verifyBackupFile(path: string, manifestSha: string | undefined, verifyKey: KeyObject | null, dataSha?: string): Promise<ChecksumVerdict> {
  if (verifyKey === null) return verifyChecksum(path, manifestSha, undefined, dataSha);
  const signed = await checkSignature(path, verifyKey);
  if (!signed.ok) return { ok: false, problem: signed.problem };
  return verifyChecksum(path, manifestSha, signed.sidecar, dataSha);
}
