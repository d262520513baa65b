// The WAL a restore needs, copied into the data directory (pgsb_wal/) so restore_command is
// a plain `cp` inside it and the postgres container needs no access to BACKUP_DIR. Each file
// is read once into memory and everything is done on those bytes (lib/wal/readFile.ts):
// with BACKUP_VERIFY_KEY_FILE its signature, then age with AGE_IDENTITY_FILE, then the
// decompressor; a complete segment must come out at exactly the segment size, and the newest
// .partial (the segment being received, its compressed stream not yet ended) is decoded as
// far as it goes and padded with zeros to it, because recovery refuses a restored file of the
// wrong size, and zeros read as the end of WAL. History files were read, checked and decoded
// when the plan was made; their bytes from that read are what is staged.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { createExclusive } from "../core/atomicWrite.js";
import { sleep } from "../core/concurrency.js";
import { ExitCode, TaskError } from "../core/errors.js";
import { humanBytes } from "../core/format.js";
import type { Logger } from "../core/log.js";
import { parseWalName, walDir } from "../physical/layout.js";
import { readWalFile } from "../wal/readFile.js";
import type { WalRead, WalTrust } from "../wal/readFile.js";
import type { StagedSegment } from "./plan.js";

/** The folder in the data directory that restore_command reads from. */
export const STAGED_WAL_DIR = "pgsb_wal";

/** A history file as the planning read decoded it: `name` as stored, `text` what recovery reads. */
export interface StagedHistory {
  name: string;
  text: Buffer;
}

export interface StageTrust extends WalTrust {
  /** The base backup's cluster: a signed file must have been signed for it. */
  systemIdentifier: string;
}

/** wal-receive replaces a snapshot atomically, but its signature just after: one more read settles a race with it. */
const SNAPSHOT_RETRY_MS = 500;

async function writeStaged(path: string, data: Buffer, size: number): Promise<void> {
  const fh = await createExclusive(path, 0o600);
  try {
    await fh.writeFile(data);
    if (data.length < size) await fh.truncate(size);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Where staged segments are read from: BACKUP_DIR/wal (localWalSource) or the S3 mirror (lib/offsite/). */
export interface WalSource {
  /** For messages: "BACKUP_DIR/wal", "s3://bucket/prefix/wal". */
  where: string;
  /** One segment file, read once and checked and decoded from those bytes (readWalFile, decodeWal). */
  read(s: StagedSegment, trust: StageTrust, segmentSize: number): Promise<WalRead>;
}

/** Reads a segment with `read`; a snapshot of the segment being received that fails its signature is read once more, after a pause (see SNAPSHOT_RETRY_MS). */
export async function readSegmentOnce(s: StagedSegment, trust: StageTrust, read: () => Promise<WalRead>): Promise<WalRead> {
  try {
    return await read();
  } catch (err) {
    if (!(s.source.includes(".partial") && trust.verifyKey !== null && err instanceof TaskError && err.exitCode === ExitCode.refused)) throw err;
    await sleep(SNAPSHOT_RETRY_MS);
    return read();
  }
}

export function localWalSource(backupDir: string): WalSource {
  const from = walDir(backupDir);
  return {
    where: "BACKUP_DIR/wal",
    read(s, trust, segmentSize) {
      const file = parseWalName(s.source);
      if (file?.kind !== "segment") throw new Error(`${s.source} in BACKUP_DIR/wal is not a WAL segment`);
      return readSegmentOnce(s, trust, () => readWalFile(join(from, s.source), file, trust, { maxBytes: segmentSize, systemIdentifier: trust.systemIdentifier, partial: file.partial }));
    },
  };
}

/**
 * Stages the plan's segments and history files (decrypted and decompressed, under the names
 * recovery asks for, never through a symlink) from `source` into `dataDir/pgsb_wal`.
 * Throws a refusal (exit 4) naming the file whose signature or decryption fails, and an error
 * naming the segment that is corrupt (wrong size after decompression).
 */
export async function stageWal(
  source: WalSource,
  dataDir: string,
  segments: readonly StagedSegment[],
  histories: readonly StagedHistory[],
  segmentSize: number,
  trust: StageTrust,
  log: Logger,
): Promise<{ bytes: number }> {
  const into = join(dataDir, STAGED_WAL_DIR);
  await mkdir(into, { mode: 0o700 });
  for (const h of histories) {
    // pg_receivewal compresses history files too (00000002.history.gz); recovery looks for 00000002.history.
    if (parseWalName(h.name)?.kind !== "history") throw new Error(`${h.name} in BACKUP_DIR/wal is not a timeline history file`);
    await writeStaged(join(into, h.name.slice(0, 16)), h.text, 0);
  }
  let bytes = 0;
  let last = Date.now();
  for (const [i, s] of segments.entries()) {
    const { data } = await source.read(s, trust, segmentSize);
    const partial = s.source.includes(".partial");
    if (!partial && data.length !== segmentSize) {
      throw new Error(`WAL segment ${s.source} in ${source.where} holds ${data.length} bytes after decompression, not the segment size ${segmentSize}: it is corrupt or truncated; restore it from a copy or choose a time before it`);
    }
    await writeStaged(join(into, s.target), data, segmentSize);
    bytes += segmentSize;
    if (Date.now() - last >= 5000 || i === segments.length - 1) {
      last = Date.now();
      log.info({ segments: i + 1, of: segments.length, bytes }, `staging WAL: ${i + 1} of ${segments.length} segments (${humanBytes(bytes)})`);
    }
  }
  return { bytes };
}
