// Checksums of backup files: the sidecar "<hex>  <name>" plus, since signing, "<hex>  <name>.json"
// (sha256sum -c compatible) and the manifest's sha256 must match the files' bytes.
import { createHash } from "node:crypto";
import type { Hash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CHECKSUM_SUFFIX, MANIFEST_SUFFIX } from "./naming.js";
import { READ_NOFOLLOW, readSmallFile, readStreamNoFollow } from "../core/noFollow.js";

/** A pass-through stream that feeds every chunk to `hash` (a sha256, or lib/store/chunks.ts's StoredHash), and to `onChunk` when given (a byte counter). */
export function hashTap(hash: Pick<Hash, "update"> | { update(data: Buffer): void }, onChunk?: (chunk: Buffer) => void): Transform {
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

export interface ChecksumFile {
  /** The data file's sha256. */
  data: string;
  /** The manifest's sha256; null in a one-line sidecar (written before manifests were covered). */
  manifest: string | null;
}

/**
 * The .sha256 file of a backup: the data file's line, then the manifest's, so `sha256sum -c`
 * in the tier folder checks both, and one signature over this text covers both.
 */
export function checksumFileText(name: string, dataSha: string, manifestSha: string): string {
  return `${dataSha}  ${name}\n${manifestSha}  ${name}${MANIFEST_SUFFIX}\n`;
}

const LINE = /^([0-9a-f]{64}) [ *](.+)$/;

/**
 * Reads a .sha256 file for the data file `name`: its own line first, optionally the manifest's
 * second (both forms `sha256sum` writes: "<hex>  <file>" and "<hex> *<file>"). Returns the
 * problem as text when it is anything else.
 */
export function parseChecksumFile(text: string, name: string): ChecksumFile | string {
  const malformed = `${name}${CHECKSUM_SUFFIX} is malformed (expected "<sha256>  ${name}", optionally followed by "<sha256>  ${name}${MANIFEST_SUFFIX}")`;
  const lines = text.replace(/\r?\n$/, "").split(/\r?\n/);
  if (lines.length > 2) return malformed;
  const parsed = lines.map((l) => LINE.exec(l));
  const [data, manifest] = parsed;
  if (data?.[2] !== name || (parsed.length === 2 && manifest?.[2] !== name + MANIFEST_SUFFIX)) return malformed;
  return { data: data[1] as string, manifest: manifest?.[1] ?? null };
}

export type ChecksumVerdict = { ok: true; sha256: string; manifestCovered: boolean } | { ok: false; problem: string };

/** A .sha256 sidecar holds two lines of ~150 bytes; anything near this size is not ours. */
export const SIDECAR_MAX_BYTES = 4096;

async function sha256Of(path: string): Promise<string> {
  return createHash("sha256").update(await readFile(path, { flag: READ_NOFOLLOW })).digest("hex");
}

/**
 * Hashes the data file and compares with its .sha256 sidecar and, when given, the manifest's
 * sha256; when the sidecar has a manifest line, the manifest file's bytes are hashed too.
 * `sidecar`: the .sha256 bytes already read (and their signature checked), so exactly those
 * are trusted. `dataSha`: the data file's hash when the caller read the file already. The
 * problem text names the file and what differs.
 */
export async function verifyChecksum(path: string, manifestSha?: string, sidecar?: Buffer, dataSha?: string): Promise<ChecksumVerdict> {
  const name = basename(path);
  let text: string;
  try {
    text = sidecar?.toString("utf8") ?? (await readSmallFile(path + CHECKSUM_SUFFIX, SIDECAR_MAX_BYTES));
  } catch {
    return { ok: false, problem: `${name}: checksum file ${name}${CHECKSUM_SUFFIX} is missing` };
  }
  const recorded = parseChecksumFile(text, name);
  if (typeof recorded === "string") return { ok: false, problem: recorded };
  if (manifestSha !== undefined && manifestSha !== recorded.data) {
    return { ok: false, problem: `${name}: the .sha256 sidecar and the manifest disagree` };
  }
  if (recorded.manifest !== null) {
    const actual = await sha256Of(path + MANIFEST_SUFFIX).catch(() => null);
    if (actual !== recorded.manifest) {
      const why = actual === null ? "is missing" : `was changed after the backup (file ${actual.slice(0, 12)}…, recorded ${recorded.manifest.slice(0, 12)}…)`;
      return { ok: false, problem: `${name}: manifest ${name}${MANIFEST_SUFFIX} ${why}` };
    }
  }
  const actual = dataSha ?? (await sha256File(path));
  if (actual !== recorded.data) {
    return { ok: false, problem: `${name}: checksum mismatch (file ${actual.slice(0, 12)}…, recorded ${recorded.data.slice(0, 12)}…): the file is corrupt` };
  }
  return { ok: true, sha256: actual, manifestCovered: recorded.manifest !== null };
}
