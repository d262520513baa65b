// Where pg_receivewal resumes, when it writes into the spool: after the highest complete
// segment it finds there (it checks only the name and the size: the file's length, the gzip
// trailer's length field, or the decompressed length for lz4). The spool keeps only the
// newest complete segment, so after the abandoned history of a fork has been set aside
// (fork.ts) it may hold none below the fork, and pg_receivewal would start at the server's
// position, leaving a gap. A resume point is a segment of zeros named for the segment before
// the fork's: pg_receivewal then resumes at the fork, as it does in wal/. The shipper never
// ships one (a real segment never starts with zeros: its first page header does not) and the
// spool drops it like any older complete segment once newer ones shipped.
import { truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { runCommandBytes } from "../core/proc.js";
import type { WalCompression } from "../physical/layout.js";
import { segmentName } from "../physical/layout.js";
import { decompressWal } from "../wal/decompress.js";

const EXTENSION: Record<WalCompression, string> = { none: "", gzip: ".gz", lz4: ".lz4" };

/** Writes the resume point for segment `n` on `timeline` into `dir`; returns its name. */
export async function writeResumePoint(dir: string, timeline: number, n: bigint, segmentSize: number, compression: WalCompression): Promise<string> {
  const name = segmentName(timeline, n, segmentSize) + EXTENSION[compression];
  const path = join(dir, name);
  if (compression === "none") {
    await writeFile(path, "", { mode: 0o600 });
    await truncate(path, segmentSize);
  } else {
    const zeros = Buffer.alloc(segmentSize);
    const data = compression === "gzip" ? gzipSync(zeros) : await runCommandBytes("lz4", ["-c"], { env: { PATH: process.env.PATH }, input: zeros });
    await writeFile(path, data, { mode: 0o600 });
  }
  return name;
}

/** A stored segment compresses to this much at most when it is all zeros (16 MiB: ~16 KiB gzip, ~64 KiB lz4). */
const SMALL = 1 << 20;

/** Whether a complete segment as the spool holds it is a resume point: its first page header is zeros. */
export async function isResumePoint(data: Buffer, compression: WalCompression): Promise<boolean> {
  if (compression === "none") return data.subarray(0, 24).every((b) => b === 0);
  if (data.length > SMALL) return false;
  const head = await decompressWal(data, compression, { partial: true, maxBytes: 1 << 30 }).catch(() => null);
  return head !== null && head.length >= 24 && head.subarray(0, 24).every((b) => b === 0);
}
