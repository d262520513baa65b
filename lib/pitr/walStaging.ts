// The WAL a restore needs, copied into the data directory (pgsb_wal/) so restore_command is
// a plain `cp` inside it and the postgres container needs no access to BACKUP_DIR. Segments
// are decompressed on the way; a complete segment must come out at exactly the segment size,
// and the newest .partial (pg_receivewal's segment in progress, its compressed stream not yet
// ended) is decoded as far as it goes and padded with zeros to it,
// because recovery refuses a restored file of the wrong size, and zeros read as the end of WAL.
import { createWriteStream } from "node:fs";
import { mkdir, stat, truncate } from "node:fs/promises";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { humanBytes } from "../core/format.js";
import type { Logger } from "../core/log.js";
import { readStreamNoFollow } from "../core/noFollow.js";
import { createExclusive } from "../core/atomicWrite.js";
import { spawnFilter } from "../core/proc.js";
import { filterEnv } from "../backup/compression.js";
import { parseWalName, walDir } from "../physical/layout.js";
import type { StagedSegment } from "./plan.js";

/** The folder in the data directory that restore_command reads from. */
export const STAGED_WAL_DIR = "pgsb_wal";

const DECOMPRESS: Record<Exclude<StagedSegment["compression"], "none">, [string, string[]]> = {
  gzip: ["gzip", ["-d", "-c"]],
  lz4: ["lz4", ["-d", "-c"]],
};

/**
 * `partial`: the segment pg_receivewal is still writing. Its compressed stream has no end
 * yet, so the decompressor's complaint about that is expected: what it decoded up to the
 * receiver's last flush is kept (the decoders emit only whole, checked blocks).
 */
async function copyOne(source: string, target: string, compression: StagedSegment["compression"], partial: boolean, env: NodeJS.ProcessEnv): Promise<void> {
  const fh = await createExclusive(target, 0o600);
  const out = createWriteStream("", { fd: fh.fd, autoClose: false });
  try {
    if (compression === "none") {
      await pipeline(readStreamNoFollow(source), out);
    } else {
      const [program, args] = DECOMPRESS[compression];
      const child = spawnFilter(program, args, filterEnv(env));
      // A decompressor that could not start at all decoded nothing: that is no unfinished stream.
      const exited = partial ? child.exit.then((e) => (e.started ? undefined : child.done)) : child.done;
      await Promise.all([pipeline(readStreamNoFollow(source), child.stdin as Writable), pipeline(child.stdout as Readable, out), exited]);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Copies the plan's segments and history files (decompressed, under the names recovery asks
 * for, never through a symlink) from BACKUP_DIR/wal into `dataDir/pgsb_wal`.
 * Throws naming the segment that is corrupt (wrong size after decompression).
 */
export async function stageWal(backupDir: string, dataDir: string, segments: readonly StagedSegment[], history: readonly string[], segmentSize: number, env: NodeJS.ProcessEnv, log: Logger): Promise<{ bytes: number }> {
  const from = walDir(backupDir);
  const into = join(dataDir, STAGED_WAL_DIR);
  await mkdir(into, { mode: 0o700 });
  for (const name of history) {
    // pg_receivewal compresses history files too (00000002.history.gz); recovery looks for 00000002.history.
    const parsed = parseWalName(name);
    if (parsed?.kind !== "history") throw new Error(`${name} in BACKUP_DIR/wal is not a timeline history file`);
    await copyOne(join(from, name), join(into, `${parsed.timeline.toString(16).toUpperCase().padStart(8, "0")}.history`), parsed.compression ?? "none", false, env);
  }
  let bytes = 0;
  let last = Date.now();
  for (const [i, s] of segments.entries()) {
    const target = join(into, s.target);
    await copyOne(join(from, s.source), target, s.compression, s.source.endsWith(".partial"), env);
    const size = (await stat(target)).size;
    if (s.source.endsWith(".partial") && size < segmentSize) await truncate(target, segmentSize);
    else if (size !== segmentSize) {
      throw new Error(`WAL segment ${s.source} in BACKUP_DIR/wal holds ${size} bytes after decompression, not the segment size ${segmentSize}: it is corrupt or truncated; restore it from a copy or choose a time before it`);
    }
    bytes += segmentSize;
    if (Date.now() - last >= 5000 || i === segments.length - 1) {
      last = Date.now();
      log.info({ segments: i + 1, of: segments.length, bytes }, `staging WAL: ${i + 1} of ${segments.length} segments (${humanBytes(bytes)})`);
    }
  }
  return { bytes };
}
