// The base backups in the bucket (S3_PREFIX/base/), read the way lib/base/catalog.ts reads
// BACKUP_DIR/base and trusted the way restore-pitr trusts a local one (pitr/trustedBase.ts):
// names parsed strictly, the sidecars fetched with a size cap, with a verify key the signature
// over the .sha256 checked before the manifest is looked at, and the manifest parsed from the
// bytes the .sha256 covers. A base backup whose manifest has not arrived is incomplete (uploads
// send it last) and ignored, as a local one without a manifest is.
import type { KeyObject } from "node:crypto";
import { ExitCode } from "../core/errors.js";
import { mapLimit } from "../core/concurrency.js";
import { parseBaseName } from "../physical/layout.js";
import type { BaseManifest } from "../physical/layout.js";
import type { MirrorTarget } from "../s3/client.js";
import { ObjectTooLarge, getBytes, keyPrefix, physicalKey, s3Failure, s3Url } from "../s3/client.js";
import type { ListedObject } from "../s3/objects.js";
import { listObjects } from "../s3/objects.js";
import { SIDECAR_MAX_BYTES } from "../store/checksum.js";
import { MANIFEST_MAX_BYTES } from "../store/manifest.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX, SIDECAR_SUFFIXES, SIGNATURE_SUFFIX } from "../store/naming.js";
import { BaseRefusal, trustBaseBytes } from "../pitr/trustedBase.js";
import type { SidecarRead, TrustedBase } from "../pitr/trustedBase.js";

export interface RemoteBase {
  name: string;
  /** The data object's key. */
  key: string;
  /** From the name (the backup's start); the manifest holds the exact times. */
  time: Date;
  /** Size of the data object, or null when only sidecars are there. */
  bytes: number | null;
  hasChecksum: boolean;
  hasSignature: boolean;
  hasManifest: boolean;
}

/** A remote base backup as restore-pitr, list and the prune plan see it. */
export interface RemoteBaseEntry extends RemoteBase {
  /** Its sidecars checked (with a verify key, its signature): what a restore extracts it by. */
  trusted: Omit<TrustedBase, "path"> | null;
  manifest: BaseManifest | null;
  /** Why it cannot be used, or null. */
  problem: string | null;
  /** Its signature or checksums say the sidecars are not the ones written: a restore never passes over it quietly. */
  untrusted: boolean;
}

/** Groups listed keys under S3_PREFIX/base/ into base backups, oldest first; other names are ignored. Pure. */
export function groupRemoteBases(prefix: string, objects: readonly Pick<ListedObject, "key" | "size">[]): RemoteBase[] {
  const byName = new Map<string, RemoteBase>();
  for (const o of objects) {
    if (!o.key.startsWith(prefix)) continue;
    const file = o.key.slice(prefix.length);
    const suffix = SIDECAR_SUFFIXES.find((s) => file.endsWith(s)) ?? "";
    const name = file.slice(0, file.length - suffix.length);
    const parsed = parseBaseName(name);
    if (parsed === null) continue;
    const b = byName.get(name) ?? { name, key: prefix + name, time: parsed.time, bytes: null, hasChecksum: false, hasSignature: false, hasManifest: false };
    if (suffix === CHECKSUM_SUFFIX) b.hasChecksum = true;
    else if (suffix === SIGNATURE_SUFFIX) b.hasSignature = true;
    else if (suffix === MANIFEST_SUFFIX) b.hasManifest = true;
    else b.bytes = o.size;
    byName.set(name, b);
  }
  return [...byName.values()].sort((a, b) => a.time.getTime() - b.time.getTime() || a.name.localeCompare(b.name));
}

/** The base backups in S3_PREFIX/base/ (one paginated LIST). S3 errors are thrown. */
export async function listRemoteBases(t: MirrorTarget): Promise<RemoteBase[]> {
  const prefix = `${keyPrefix(t.s3)}base/`;
  return groupRemoteBases(prefix, await listObjects(t, prefix));
}

async function sidecar(t: MirrorTarget, key: string, max: number): Promise<SidecarRead> {
  try {
    return await getBytes(t, key, max);
  } catch (err) {
    if (err instanceof ObjectTooLarge) return { problem: err.message };
    throw err;
  }
}

/**
 * Fetches and checks the sidecars of one remote base backup: the .sha256, with a verify key its
 * .sig, and the manifest (each at most its cap). S3 errors are thrown as exit `exitCode`.
 */
export async function readRemoteBase(t: MirrorTarget, b: RemoteBase, verifyKey: KeyObject | null, exitCode: (typeof ExitCode)[keyof typeof ExitCode] = ExitCode.failed): Promise<RemoteBaseEntry> {
  const incomplete = b.bytes === null ? "data object missing" : !b.hasManifest ? `no manifest ${b.name}${MANIFEST_SUFFIX} (its upload has not finished)` : null;
  if (incomplete !== null) return { ...b, trusted: null, manifest: null, problem: incomplete, untrusted: false };
  const key = physicalKey(t.s3, "base", b.name);
  try {
    const [checksum, signature, manifest] = await Promise.all([
      sidecar(t, key + CHECKSUM_SUFFIX, SIDECAR_MAX_BYTES),
      verifyKey === null && !b.hasSignature ? null : sidecar(t, key + SIGNATURE_SUFFIX, SIDECAR_MAX_BYTES),
      sidecar(t, key + MANIFEST_SUFFIX, MANIFEST_MAX_BYTES),
    ]);
    const trusted = trustBaseBytes(b.name, { checksum, signature, manifest }, verifyKey, s3Url(t.s3, `${keyPrefix(t.s3)}base`));
    if (trusted.manifest.compressedBytes !== b.bytes) {
      return { ...b, trusted: null, manifest: null, problem: `${b.name}: the object in S3 is ${b.bytes} bytes, but its manifest records ${trusted.manifest.compressedBytes}`, untrusted: true };
    }
    return { ...b, trusted, manifest: trusted.manifest, problem: null, untrusted: false };
  } catch (err) {
    if (err instanceof BaseRefusal) return { ...b, trusted: null, manifest: null, problem: err.message, untrusted: err.untrusted };
    throw await s3Failure(t.s3, t.client, `download of ${b.name}'s sidecars from ${s3Url(t.s3, key)}`, err, exitCode);
  }
}

/** readRemoteBase for each, 8 at a time, oldest first. */
export function readRemoteBases(t: MirrorTarget, bases: readonly RemoteBase[], verifyKey: KeyObject | null, exitCode?: (typeof ExitCode)[keyof typeof ExitCode]): Promise<RemoteBaseEntry[]> {
  return mapLimit(bases, 8, (b) => readRemoteBase(t, b, verifyKey, exitCode));
}
