// What a reader may trust about a backup before it reads the data, read once from its
// sidecars: with BACKUP_VERIFY_KEY_FILE the signature over the .sha256 first (nothing else of
// the backup is looked at before it verified), then the manifest's bytes, hashed against the
// signed .sha256 and parsed from those same bytes, so the manifest that steers a restore
// plan is exactly the one signed. Without a verify key the same reads give integrity only
// (checksums): anyone who can write BACKUP_DIR can write all three files.
// The result says what the data file's bytes must be: its chunk hashes, else its whole sha256
// (lib/store/verifiedRead.ts checks them in the one read that acts on them).
import { createHash } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { errnoCode } from "../core/errors.js";
import { readSmallBytes } from "../core/noFollow.js";
import type { ChecksumFile } from "./checksum.js";
import { SIDECAR_MAX_BYTES, parseChecksumFile } from "./checksum.js";
import type { Manifest } from "./manifest.js";
import { ManifestInvalid, parseManifest, readManifestBytes } from "./manifest.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX } from "./naming.js";
import { checkSignature } from "./signature.js";
import type { Expectation } from "./verifiedRead.js";

export interface TrustedBackup {
  /** Parsed from the bytes the .sha256 (and with a verify key its signature) covers; null for a file without one. */
  manifest: Manifest | null;
  /** What the data file's bytes must be. */
  expect: Expectation;
  /** The .sha256 was signed with the verify key's private half. */
  signed: boolean;
}

/**
 * untrusted: its signature or checksums say the sidecars are not the ones written (unsigned with a
 * verify key, forged, changed after the backup), which a restore never passes over quietly;
 * otherwise it is merely unusable (no .sha256, a manifest that is too big or breaks the schema).
 */
export type TrustVerdict = ({ ok: true } & TrustedBackup) | { ok: false; problem: string; untrusted: boolean };

/**
 * Reads the sidecars of the backup at `path` (data file `name`). `manifestPresent`: whether a
 * manifest beside it is expected (from the folder's listing); a file without one is a seed-era
 * backup, readable only without a verify key.
 */
export async function readTrusted(path: string, name: string, verifyKey: KeyObject | null, manifestPresent: boolean): Promise<TrustVerdict> {
  let sidecar: Buffer;
  if (verifyKey !== null) {
    const signed = await checkSignature(path, verifyKey);
    if (!signed.ok) return { ok: false, problem: signed.problem, untrusted: true };
    sidecar = signed.sidecar;
  } else {
    try {
      sidecar = await readSmallBytes(path + CHECKSUM_SUFFIX, SIDECAR_MAX_BYTES);
    } catch (err) {
      return { ok: false, problem: `no checksum file ${name}${CHECKSUM_SUFFIX} (${errnoCode(err) ?? "unreadable"})`, untrusted: false };
    }
  }
  const sums: ChecksumFile | string = parseChecksumFile(sidecar.toString("utf8"), name);
  if (typeof sums === "string") return { ok: false, problem: sums, untrusted: false };
  let manifest: Manifest | null = null;
  if (manifestPresent || sums.manifest !== null) {
    const where = `${name}${MANIFEST_SUFFIX}`;
    let bytes: Buffer;
    try {
      bytes = await readManifestBytes(path + MANIFEST_SUFFIX);
    } catch (err) {
      if (err instanceof ManifestInvalid) return { ok: false, problem: `invalid manifest: ${err.reason}`, untrusted: false };
      const why = errnoCode(err) === "ELOOP" ? "it is a symlink and was not read" : `it cannot be read (${errnoCode(err) ?? (err as Error).message})`;
      return { ok: false, problem: `manifest ${where}: ${why}`, untrusted: false };
    }
    if (sums.manifest !== null) {
      const actual = createHash("sha256").update(bytes).digest("hex");
      if (actual !== sums.manifest) return { ok: false, problem: `${name}: manifest ${where} was changed after the backup (file ${actual.slice(0, 12)}…, recorded ${sums.manifest.slice(0, 12)}…)`, untrusted: true };
    }
    try {
      manifest = parseManifest(bytes.toString("utf8"), where, name);
    } catch (err) {
      return { ok: false, problem: `invalid manifest: ${err instanceof ManifestInvalid ? err.reason : (err as Error).message}`, untrusted: false };
    }
    if (manifest.sha256 !== sums.data) return { ok: false, problem: `${name}: the .sha256 sidecar and the manifest disagree`, untrusted: true };
  }
  return { ok: true, manifest, signed: verifyKey !== null, expect: { name, chunks: manifest?.chunks ?? null, sha256: sums.data } };
}
