// After the server was restored to an earlier point (or failed over to a standby that was
// behind), its new timeline forks off before the newest WAL in wal/. pg_receivewal always
// resumes after the newest segment in its folder, so it asks for WAL of the old timeline that
// is not in the server's history and stops ("This server's history forked from timeline 1 at
// 0/70000A0"). The segments of that timeline from the fork's segment on belong to the
// abandoned history: they are set aside into a folder inside wal/ (readers of wal/ ignore
// folders; nothing is deleted), and pg_receivewal resumes at the fork's segment, from where
// the server streams the old timeline up to the fork and then the new one: no gap.
import { mkdir, rename } from "node:fs/promises";
import { join } from "node:path";
import type { Config } from "../config/config.js";
import type { Deps } from "../core/deps.js";
import type { Logger } from "../core/log.js";
import { withClient } from "../postgres/connection.js";
import { formatLsn, parseLsn, segmentNumber, segmentOfLsn, walDir } from "../physical/layout.js";
import type { SegmentFile } from "../wal/archive.js";
import { listWalArchive } from "../wal/archive.js";

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

/** Moves the abandoned segments into wal/.abandoned-tl<N>-<ms>/; returns that folder and how many files moved. */
export async function setAsideAbandoned(config: Config, deps: Deps, log: Logger, fork: Fork): Promise<{ folder: string; files: string[] }> {
  const wal = walDir(config.backupDir);
  const listing = await listWalArchive(config.backupDir);
  const files = abandonedSegments(listing.segments.map((e) => e.file), fork, await walSegmentSize(config, log)).map((f) => f.name);
  const folder = join(wal, `.abandoned-tl${fork.timeline}-${deps.now().getTime()}`);
  await mkdir(folder, { mode: config.files.dir });
  for (const name of files) await rename(join(wal, name), join(folder, name));
  log.error(
    { event: "fork", timeline: fork.timeline, forkLsn: formatLsn(fork.lsn), folder, files },
    `the server's history forked from timeline ${fork.timeline} at ${formatLsn(fork.lsn)}, before the newest WAL in ${wal} (the server was restored to an earlier point, or a standby that was behind took over): ` +
      `${files.length} segment(s) of the abandoned history were moved to ${folder} (kept, not used), and receiving resumes at the fork. Take a new base backup; to restore to a point on the abandoned history, move them back`,
  );
  return { folder, files };
}
