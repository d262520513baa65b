// After the server was restored to an earlier point (or failed over to a standby that was
// behind), its new timeline forks off before the newest WAL in wal/. pg_receivewal always
// resumes after the newest segment in its folder, so it asks for WAL of the old timeline that
// is not in the server's history and stops ("This server's history forked from timeline 1 at
// 0/70000A0"). The segments of that timeline from the fork's segment on belong to the
// abandoned history: they are set aside into a folder inside wal/ (readers of wal/ ignore
// folders; nothing is deleted), and pg_receivewal resumes at the fork's segment, from where
// the server streams the old timeline up to the fork and then the new one: no gap. When
// pg_receivewal writes into a spool, that is set aside too, and a resume point
// (resumePoint.ts) takes the place of the segments wal/ keeps but the spool does not.
import { mkdir, rename } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config/config.js";
import type { Deps } from "../core/deps.js";
import type { Logger } from "../core/log.js";
import { withClient } from "../postgres/connection.js";
import { WAL_SIGNATURE_SUFFIX, formatLsn, parseLsn, segmentNumber, segmentOfLsn, walDir } from "../physical/layout.js";
import type { SegmentFile } from "../wal/archive.js";
import { listWalFolder } from "../wal/archive.js";
import { writeResumePoint } from "./resumePoint.js";

export interface Fork {
  /** The timeline the receiver asked for, which the server left at `lsn`. */
  timeline: number;
  lsn: bigint;
}

/** The fork point from pg_receivewal's stderr (the server's DETAIL line); null when it names none. Pure. */
export function parseFork(stderr: string): Fork | null {
  const m = /history forked from timeline (\d+) at ([0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8})/.exec(stderr);
  const lsn = m === null ? null : parseLsn(m[2] as string);
  return m === null || lsn === null ? null : { timeline: Number(m[1]), lsn };
}

/** The segments of the abandoned history: on the fork's timeline, from the fork's segment on. Pure. */
export function abandonedSegments(segments: readonly SegmentFile[], fork: Fork, segmentSize: number): SegmentFile[] {
  const from = segmentOfLsn(fork.lsn, segmentSize);
  return segments.filter((f) => f.timeline === fork.timeline && segmentNumber(f.segment, segmentSize) >= from);
}

async function walSegmentSize(config: Config, log: Logger): Promise<number> {
  const r = await withClient(config.pg, config.pg.database, (c) => c.query<{ size: string }>("SELECT setting AS size FROM pg_settings WHERE name = 'wal_segment_size'"), log);
  return Number(r.rows[0]?.size ?? 16 * 1024 * 1024);
}

/** Moves the abandoned segments (and their signatures) of one folder into `<dir>/.abandoned-tl<N>-<ms>/`; returns the segments moved. */
async function setAsideIn(dir: string, fork: Fork, segmentSize: number, stamp: number, mode: number): Promise<{ folder: string; files: string[] }> {
  const listing = await listWalFolder(dir);
  const files = abandonedSegments(listing.segments.map((e) => e.file), fork, segmentSize).map((f) => f.name);
  const folder = join(dir, `.abandoned-tl${fork.timeline}-${stamp}`);
  if (files.length === 0) return { folder, files };
  await mkdir(folder, { mode });
  for (const name of files) {
    await rename(join(dir, name), join(folder, name));
    if (listing.signatures.has(name + WAL_SIGNATURE_SUFFIX)) await rename(join(dir, name + WAL_SIGNATURE_SUFFIX), join(folder, name + WAL_SIGNATURE_SUFFIX));
  }
  return { folder, files };
}

/**
 * Moves the abandoned segments into wal/.abandoned-tl<N>-<ms>/ (and, when pg_receivewal writes
 * into a spool, those of the spool into one of its own); returns wal/'s folder and the
 * segments moved from the folder pg_receivewal resumes from.
 */
export async function setAsideAbandoned(config: Config, deps: Deps, log: Logger, fork: Fork, receiveDir = walDir(config.backupDir)): Promise<{ folder: string; files: string[] }> {
  const wal = walDir(config.backupDir);
  const size = await walSegmentSize(config, log);
  const stamp = deps.now().getTime();
  const archived = await setAsideIn(wal, fork, size, stamp, config.files.dir);
  const spooled = receiveDir === wal ? archived : await setAsideIn(receiveDir, fork, size, stamp, 0o700);
  const forkSeg = segmentOfLsn(fork.lsn, size);
  if (receiveDir !== wal && forkSeg > 0n && !(await listWalFolder(receiveDir)).segments.some((e) => segmentNumber(e.file.segment, size) < forkSeg)) {
    const name = await writeResumePoint(receiveDir, fork.timeline, forkSeg - 1n, size, config.wal.compression);
    log.info({ event: "fork", resumePoint: name }, `pg_receivewal resumes after ${name} in ${receiveDir}, a placeholder that is never shipped`);
  }
  const { folder } = archived;
  const files = [...new Set([...archived.files, ...spooled.files])].sort();
  if (files.length === 0) return { folder, files: spooled.files };
  log.error(
    { event: "fork", timeline: fork.timeline, forkLsn: formatLsn(fork.lsn), folder, files },
    `the server's history forked from timeline ${fork.timeline} at ${formatLsn(fork.lsn)}, before the newest WAL in ${wal} (the server was restored to an earlier point, or a standby that was behind took over): ` +
      `${files.length} segment(s) of the abandoned history were moved to ${folder} (kept, not used), and receiving resumes at the fork. Take a new base backup; to restore to a point on the abandoned history, move them back`,
  );
  return { folder, files: spooled.files };
}
