// Checksums of backup files: the sidecar "<hex>  <name>" (sha256sum -c compatible) and the
// manifest's sha256 must both match the data file's bytes.
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CHECKSUM_SUFFIX } from "./naming.js";
import { readStreamNoFollow } from "../core/noFollow.js";

/** A pass-through stream that feeds every chunk to `hash`, and to `onChunk` when given (a byte counter). */
export function hashTap(hash: Hash, onChunk?: (chunk: Buffer) => void): Transform {
  return new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, done) {
      hash.update(chunk);
      onChunk?.(chunk);
      done(null, chunk);
    },
  });
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  await pipeline(readStreamNoFollow(path), hash);
  return hash.digest("hex");
}

export type ChecksumVerdict = { ok: true; sha256: string } | { ok: false; problem: string };

/**
 * Hashes the data file and compares with its .sha256 sidecar and, when given, the manifest's
 * sha256. The problem text names the file and what differs.
 */
export async function verifyChecksum(path: string, manifestSha?: string): Promise<ChecksumVerdict> {
  let sidecar: string;
  try {
    sidecar = (await readFile(path + CHECKSUM_SUFFIX, "utf8")).trim();
  } catch {
    return { ok: false, problem: `${basename(path)}: checksum file ${basename(path)}${CHECKSUM_SUFFIX} is missing` };
  }
  const [expected, name] = sidecar.split(/\s+\*?/);
  if (expected === undefined || !/^[0-9a-f]{64}$/.test(expected) || name !== basename(path)) {
    return { ok: false, problem: `${basename(path)}${CHECKSUM_SUFFIX} is malformed (expected "<sha256>  ${basename(path)}")` };
  }
  if (manifestSha !== undefined && manifestSha !== expected) {
    return { ok: false, problem: `${basename(path)}: the .sha256 sidecar and the manifest disagree` };
  }
  const actual = await sha256File(path);
  if (actual !== expected) {
    return { ok: false, problem: `${basename(path)}: checksum mismatch (file ${actual.slice(0, 12)}…, recorded ${expected.slice(0, 12)}…): the file is corrupt` };
  }
  return { ok: true, sha256: actual };
}
