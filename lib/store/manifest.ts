// The manifest written beside every backup (<name>.json). Readers trust a backup only when
// its manifest is small enough, parses and passes the schema (./manifestSchema.ts); everything
// else is "invalid" with the reason.
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import type { Codec } from "../core/codec.js";
import type { Tier } from "./naming.js";
import type { ChunkList } from "./chunks.js";
import { manifestProblem } from "./manifestSchema.js";

export { MANIFEST_FORMAT, manifestProblem } from "./manifestSchema.js";

/** Per-database change fingerprint, taken before the dump starts (see lib/backup/fingerprint.ts). */
export interface DatabaseFingerprint {
  oid: number;
  /** Hash over per-table write counters, sequence positions and the stats reset time. */
  hash: string;
  /** User objects in the database (lib/postgres/wipedCluster.ts); absent in manifests written before it was recorded. */
  userObjects?: number;
}

export interface Fingerprint {
  /** Hash of the shared catalogs: roles, memberships, role settings, tablespaces, database list/ACLs. */
  globals: string;
  /** Changes when the statistics system lost its counters (crash restart, reset of shared stats). */
  statsEpoch: string;
  databases: Record<string, DatabaseFingerprint>;
}

export interface Manifest {
  format: number;
  tool: { name: string; version: string };
  name: string;
  tier: Tier;
  /** The backup this one is relative to: null for a full; the full for a differential; the newest backup for an incremental. */
  parent: string | null;
  startedAt: string;
  finishedAt: string;
  serverVersion: string;
  pgDumpVersion: string;
  systemIdentifier: string;
  compression: { codec: Codec; program: string; level: number | null };
  rawBytes: number;
  compressedBytes: number;
  sha256: string;
  /** sha256 of every chunk of the stored file, checked as a restore reads it; absent in manifests written before chunk lists. */
  chunks?: ChunkList;
  fingerprint: Fingerprint;
  /** Every database that existed when the backup started (template0 excluded). */
  databases: string[];
  /** The databases whose sections this file holds. */
  included: string[];
  /** Rows per table as counted in the dump stream: rowCounts[db]["schema.table"]. Empty for an encrypted backup (sealed below). */
  rowCounts: Record<string, Record<string, number>>;
  /** Only for an encrypted (.age) backup. */
  encryption?: ManifestEncryption;
}

export interface ManifestEncryption {
  tool: "age";
  /** The public keys the file was encrypted to. */
  recipients: string[];
  /** {"rowCounts": …} as JSON, age-encrypted to the same recipients, armored (age -a): table names and counts stay as secret as the data. */
  sealed: string;
}

/**
 * The largest manifest read. Row counts dominate its size (one pretty-printed line per table):
 * 100 000 tables whose schema and table names both have PostgreSQL's maximum 63 bytes write
 * 14.9 MB, which `list` reads in about 0.5 s and 110 MB. 32 MiB fits twice that worst case
 * (about 400 000 tables with ordinary names) and keeps one manifest's cost to seconds and a
 * few hundred MB; a planted 300 MB manifest is refused by its size, unread.
 */
export const MANIFEST_MAX_BYTES = 32 * 1024 * 1024;

/** Why a manifest of `bytes` is not read, or null when its size is fine. */
export function manifestSizeProblem(bytes: number): string | null {
  return bytes > MANIFEST_MAX_BYTES ? `it is ${bytes} bytes, more than the ${MANIFEST_MAX_BYTES} a manifest may have; it was not read` : null;
}

/** A manifest that makes its backup unusable; `reason` says why without the path. */
export class ManifestInvalid extends Error {
  constructor(
    where: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${where}: ${reason}`, options);
    this.name = "ManifestInvalid";
  }
}

/** A manifest's text checked against the schema; throws ManifestInvalid with the reason it is unusable. */
export function parseManifest(text: string, where: string, fileName?: string): Manifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ManifestInvalid(where, `not valid JSON (${(err as Error).message}); the backup is unusable until it is rewritten or removed`, { cause: err });
  }
  const problem = manifestProblem(parsed, fileName);
  if (problem !== null) throw new ManifestInvalid(where, problem);
  return parsed as Manifest;
}

/**
 * Reads at most MANIFEST_MAX_BYTES + 1 bytes, whatever the size said at open (a file may grow),
 * and never blocks on a FIFO planted under a manifest's name. Also reads the physical tier's
 * base manifests (lib/base/manifest.ts); throws ManifestInvalid.
 */
export async function readManifestText(path: string): Promise<string> {
  return (await readManifestBytes(path)).toString("utf8");
}

/** The bytes of a manifest, read as readManifestText describes, never through a symlink: what a checksum is taken of and what is parsed. */
export async function readManifestBytes(path: string): Promise<Buffer> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  try {
    const info = await fh.stat();
    if (!info.isFile()) throw new ManifestInvalid(path, "not a regular file");
    const tooBig = manifestSizeProblem(info.size);
    if (tooBig !== null) throw new ManifestInvalid(path, tooBig);
    const buf = Buffer.alloc(Math.min(info.size, MANIFEST_MAX_BYTES) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, length, buf.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buf.length) {
        if (length > MANIFEST_MAX_BYTES) throw new ManifestInvalid(path, manifestSizeProblem(length) ?? "");
        break;
      }
    }
    return buf.subarray(0, length);
  } finally {
    await fh.close();
  }
}

export async function readManifest(path: string, expectedName?: string): Promise<Manifest> {
  return parseManifest(await readManifestText(path), path, expectedName);
}
