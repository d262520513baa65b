// verify's `wal-signatures` check (with BACKUP_VERIFY_KEY_FILE): every WAL file a restore of
// the newest base backup could use — the segments and history files of its timeline and later
// ones, the segments from its start on — has a signature for the base backup's
// cluster that matches the file's bytes as stored. Each file is read once and hashed; nothing
// is decrypted (the signature covers the stored bytes).
import type { KeyObject } from "node:crypto";
import { errnoCode } from "../core/errors.js";
import { readWholeFile } from "../core/noFollow.js";
import { mapLimit } from "../core/concurrency.js";
import { parseLsn, segmentNumber, segmentOfLsn } from "../physical/layout.js";
import type { BaseManifest } from "../physical/layout.js";
import type { WalListing } from "../wal/archive.js";
import { UntrustedWal, readWalStatement } from "../wal/readFile.js";
import { bytesProblem } from "../wal/signature.js";
import type { Finding } from "./checks.js";
import { fail, pass } from "./checks.js";

/** Hashing is disk-bound: two files at a time. */
const CONCURRENCY = 2;

/** The files a restore from `base` may stage: its timeline and later, segments from its start segment on. Pure. */
export function filesToCheck(listing: Pick<WalListing, "segments" | "histories">, base: Pick<BaseManifest, "timeline" | "startLsn" | "walSegmentSize">): { name: string; path: string }[] {
  const first = segmentOfLsn(parseLsn(base.startLsn) ?? 0n, base.walSegmentSize);
  const segments = listing.segments.filter((s) => s.file.timeline >= base.timeline && segmentNumber(s.file.segment, base.walSegmentSize) >= first);
  const histories = listing.histories.filter((h) => h.file.timeline >= base.timeline);
  return [...histories, ...segments].map((e) => ({ name: e.file.name, path: e.path }));
}

export async function walSignatureFindings(listing: WalListing, base: BaseManifest & { name?: string }, key: KeyObject): Promise<Finding[]> {
  const files = filesToCheck(listing, base);
  // A snapshot of the segment being received is ~ 16 MiB at most; the cap only stops a planted giant.
  const cap = base.walSegmentSize * 2 + (1 << 20);
  const problems = await mapLimit(files, CONCURRENCY, async (f) => {
    try {
      const statement = await readWalStatement(f.path, key, base.systemIdentifier);
      return bytesProblem(statement, await readWholeFile(f.path, cap));
    } catch (err) {
      if (err instanceof UntrustedWal) return err.problem;
      return `${f.name} cannot be read (${errnoCode(err) ?? (err as Error).message})`;
    }
  });
  const failed = files.flatMap((f, i) => (problems[i] === null ? [] : [{ file: f.name, problem: problems[i] as string }]));
  const first = failed[0];
  if (first === undefined) return [pass("wal-signatures", `all ${files.length} WAL files from the start of the newest base backup on are signed for cluster ${base.systemIdentifier} and match their signatures`, { files: files.length })];
  return [
    fail(
      "wal-signatures",
      `${failed.length} of ${files.length} WAL files cannot be trusted; the first: ${first.problem}. A restore with BACKUP_VERIFY_KEY_FILE refuses them: find out who wrote them, or take a new base backup once wal-receive signs (BACKUP_SIGNING_KEY_FILE)`,
      { files: files.length, failed: failed.length },
      first.file,
    ),
  ];
}
