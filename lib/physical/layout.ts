// The physical tier's files (issue 19), the contract between `backup base`, `wal-receive`,
// `restore-pitr`, verify, list and cleanup:
//   $BACKUP_DIR/base/YYYYMMDD_HHMMSS_base.tar[.bz2|.zst|.gz][.age]  + .sha256 (+ .sha256.sig) + .json
//   $BACKUP_DIR/wal/<24 hex>[.gz|.lz4][.partial][.age]   segments as pg_receivewal (or basic_archive) writes
//                                                        them; .age: shipped encrypted by wal-receive
//   $BACKUP_DIR/wal/<8 hex>.history[.gz|.lz4][.age]       timeline history files
//   $BACKUP_DIR/wal/<24 hex>.<8 hex>.backup               backup history files (archive_command/basic_archive)
//   $BACKUP_DIR/wal/<any of the above but .backup>.sig    wal-receive's signature of that file (lib/wal/signature.ts)
// Everything in these folders is untrusted input like the rest of BACKUP_DIR: names are
// parsed strictly here, and anything that does not parse is ignored (never deleted).
import { join } from "node:path";
import type { Codec } from "../core/codec.js";
import { CODECS } from "../core/codec.js";
import type { ChunkList } from "../store/chunks.js";

export const BASE_FOLDER = "base";
export const WAL_FOLDER = "wal";

export function baseDir(backupDir: string): string {
  return join(backupDir, BASE_FOLDER);
}

export function walDir(backupDir: string): string {
  return join(backupDir, WAL_FOLDER);
}

const BASE_EXTENSIONS: Record<Codec, string> = { bzip2: ".bz2", zstd: ".zst", gzip: ".gz", none: "" };
const BASE_RE = /^(\d{8})_(\d{6})_base\.tar(\.bz2|\.zst|\.gz)?(\.age)?$/;

export interface ParsedBaseName {
  name: string;
  /** The UTC stamp of the name (the backup's start). */
  time: Date;
  codec: Codec;
  /** `.age` at the end: compressed, then encrypted with age. */
  encrypted: boolean;
}

function stamp(date: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${date.getUTCFullYear()}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}_${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}`;
}

export function baseBackupName(startedAt: Date, codec: Codec, encrypted = false): string {
  return `${stamp(startedAt)}_base.tar${BASE_EXTENSIONS[codec]}${encrypted ? ".age" : ""}`;
}

export function parseBaseName(name: string): ParsedBaseName | null {
  const m = BASE_RE.exec(name);
  if (m === null) return null;
  const [, day, clock, ext, age] = m as unknown as [string, string, string, string | undefined, string | undefined];
  const time = new Date(`${day.slice(0, 4)}-${day.slice(4, 6)}-${day.slice(6, 8)}T${clock.slice(0, 2)}:${clock.slice(2, 4)}:${clock.slice(4, 6)}Z`);
  if (Number.isNaN(time.getTime()) || stamp(time) !== `${day}_${clock}`) return null;
  const codec = CODECS.find((c) => BASE_EXTENSIONS[c] === (ext ?? "")) as Codec;
  return { name, time, codec, encrypted: age !== undefined };
}

/** How a WAL file in wal/ is compressed: pg_receivewal's gzip or lz4, or none (basic_archive, uncompressed receivewal). */
export type WalCompression = "gzip" | "lz4" | "none";

/**
 * `encrypted`: age-encrypted by wal-receive after compression (AGE_RECIPIENTS_FILE), the
 * logical tiers' order: `000000010000000000000003.gz.age`, `…03.gz.partial.age` (a snapshot
 * of the segment being received), `00000002.history.gz.age`.
 */
export type WalFile =
  | { kind: "segment"; name: string; timeline: number; segment: bigint; compression: WalCompression; partial: boolean; encrypted: boolean }
  /** pg_receivewal compresses history files like segments (00000002.history.gz); basic_archive does not. */
  | { kind: "history"; name: string; timeline: number; compression?: WalCompression; encrypted?: boolean }
  | { kind: "backup-label"; name: string; timeline: number; segment: bigint };

/** wal-receive's signature beside each file it archives: `<file name>.sig`. */
export const WAL_SIGNATURE_SUFFIX = ".sig";
/** wal-receive's marker in wal/ and in its spool: the system identifier of the cluster whose WAL the folder holds (lib/receiver/identity.ts). */
export const WAL_IDENTITY_MARKER = ".pgsb-system-identifier";
/** The age extension of an encrypted WAL file. */
export const WAL_ENCRYPTED_SUFFIX = ".age";

const SEGMENT_RE = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.gz|\.lz4)?(\.partial)?(\.age)?$/;
const HISTORY_RE = /^([0-9A-F]{8})\.history(\.gz|\.lz4)?(\.age)?$/;
const BACKUP_RE = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})\.[0-9A-F]{8}\.backup$/;

function compressionOf(ext: string | undefined): WalCompression {
  return ext === ".gz" ? "gzip" : ext === ".lz4" ? "lz4" : "none";
}

/**
 * The segment number counts segments from LSN 0: for a segment size S (bytes), the segment
 * "TTTTTTTTXXXXXXXXYYYYYYYY" is number X * (2^32 / S) + Y. With S unknown here, it is kept as
 * (X, Y) folded with the default 16 MiB ratio only by callers that know S: see segmentNumber().
 */
export function parseWalName(name: string): WalFile | null {
  let m = SEGMENT_RE.exec(name);
  if (m !== null) {
    const [, tli, log, seg, ext, partial, age] = m as unknown as [string, string, string, string, string | undefined, string | undefined, string | undefined];
    const segment = (BigInt(`0x${log}`) << 32n) | BigInt(`0x${seg}`);
    return { kind: "segment", name, timeline: parseInt(tli, 16), segment, compression: compressionOf(ext), partial: partial !== undefined, encrypted: age !== undefined };
  }
  m = HISTORY_RE.exec(name);
  if (m !== null) return { kind: "history", name, timeline: parseInt(m[1] as string, 16), compression: compressionOf(m[2]), encrypted: m[3] !== undefined };
  m = BACKUP_RE.exec(name);
  if (m !== null) {
    const [, tli, log, seg] = m as unknown as [string, string, string, string];
    return { kind: "backup-label", name, timeline: parseInt(tli, 16), segment: (BigInt(`0x${log}`) << 32n) | BigInt(`0x${seg}`) };
  }
  return null;
}

/** The WAL file a `<name>.sig` signature belongs to (a segment or history file), or null for any other name. */
export function signedWalName(name: string): WalFile | null {
  if (!name.endsWith(WAL_SIGNATURE_SUFFIX)) return null;
  const file = parseWalName(name.slice(0, -WAL_SIGNATURE_SUFFIX.length));
  return file === null || file.kind === "backup-label" ? null : file;
}

/** The 24-hex segment name or NNNNNNNN.history a stored file holds, whatever its compression, encryption or .partial. */
export function walStem(f: WalFile): string {
  return f.kind === "history" ? f.name.slice(0, 16) : f.name.slice(0, 24);
}

/** The (log, seg) pair packed as log<<32|seg, turned into a sequential segment number for a segment size in bytes. */
export function segmentNumber(packed: bigint, segmentSize: number): bigint {
  const perLog = 0x100000000n / BigInt(segmentSize);
  return (packed >> 32n) * perLog + (packed & 0xffffffffn);
}

/** The 24-hex file name of segment number `n` on `timeline`. */
export function segmentName(timeline: number, n: bigint, segmentSize: number): string {
  const perLog = 0x100000000n / BigInt(segmentSize);
  const hex = (v: bigint | number) => v.toString(16).toUpperCase().padStart(8, "0");
  return `${hex(timeline)}${hex(n / perLog)}${hex(n % perLog)}`;
}

/** An LSN as PostgreSQL prints it ("16/B374D848") to a byte position, and back. */
export function parseLsn(text: string): bigint | null {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text);
  return m === null ? null : (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** The segment number holding byte position `lsn`. */
export function segmentOfLsn(lsn: bigint, segmentSize: number): bigint {
  return lsn / BigInt(segmentSize);
}

/**
 * The manifest beside a base backup (NAME.json). Untrusted on read like every manifest: checked by a schema.
 * Format 1 (before chunk lists): rawBytes and backupManifestSha256 always set, no chunks, never encrypted.
 * Format 2: the stored file's chunk hashes; pg_basebackup's output no longer passes through the task, so the
 * raw tar size and the backup_manifest's hash are not known when it is written (null).
 */
export interface BaseManifest {
  format: 1 | 2;
  kind: "base";
  tool: { name: string; version: string };
  name: string;
  startedAt: string;
  finishedAt: string;
  /** pg_basebackup's "write-ahead log start point" and "end point", as PostgreSQL prints LSNs. */
  startLsn: string;
  stopLsn: string;
  timeline: number;
  /** wal_segment_size of the cluster in bytes (16 MiB unless initdb --wal-segsize). */
  walSegmentSize: number;
  systemIdentifier: string;
  serverVersion: string;
  pgBasebackupVersion: string;
  compression: { codec: Codec; program: string; level: number | null };
  /** Bytes of the tar before compression; null in format 2 (the tar goes from pg_basebackup straight into the compressor). */
  rawBytes: number | null;
  compressedBytes: number;
  /** sha256 over the stored (compressed, maybe encrypted) file, as in the .sha256 sidecar. */
  sha256: string;
  /** sha256 of each 8 MiB chunk of the stored file (format 2; lib/store/chunks.ts). */
  chunks?: ChunkList;
  /** Set when the stored file is age-encrypted (its name ends in .age): the public keys it was encrypted to. */
  encryption?: { tool: "age"; recipients: string[] };
  /** sha256 of the backup_manifest that pg_basebackup put into the tar; null in format 2 (its own Manifest-Checksum is checked on read). */
  backupManifestSha256: string | null;
}
