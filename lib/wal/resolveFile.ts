// Which stored file answers restore_command's request for a segment or history file: wal/
// may hold a segment compressed or not (the receiver's compression changed), encrypted or
// not (encryption switched on), and the newest one only as pg_receivewal's .partial or
// wal-receive's snapshot of it, which recovery must replay to reach the newest WAL.
// pg_receivewal compresses history files too, so they resolve the same way.
import type { WalFile } from "../physical/layout.js";
import { walStem } from "../physical/layout.js";

const COMPRESSION_RANK = ["none", "gzip", "lz4"];

function rank(f: WalFile): number {
  if (f.kind === "backup-label") return 0;
  const partial = f.kind === "segment" && f.partial ? 100 : 0;
  const encrypted = f.encrypted === true ? 10 : 0;
  return partial + encrypted + COMPRESSION_RANK.indexOf(f.compression ?? "none");
}

/** A complete file first (plain before encrypted; uncompressed, then gzip, then lz4), else a .partial; null when absent. Pure. */
export function resolveWalFile<E extends { file: WalFile }>(entries: readonly E[], wanted: string): E | null {
  let best: E | null = null;
  let bestRank = Infinity;
  for (const e of entries) {
    if (e.file.kind === "backup-label" || walStem(e.file) !== wanted) continue;
    const r = rank(e.file);
    if (r < bestRank) {
      best = e;
      bestRank = r;
    }
  }
  return best;
}
