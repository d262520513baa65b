// The WAL archive on disk: $BACKUP_DIR/wal/ as pg_receivewal or basic_archive fill it. The
// folder is shared like the rest of BACKUP_DIR, so it is listed without following symlinks,
// names are parsed strictly (layout.ts), and anything else is reported as ignored, never
// touched. The decisions on top (range, gaps, which file to restore) are pure: range.ts,
// continuity.ts, resolveFile.ts.
import type { Dirent } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { mapLimit } from "../core/concurrency.js";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import { symlinkRefusal } from "../core/noFollow.js";
import { WAL_IDENTITY_MARKER, parseWalName, signedWalName, walDir } from "../physical/layout.js";
import type { WalFile } from "../physical/layout.js";
import { parseTimelineHistory } from "./timelineHistory.js";
import type { TimelineHistory } from "./timelineHistory.js";
import { readWalFile } from "./readFile.js";
import type { WalTrust } from "./readFile.js";
import type { WalStatement } from "./signature.js";

export type SegmentFile = Extract<WalFile, { kind: "segment" }>;
export type HistoryFile = Extract<WalFile, { kind: "history" }>;
export type BackupLabelFile = Extract<WalFile, { kind: "backup-label" }>;

export interface WalEntry<F extends WalFile = WalFile> {
  file: F;
  path: string;
  size: number;
  mtime: Date;
}

export interface WalListing {
  dir: string;
  /** By timeline, then position; a complete file before a .partial of the same segment. */
  segments: WalEntry<SegmentFile>[];
  /** By timeline. */
  histories: WalEntry<HistoryFile>[];
  backupLabels: WalEntry<BackupLabelFile>[];
  /** The `<name>.sig` signature files (regular files) in wal/, by name; whether they verify is for the reader to check. */
  signatures: Set<string>;
  /** Names that do not parse, symlinks and anything not a regular file. */
  ignored: string[];
}

/** History files are a few lines per timeline switch. */
export const MAX_HISTORY_BYTES = 1 << 20;
const STAT_CONCURRENCY = 16;

function storageError(dir: string, err: unknown): TaskError {
  return new TaskError(ExitCode.storage, `WAL folder ${dir} cannot be read (${errnoCode(err) ?? (err as Error).message}); check the storage mount and that the task user may read it`, { cause: err });
}

/** Lists wal/; a missing folder is an empty listing (no WAL archived yet). */
export function listWalArchive(backupDir: string): Promise<WalListing> {
  return listWalFolder(walDir(backupDir));
}

/** Lists a folder of WAL files (wal/, or wal-receive's spool) as listWalArchive does. */
export async function listWalFolder(dir: string): Promise<WalListing> {
  const out: WalListing = { dir, segments: [], histories: [], backupLabels: [], signatures: new Set(), ignored: [] };
  let dirents: Dirent[];
  try {
    const st = await lstat(dir);
    if (st.isSymbolicLink()) throw symlinkRefusal(ExitCode.storage, "WAL folder", dir);
    dirents = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if (err instanceof TaskError) throw err;
    if (errnoCode(err) === "ENOENT") return out;
    throw storageError(dir, err);
  }
  const candidates: { name: string; file: WalFile }[] = [];
  for (const d of dirents) {
    if (d.isFile() && signedWalName(d.name) !== null) {
      out.signatures.add(d.name);
      continue;
    }
    const file = d.isFile() ? parseWalName(d.name) : null;
    if (file !== null) candidates.push({ name: d.name, file });
    // wal-receive's own files: its identity marker and pending bucket moves (lib/receiver/).
    else if (d.name !== WAL_IDENTITY_MARKER && !d.name.startsWith(".pgsb-bucket-replaced-")) out.ignored.push(d.name);
  }
  const entries = await mapLimit(candidates, STAT_CONCURRENCY, async ({ name, file }) => {
    const path = join(dir, name);
    try {
      const st = await lstat(path);
      return st.isFile() ? { file, path, size: st.size, mtime: st.mtime } : null;
    } catch (err) {
      // pg_receivewal renames X.partial to X as it completes a segment, and cleanup deletes.
      if (errnoCode(err) === "ENOENT") return null;
      throw storageError(dir, err);
    }
  });
  for (const e of entries) {
    if (e === null) continue;
    if (e.file.kind === "segment") out.segments.push(e as WalEntry<SegmentFile>);
    else if (e.file.kind === "history") out.histories.push(e as WalEntry<HistoryFile>);
    else out.backupLabels.push(e as WalEntry<BackupLabelFile>);
  }
  out.segments.sort((a, b) => a.file.timeline - b.file.timeline || cmp(a.file.segment, b.file.segment) || Number(a.file.partial) - Number(b.file.partial));
  out.histories.sort((a, b) => a.file.timeline - b.file.timeline);
  out.backupLabels.sort((a, b) => a.file.timeline - b.file.timeline || cmp(a.file.segment, b.file.segment));
  out.ignored.sort();
  return out;
}

function cmp(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const NO_TRUST: WalTrust = { verifyKey: null, identity: null, env: process.env };

export interface HistoryRead {
  entry: WalEntry<HistoryFile>;
  /** The file's text as recovery reads it (decrypted, decompressed): staged from these bytes. */
  text: Buffer;
  history: TimelineHistory;
  /** The signed statement the file matched (with a verify key); its system identifier is checked against the base backup's. */
  statement: WalStatement | null;
  /** With a verify key: why its signature does not vouch for it. Only a restore that stages the file is refused for it. */
  untrusted: string | null;
}

/**
 * The listing's .history files, each read once: signature (with a verify key: its verdict is
 * kept, since only the files a restore stages must be signed), decryption and decompression on
 * those bytes, then parsed. A malformed one is a storage problem naming the file (exit 9); an
 * undecryptable one a refusal (exit 4).
 */
export async function readHistoryFiles(listing: WalListing, trust: WalTrust = NO_TRUST): Promise<HistoryRead[]> {
  const out: HistoryRead[] = [];
  for (const h of listing.histories) {
    const read = await readWalFile(h.path, h.file, trust, { maxBytes: MAX_HISTORY_BYTES, systemIdentifier: null, partial: false, reportUntrusted: true });
    try {
      out.push({ entry: h, text: read.data, history: parseTimelineHistory(read.data.toString("utf8")), statement: read.statement, untrusted: read.untrusted });
    } catch (err) {
      throw new TaskError(ExitCode.storage, `timeline history file ${h.path} is malformed (${(err as Error).message}); copy ${h.file.name} from the server's pg_wal/`, { cause: err });
    }
  }
  return out;
}

/** The listing's .history files parsed, by timeline (see readHistoryFiles). */
export async function readTimelineHistories(listing: WalListing, trust: WalTrust = NO_TRUST): Promise<Map<number, TimelineHistory>> {
  return historiesByTimeline(await readHistoryFiles(listing, trust));
}

/** By timeline; of two files for one timeline (compressed and not, plain and encrypted) the one listed last. Pure. */
export function historiesByTimeline(reads: readonly HistoryRead[]): Map<number, TimelineHistory> {
  return new Map(reads.map((r) => [r.entry.file.timeline, r.history]));
}
