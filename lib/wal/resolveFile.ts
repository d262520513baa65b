// Which stored file answers restore_command's request for a segment or history file: wal/
// may hold a segment compressed or not (the receiver's compression changed), and the newest
// one only as pg_receivewal's .partial, which recovery must replay to reach the newest WAL.
// pg_receivewal compresses history files too, so they resolve the same way.
import type { WalFile } from "../physical/layout.js";

/** The stem a file answers for: the 24-hex segment name, or NNNNNNNN.history (also for .history.gz); null for anything else. */
function stem(f: WalFile): string | null {
  if (f.kind === "history") return f.name.slice(0, 16);
  if (f.kind !== "segment") return null;
  return f.name.slice(0, 24);
}

const COMPRESSION_RANK = ["none", "gzip", "lz4"];

/** A complete file first (uncompressed, then gzip, then lz4), else the .partial; null when absent. Pure. */
export function resolveWalFile<E extends { file: WalFile }>(entries: readonly E[], wanted: string): E | null {
  let best: E | null = null;
  let bestRank = Infinity;
  for (const e of entries) {
    if (stem(e.file) !== wanted) continue;
    const f = e.file;
    const rank = (f.kind === "segment" && f.partial ? 10 : 0) + COMPRESSION_RANK.indexOf(f.kind === "backup-label" ? "none" : (f.compression ?? "none"));
    if (rank < bestRank) {
      best = e;
      bestRank = rank;
    }
  }
  return best;
}
