// What the S3 mirror holds, read from object names and remote manifests the way
// lib/store/catalog.ts reads BACKUP_DIR, and the pure comparison that decides what to upload.
import { join } from "node:path";
import type { _Object } from "@aws-sdk/client-s3";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import type { CatalogEntry } from "../store/catalog.js";
import { tierDir } from "../store/catalog.js";
import { ExitCode } from "../core/errors.js";
import type { Manifest } from "../store/manifest.js";
import { MANIFEST_MAX_BYTES, ManifestInvalid, manifestSizeProblem, parseManifest } from "../store/manifest.js";
import type { Tier } from "../store/naming.js";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX, SIDECAR_SUFFIXES, SIGNATURE_SUFFIX, TIERS, parseBackupName } from "../store/naming.js";
import type { MirrorTarget } from "./client.js";
import { ObjectTooLarge, getText, keyPrefix, objectKey, s3Failure, s3Url } from "./client.js";
import { mapLimit } from "../core/concurrency.js";

export interface RemoteBackup {
  name: string;
  tier: Tier;
  /** Key of the data object. */
  key: string;
  /** From the name; the manifest holds the exact time. */
  time: Date;
  /** Size of the data object, or null when only sidecars are there. */
  bytes: number | null;
  hasChecksum: boolean;
  /** The .sha256.sig is there; unsigned backups are complete too (restores decide whether to accept them). */
  hasSignature: boolean;
  hasManifest: boolean;
  /** Why this remote backup is incomplete, or null. */
  problem: string | null;
}

/** Groups listed keys under S3_PREFIX into backups; keys that are not backup files are ignored. */
export function groupRemote(prefix: string, objects: readonly Pick<_Object, "Key" | "Size">[]): RemoteBackup[] {
  const byName = new Map<string, RemoteBackup>();
  for (const o of objects) {
    const rel = (o.Key ?? "").slice(prefix.length);
    const m = /^(full|differential|incremental)\/([^/]+)$/.exec(rel);
    if (m === null || !(o.Key ?? "").startsWith(prefix)) continue;
    const [, folder, file] = m as unknown as [string, Tier, string];
    const suffix = SIDECAR_SUFFIXES.find((s) => file.endsWith(s)) ?? "";
    const name = file.slice(0, file.length - suffix.length);
    const parsed = parseBackupName(name);
    if (parsed === null || parsed.tier !== folder) continue;
    const entry = byName.get(name) ?? { name, tier: parsed.tier, key: `${prefix}${folder}/${name}`, time: parsed.time, bytes: null, hasChecksum: false, hasSignature: false, hasManifest: false, problem: null };
    if (suffix === CHECKSUM_SUFFIX) entry.hasChecksum = true;
    else if (suffix === SIGNATURE_SUFFIX) entry.hasSignature = true;
    else if (suffix === MANIFEST_SUFFIX) entry.hasManifest = true;
    else entry.bytes = o.Size ?? 0;
    byName.set(name, entry);
  }
  for (const e of byName.values()) {
    e.problem = e.bytes === null ? "data object missing" : !e.hasManifest ? `no manifest ${e.name}${MANIFEST_SUFFIX}` : !e.hasChecksum ? `no checksum file ${e.name}${CHECKSUM_SUFFIX}` : null;
  }
  return [...byName.values()].sort((a, b) => a.time.getTime() - b.time.getTime() || a.name.localeCompare(b.name));
}

/**
 * Every backup under S3_PREFIX, oldest first, from a paginated LIST of each tier's folder (no
 * GETs): the physical tier's base/, wal/ and wal-partial/ beside them can hold thousands of keys
 * that a listing of the whole prefix would page through.
 */
export async function listRemote(t: MirrorTarget): Promise<RemoteBackup[]> {
  const prefix = keyPrefix(t.s3);
  const objects: _Object[] = [];
  try {
    for (const tier of TIERS) {
      let token: string | undefined;
      do {
        const r = await t.client.send(new ListObjectsV2Command({ Bucket: t.s3.bucket, Prefix: `${prefix}${tier}/`, ContinuationToken: token }));
        objects.push(...(r.Contents ?? []));
        token = r.IsTruncated === true ? r.NextContinuationToken : undefined;
      } while (token !== undefined);
    }
  } catch (err) {
    throw await s3Failure(t.s3, t.client, `listing of ${s3Url(t.s3, prefix)}`, err, ExitCode.mirrorFailed);
  }
  return groupRemote(prefix, objects);
}

export type UsableEntry = CatalogEntry & { manifest: Manifest };

export interface MirrorPlan {
  upload: { backup: UsableEntry; reason: string }[];
  inSync: UsableEntry[];
  /** Local backups that are not uploaded because they are unusable themselves. */
  skipped: { name: string; reason: string }[];
}

/**
 * Which usable local backups S3 lacks or holds differently (by LIST: presence and size).
 * `signed`: names of local backups that have a .sha256.sig, which S3 must hold too.
 */
export function planMirror(local: readonly CatalogEntry[], remote: readonly RemoteBackup[], signed: ReadonlySet<string> = new Set()): MirrorPlan {
  const byName = new Map(remote.map((r) => [r.name, r]));
  const plan: MirrorPlan = { upload: [], inSync: [], skipped: [] };
  for (const e of local) {
    if (e.problem !== null || e.manifest === null) {
      plan.skipped.push({ name: e.name, reason: e.problem ?? "no manifest" });
      continue;
    }
    const backup = e as UsableEntry;
    const r = byName.get(e.name);
    const reason =
      r === undefined ? "not in S3"
      : r.bytes === null ? "data object missing in S3"
      : r.bytes !== e.bytes ? `size in S3 differs (${r.bytes} bytes, local ${e.bytes})`
      : !r.hasChecksum || !r.hasManifest ? "sidecars missing in S3"
      : signed.has(e.name) && !r.hasSignature ? "signature missing in S3"
      : null;
    if (reason === null) plan.inSync.push(backup);
    else plan.upload.push({ backup, reason });
  }
  return plan;
}

/** The remote manifest of a backup, or why it cannot be used (missing, too large, not valid JSON, failing the schema). */
export async function readRemoteManifest(t: MirrorTarget, r: Pick<RemoteBackup, "name" | "tier">): Promise<{ manifest: Manifest; problem: null } | { manifest: null; problem: string }> {
  const key = objectKey(t.s3, r.tier, r.name) + MANIFEST_SUFFIX;
  let text: string | null;
  try {
    text = await getText(t, key, MANIFEST_MAX_BYTES);
  } catch (err) {
    if (err instanceof ObjectTooLarge) return { manifest: null, problem: `invalid manifest in S3: ${manifestSizeProblem(err.bytes) ?? err.message}` };
    throw await s3Failure(t.s3, t.client, `download of ${s3Url(t.s3, key)}`, err, ExitCode.failed);
  }
  if (text === null) return { manifest: null, problem: `no manifest ${r.name}${MANIFEST_SUFFIX} in S3` };
  try {
    return { manifest: parseManifest(text, s3Url(t.s3, key), r.name), problem: null };
  } catch (err) {
    return { manifest: null, problem: err instanceof ManifestInvalid ? `invalid manifest in S3: ${err.reason}` : (err as Error).message };
  }
}

/**
 * The remote backups as catalog entries (manifests fetched, 8 at a time), each `path` being
 * where downloadBackup would put it in BACKUP_DIR — so the restore planner can plan over S3.
 */
export async function remoteCatalog(t: MirrorTarget, backupDir: string, remote?: readonly RemoteBackup[]): Promise<CatalogEntry[]> {
  const list = remote ?? (await listRemote(t));
  const out = await mapLimit(list, 8, async (r): Promise<CatalogEntry> => {
    const read = r.problem === null ? await readRemoteManifest(t, r) : null;
    const manifest = read?.manifest ?? null;
    return {
      name: r.name,
      tier: r.tier,
      path: join(tierDir(backupDir, r.tier), r.name),
      time: manifest !== null ? new Date(manifest.startedAt) : r.time,
      parent: manifest?.parent ?? null,
      manifest,
      problem: r.problem ?? read?.problem ?? null,
      bytes: r.bytes ?? 0,
    };
  });
  return out.sort((a, b) => a.time.getTime() - b.time.getTime() || a.name.localeCompare(b.name));
}

/**
 * Local and remote catalogs as one, oldest first. A backup in both is the local one unless
 * only the remote copy is usable (a lost or broken local manifest: S3 can repair that).
 */
export function mergeCatalogs(local: readonly CatalogEntry[], remote: readonly CatalogEntry[]): CatalogEntry[] {
  const merged = new Map(local.map((e) => [e.name, e]));
  for (const r of remote) {
    const l = merged.get(r.name);
    if (l === undefined || (l.problem !== null && r.problem === null)) merged.set(r.name, r);
  }
  return [...merged.values()].sort((a, b) => a.time.getTime() - b.time.getTime() || a.name.localeCompare(b.name));
}
