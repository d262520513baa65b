// The manifest's schema, checked by hand (no schema library for one document type). BACKUP_DIR
// and S3 are written by others, so every field a reader later relies on is checked here, once:
// a manifest that passes can be used without further type checks; one that fails makes its
// backup unusable with a reason naming the field and the problem.
import { CODECS } from "../core/codec.js";
import type { Codec } from "../core/codec.js";
import { TIERS, parseBackupName, utcStamp } from "./naming.js";
import { recipientProblem } from "../keys/ageRecipients.js";
import { chunkListProblem } from "./chunks.js";

export const MANIFEST_FORMAT = 1;

type Json = Record<string, unknown>;

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;
const SHA256 = /^[0-9a-f]{64}$/;
const SYSTEM_IDENTIFIER = /^\d{1,20}$/;
/** zstd's highest level (--ultra); no codec has more. */
const MAX_LEVEL = 22;

/** A field that failed, as `path: problem`; the first one found is reported. */
class Invalid extends Error {}

function shown(v: unknown): string {
  if (v === undefined) return "missing";
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function bad(path: string, v: unknown, problem: string): never {
  throw new Invalid(`${path}: ${shown(v)} ${problem}`);
}

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function object(v: unknown, path: string): Json {
  if (!isObject(v)) bad(path, v, "is not an object");
  return v;
}

function string(v: unknown, path: string): string {
  if (typeof v !== "string") bad(path, v, "is not a string");
  return v;
}

function count(v: unknown, path: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) bad(path, v, "is not a non-negative integer");
  return v;
}

function oneOf<T extends string>(v: unknown, path: string, allowed: readonly T[]): T {
  if (!(allowed as readonly unknown[]).includes(v)) bad(path, v, `is not one of ${allowed.join(", ")}`);
  return v as T;
}

function isoTime(v: unknown, path: string): Date {
  if (typeof v !== "string" || !ISO_TIME.test(v) || Number.isNaN(Date.parse(v))) bad(path, v, "is not an ISO 8601 time such as 2024-01-10T03:00:00.000Z");
  return new Date(v);
}

/** A database name as PostgreSQL allows it: non-empty, no NUL (quotes, spaces, newlines are fine). */
function dbName(v: unknown, path: string): string {
  if (typeof v !== "string" || v === "" || v.includes("\0")) bad(path, v, "is not a database name (a non-empty string)");
  return v;
}

function dbNames(v: unknown, path: string): string[] {
  if (!Array.isArray(v)) bad(path, v, "is not a list of database names");
  const seen = new Set<string>();
  v.forEach((d, i) => {
    if (seen.has(dbName(d, `${path}[${i}]`))) bad(`${path}[${i}]`, d, "is listed twice");
    seen.add(d as string);
  });
  return v as string[];
}

/** Own keys only: JSON.parse makes "__proto__" an own key, which `in`/`[]` lookups would confuse. */
function entries(v: unknown, path: string): [string, unknown][] {
  return Object.entries(object(v, path));
}

function key(k: string): string {
  return /^[A-Za-z_][\w]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`;
}

function checkFingerprint(v: unknown): void {
  const f = object(v, "fingerprint");
  string(f.globals, "fingerprint.globals");
  string(f.statsEpoch, "fingerprint.statsEpoch");
  for (const [db, fp] of entries(f.databases, "fingerprint.databases")) {
    const at = `fingerprint.databases${key(db)}`;
    dbName(db, at);
    const d = object(fp, at);
    count(d.oid, `${at}.oid`);
    string(d.hash, `${at}.hash`);
    if (d.userObjects !== undefined) count(d.userObjects, `${at}.userObjects`);
  }
}

function checkRowCounts(v: unknown): void {
  for (const [db, tables] of entries(v, "rowCounts")) {
    const at = `rowCounts${key(db)}`;
    dbName(db, at);
    // Hundreds of thousands of tables: the path string is built only for the one that fails.
    const counts = object(tables, at);
    for (const table in counts) {
      const n = counts[table];
      if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) count(n, `${at}${key(table)}`);
    }
  }
}

function checkCompression(v: unknown, nameCodec: Codec): void {
  const c = object(v, "compression");
  const codec = oneOf(c.codec, "compression.codec", CODECS);
  if (codec !== nameCodec) bad("compression.codec", codec, `does not match the file name's extension (${nameCodec})`);
  string(c.program, "compression.program");
  if (c.level !== null && (count(c.level, "compression.level") > MAX_LEVEL)) bad("compression.level", c.level, `is above ${MAX_LEVEL}`);
}

/** age's ASCII armor (age -a): what `sealed` holds. */
const ARMOR = /^-----BEGIN AGE ENCRYPTED FILE-----\n[A-Za-z0-9+/=\n]*-----END AGE ENCRYPTED FILE-----\n?$/;

/**
 * An encrypted backup's manifest names its recipients (public keys, for the message when an
 * identity does not fit) and carries the table names and row counts sealed (age-encrypted to
 * the same recipients); its cleartext rowCounts is empty. A plain backup has no `encryption`.
 */
function checkEncryption(root: Json, encrypted: boolean): void {
  if (!encrypted) {
    if (root.encryption !== undefined) bad("encryption", root.encryption, "is set, but the file name has no .age suffix");
    return;
  }
  const e = object(root.encryption, "encryption");
  if (e.tool !== "age") bad("encryption.tool", e.tool, 'is not "age"');
  if (!Array.isArray(e.recipients) || e.recipients.length === 0) bad("encryption.recipients", e.recipients, "is not a non-empty list of public keys");
  e.recipients.forEach((r, i) => {
    const at = `encryption.recipients[${i}]`;
    const problem = recipientProblem(string(r, at));
    if (problem !== null) bad(at, r, problem);
  });
  const sealed = string(e.sealed, "encryption.sealed");
  if (!ARMOR.test(sealed)) bad("encryption.sealed", sealed, "is not an age-armored file (-----BEGIN AGE ENCRYPTED FILE-----)");
  if (Object.keys(object(root.rowCounts, "rowCounts")).length > 0) bad("rowCounts", root.rowCounts, "is not empty; an encrypted backup's row counts are sealed in encryption.sealed");
}

function check(m: unknown, fileName: string | undefined): void {
  const root = object(m, "manifest");
  if (root.format !== MANIFEST_FORMAT) bad("format", root.format, `is not a manifest format this version reads (${MANIFEST_FORMAT})`);
  const tool = object(root.tool, "tool");
  string(tool.name, "tool.name");
  string(tool.version, "tool.version");
  const name = string(root.name, "name");
  const parsed = parseBackupName(name);
  if (parsed === null) bad("name", name, "is not a backup name (YYYYMMDD_HHMMSS_<tier>.sql[.bz2|.zst|.gz][.age])");
  if (fileName !== undefined && name !== fileName) bad("name", name, `does not match the file name ${fileName}`);
  const tier = oneOf(root.tier, "tier", TIERS);
  if (tier !== parsed.tier) bad("tier", tier, `does not match the name's tier (${parsed.tier})`);
  if (root.parent !== null) {
    const parent = string(root.parent, "parent");
    if (parseBackupName(parent) === null) bad("parent", parent, "is neither null nor a backup name");
    if (parent === name) bad("parent", parent, "is the backup itself");
  }
  const started = isoTime(root.startedAt, "startedAt");
  // The name is made from startedAt; a mismatch would let a manifest move its backup in time.
  if (utcStamp(started) !== utcStamp(parsed.time)) bad("startedAt", root.startedAt, `does not match the time in the name (${parsed.time.toISOString()})`);
  if (isoTime(root.finishedAt, "finishedAt") < started) bad("finishedAt", root.finishedAt, "is before startedAt");
  string(root.serverVersion, "serverVersion");
  string(root.pgDumpVersion, "pgDumpVersion");
  if (typeof root.systemIdentifier !== "string" || !SYSTEM_IDENTIFIER.test(root.systemIdentifier)) bad("systemIdentifier", root.systemIdentifier, "is not a system identifier (a string of digits)");
  checkCompression(root.compression, parsed.codec);
  count(root.rawBytes, "rawBytes");
  const stored = count(root.compressedBytes, "compressedBytes");
  if (typeof root.sha256 !== "string" || !SHA256.test(root.sha256)) bad("sha256", root.sha256, "is not a sha256 (64 lowercase hex digits)");
  if (root.chunks !== undefined) {
    const problem = chunkListProblem(root.chunks, stored);
    if (problem !== null) bad("chunks", root.chunks, problem);
  }
  checkFingerprint(root.fingerprint);
  dbNames(root.databases, "databases");
  dbNames(root.included, "included");
  checkRowCounts(root.rowCounts);
  checkEncryption(root, parsed.encrypted);
}

/**
 * Why a parsed manifest cannot be used — "compression.codec: \"evil\" is not one of bzip2,
 * zstd, gzip, none" — or null. `fileName` is the data file's name, which the manifest must carry.
 */
export function manifestProblem(m: unknown, fileName?: string): string | null {
  return problemOf(() => check(m, fileName));
}

/** Why unsealed row counts (an encrypted backup's, see checkEncryption) cannot be used, or null. */
export function rowCountsProblem(v: unknown): string | null {
  return problemOf(() => checkRowCounts(v));
}

function problemOf(checkIt: () => void): string | null {
  try {
    checkIt();
    return null;
  } catch (err) {
    if (err instanceof Invalid) return err.message;
    throw err;
  }
}
