// The schema check of a base backup's manifest (NAME.json beside base/NAME). BACKUP_DIR is
// written by others, so every field restore-pitr, verify, list and cleanup rely on is checked
// here once: a manifest that passes is used without further checks; one that fails makes its
// base backup unusable, with a reason naming the field. Same size cap and FIFO-safe read as
// the logical manifests (lib/store/manifest.ts).
import { CODECS } from "../core/codec.js";
import { chunkListProblem } from "../store/chunks.js";
import { ManifestInvalid, readManifestText } from "../store/manifest.js";
import type { BaseManifest } from "../physical/layout.js";
import { parseBaseName, parseLsn } from "../physical/layout.js";

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const SHA256 = /^[0-9a-f]{64}$/;
const SYSTEM_IDENTIFIER = /^\d{1,20}$/;
/** initdb --wal-segsize allows 1 MiB to 1 GiB, powers of two. */
const MIN_SEGMENT = 1 << 20;
const MAX_SEGMENT = 1 << 30;
/** zstd's highest level (--ultra); no codec has more. */
const MAX_LEVEL = 22;
/** More recipients than any recipients file an operator writes; bounds what a manifest can make us compare. */
const MAX_RECIPIENTS = 64;

class Invalid extends Error {}

function bad(path: string, v: unknown, problem: string): never {
  const text = v === undefined ? "missing" : (JSON.stringify(v) ?? String(v));
  throw new Invalid(`${path}: ${text.length > 80 ? `${text.slice(0, 77)}...` : text} ${problem}`);
}

function object(v: unknown, path: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) bad(path, v, "is not an object");
  return v as Record<string, unknown>;
}

function string(v: unknown, path: string): string {
  if (typeof v !== "string") bad(path, v, "is not a string");
  return v;
}

function count(v: unknown, path: string, min = 0): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) bad(path, v, `is not an integer >= ${min}`);
  return v;
}

function isoTime(v: unknown, path: string): Date {
  if (typeof v !== "string" || !ISO_TIME.test(v) || Number.isNaN(Date.parse(v))) bad(path, v, "is not an ISO 8601 time such as 2024-01-10T03:00:00.000Z");
  return new Date(v);
}

function lsn(v: unknown, path: string): bigint {
  const parsed = typeof v === "string" ? parseLsn(v) : null;
  if (parsed === null) bad(path, v, "is not an LSN such as 0/2000028");
  return parsed;
}

function sha256(v: unknown, path: string): void {
  if (typeof v !== "string" || !SHA256.test(v)) bad(path, v, "is not a sha256 (64 lowercase hex digits)");
}

function check(m: unknown, fileName: string | undefined): void {
  const root = object(m, "manifest");
  if (root.format !== 1 && root.format !== 2) bad("format", root.format, "is not a base manifest format this version reads (1 or 2)");
  const v2 = root.format === 2;
  if (root.kind !== "base") bad("kind", root.kind, 'is not "base"');
  const tool = object(root.tool, "tool");
  string(tool.name, "tool.name");
  string(tool.version, "tool.version");
  const name = string(root.name, "name");
  const parsed = parseBaseName(name);
  if (parsed === null) bad("name", name, "is not a base backup name (YYYYMMDD_HHMMSS_base.tar[.bz2|.zst|.gz][.age])");
  if (fileName !== undefined && name !== fileName) bad("name", name, `does not match the file name ${fileName}`);
  const started = isoTime(root.startedAt, "startedAt");
  // The name is made from startedAt; a mismatch would let a manifest move its backup in time.
  if (Math.floor(started.getTime() / 1000) !== parsed.time.getTime() / 1000) bad("startedAt", root.startedAt, `does not match the time in the name (${parsed.time.toISOString()})`);
  if (isoTime(root.finishedAt, "finishedAt") < started) bad("finishedAt", root.finishedAt, "is before startedAt");
  if (lsn(root.stopLsn, "stopLsn") < lsn(root.startLsn, "startLsn")) bad("stopLsn", root.stopLsn, `is before startLsn (${String(root.startLsn)})`);
  count(root.timeline, "timeline", 1);
  const seg = count(root.walSegmentSize, "walSegmentSize", MIN_SEGMENT);
  if (seg > MAX_SEGMENT || (seg & (seg - 1)) !== 0) bad("walSegmentSize", seg, "is not a power of two between 1 MiB and 1 GiB");
  if (typeof root.systemIdentifier !== "string" || !SYSTEM_IDENTIFIER.test(root.systemIdentifier)) bad("systemIdentifier", root.systemIdentifier, "is not a system identifier (a string of digits)");
  string(root.serverVersion, "serverVersion");
  string(root.pgBasebackupVersion, "pgBasebackupVersion");
  const c = object(root.compression, "compression");
  if (!(CODECS as readonly unknown[]).includes(c.codec)) bad("compression.codec", c.codec, `is not one of ${CODECS.join(", ")}`);
  if (c.codec !== parsed.codec) bad("compression.codec", c.codec, `does not match the file name's extension (${parsed.codec})`);
  string(c.program, "compression.program");
  if (c.level !== null && count(c.level, "compression.level") > MAX_LEVEL) bad("compression.level", c.level, `is above ${MAX_LEVEL}`);
  if (!(v2 && root.rawBytes === null)) count(root.rawBytes, "rawBytes");
  const stored = count(root.compressedBytes, "compressedBytes");
  sha256(root.sha256, "sha256");
  if (!(v2 && root.backupManifestSha256 === null)) sha256(root.backupManifestSha256, "backupManifestSha256");
  if (v2) {
    const problem = chunkListProblem(root.chunks, stored);
    if (problem !== null) bad("chunks", root.chunks, problem);
  } else if (root.chunks !== undefined) bad("chunks", root.chunks, "is not part of format 1");
  encryption(root.encryption, parsed.encrypted, v2);
}

/** `encryption` is there exactly when the name ends in .age, and lists age public keys. */
function encryption(v: unknown, encryptedName: boolean, v2: boolean): void {
  if (v === undefined) {
    if (encryptedName) bad("encryption", v, "is missing, but the name ends in .age");
    return;
  }
  if (!v2 || !encryptedName) bad("encryption", v, v2 ? "is set, but the name does not end in .age" : "is not part of format 1");
  const e = object(v, "encryption");
  if (e.tool !== "age") bad("encryption.tool", e.tool, 'is not "age"');
  if (!Array.isArray(e.recipients) || e.recipients.length === 0 || e.recipients.length > MAX_RECIPIENTS || !e.recipients.every((r) => typeof r === "string" && r.length > 0 && r.length <= 1024)) {
    bad("encryption.recipients", e.recipients, `is not a list of 1 to ${MAX_RECIPIENTS} public keys`);
  }
}

/** Why a parsed base manifest cannot be used ("startLsn: \"x\" is not an LSN such as 0/2000028"), or null. */
export function baseManifestProblem(m: unknown, fileName?: string): string | null {
  try {
    check(m, fileName);
    return null;
  } catch (err) {
    if (err instanceof Invalid) return err.message;
    throw err;
  }
}

/** A base manifest's text checked against the schema; throws ManifestInvalid with the reason. */
export function parseBaseManifest(text: string, where: string, fileName?: string): BaseManifest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ManifestInvalid(where, `not valid JSON (${(err as Error).message}); the base backup is unusable until it is rewritten or removed`, { cause: err });
  }
  const problem = baseManifestProblem(parsed, fileName);
  if (problem !== null) throw new ManifestInvalid(where, problem);
  return parsed as BaseManifest;
}

export async function readBaseManifest(path: string, expectedName?: string): Promise<BaseManifest> {
  return parseBaseManifest(await readManifestText(path), path, expectedName);
}
