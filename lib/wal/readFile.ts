// Reading one archived WAL file to act on it (stage it for recovery, follow a timeline
// history): one bounded O_NOFOLLOW read into memory (or one bounded GET from the S3 mirror,
// lib/offsite/), and from exactly those bytes the checks and the decoding — with BACKUP_VERIFY_KEY_FILE its signature (signature.ts) against the
// bytes' size and sha256, then age with AGE_IDENTITY_FILE when it is encrypted, then the
// decompressor. Nothing reads the file a second time, so what was checked is what is used.
import type { KeyObject } from "node:crypto";
import { basename } from "node:path";
import { ExitCode, TaskError, errnoCode } from "../core/errors.js";
import { readSmallFile, readWholeFile } from "../core/noFollow.js";
import type { AgeIdentity } from "../keys/ageIdentity.js";
import type { WalFile } from "../physical/layout.js";
import { WAL_SIGNATURE_SUFFIX } from "../physical/layout.js";
import { decryptWal } from "./encryption.js";
import { decompressWal } from "./decompress.js";
import type { WalStatement } from "./signature.js";
import { WAL_SIGNATURE_MAX_BYTES, bytesProblem, checkWalSignature } from "./signature.js";

/** What a reader of wal/ trusts a file by. */
export interface WalTrust {
  /** BACKUP_VERIFY_KEY_FILE: with it, only files whose signature verifies are read. */
  verifyKey: KeyObject | null;
  /** AGE_IDENTITY_FILE: decrypts .age files. */
  identity: AgeIdentity | null;
  env: NodeJS.ProcessEnv;
}

export interface WalRead {
  /** Decrypted and decompressed. */
  data: Buffer;
  /** The signed statement the bytes matched; null without a verify key, or when `untrusted` says why not. */
  statement: WalStatement | null;
  /** With a verify key and `reportUntrusted`: why the signature does not vouch for the bytes (the read goes on; without the fix). */
  untrusted: string | null;
}

export const UNSIGNED_FIX =
  "with BACKUP_VERIFY_KEY_FILE set, only WAL that wal-receive signed (BACKUP_SIGNING_KEY_FILE) is restored. If the file is genuine but unsigned " +
  "(archived before signing was switched on, or by basic_archive), check where it came from and run this one restore without BACKUP_VERIFY_KEY_FILE; otherwise remove it";

/** A WAL file whose signature does not vouch for it (exit 4): the message adds the fix to `problem`. */
export class UntrustedWal extends TaskError {
  readonly problem: string;
  constructor(problem: string) {
    super(ExitCode.refused, `${problem}; ${UNSIGNED_FIX}`);
    this.name = "UntrustedWal";
    this.problem = problem;
  }
}

export function untrusted(problem: string): UntrustedWal {
  return new UntrustedWal(problem);
}

/**
 * The statement a signature file's text vouches for, checked against `key` (and the cluster,
 * when known), or a refusal (exit 4) naming the file. `text` null: there is no signature.
 */
export function walStatementOf(name: string, text: string | null, key: KeyObject, systemIdentifier: string | null, why = "is missing: the file is unsigned"): WalStatement {
  if (text === null) throw untrusted(`WAL file ${name}: its signature ${name}${WAL_SIGNATURE_SUFFIX} ${why}`);
  const v = checkWalSignature(text, key, name, systemIdentifier);
  if (!v.ok) throw untrusted(`WAL file ${name}: ${v.problem}`);
  return v.statement;
}

/**
 * The signature of `path` checked against `key` (and the cluster, when known): the statement,
 * or a refusal (exit 4) naming the file. Reads only the small .sig file.
 */
export async function readWalStatement(path: string, key: KeyObject, systemIdentifier: string | null): Promise<WalStatement> {
  const name = basename(path);
  try {
    return walStatementOf(name, await readSmallFile(path + WAL_SIGNATURE_SUFFIX, WAL_SIGNATURE_MAX_BYTES), key, systemIdentifier);
  } catch (err) {
    if (err instanceof UntrustedWal) throw err;
    const why = errnoCode(err) === "ENOENT" ? "is missing: the file is unsigned" : `cannot be read (${errnoCode(err) ?? (err as Error).message})`;
    return walStatementOf(name, null, key, systemIdentifier, why);
  }
}

/** What a stored file may take beyond its decoded size: gzip/lz4 of incompressible data, age's header and tags. */
export function storedLimit(maxBytes: number): number {
  return maxBytes + Math.ceil(maxBytes / 8) + 65_536;
}

export interface WalReadOptions {
  maxBytes: number;
  systemIdentifier: string | null;
  /** Decode an unfinished stream as far as it goes (the newest segment). */
  partial: boolean;
  /** With a verify key: report why the signature does not vouch for the bytes instead of refusing (history files). */
  reportUntrusted?: boolean;
}

/**
 * One stored WAL file's bytes, as read once (from wal/ or the bucket), checked and decoded:
 * with a verify key its signature (`statement` fetches it; it is the only other thing read)
 * against these bytes' size and sha256, then age when it is encrypted, then the decompressor.
 */
export async function decodeWal(file: WalFile, bytes: Buffer, trust: WalTrust, statementOf: (key: KeyObject) => Promise<WalStatement>, o: WalReadOptions): Promise<WalRead> {
  let statement: WalStatement | null = null;
  let problem: string | null = null;
  if (trust.verifyKey !== null) {
    try {
      statement = await statementOf(trust.verifyKey);
      const mismatch = bytesProblem(statement, bytes);
      if (mismatch !== null) throw untrusted(`WAL file ${mismatch}`);
    } catch (err) {
      if (o.reportUntrusted !== true || !(err instanceof UntrustedWal)) throw err;
      [statement, problem] = [null, err.problem];
    }
  }
  const encrypted = file.kind !== "backup-label" && file.encrypted === true;
  const plain = encrypted ? await decryptWal(file.name, bytes, trust.identity, trust.env) : bytes;
  const compression = file.kind === "backup-label" ? "none" : (file.compression ?? "none");
  try {
    return { data: await decompressWal(plain, compression, { partial: o.partial, maxBytes: o.maxBytes }), statement, untrusted: problem };
  } catch (err) {
    throw new TaskError(ExitCode.refused, `WAL file ${file.name} does not decompress (${(err as Error).message}): it is corrupt or truncated; restore it from a copy or choose a time before it`, { cause: err });
  }
}

/**
 * Reads `path` once (bounded by what `maxBytes` of WAL can take stored), checks its
 * signature against those bytes when the trust has a verify key, decrypts them when the file
 * is encrypted, and decompresses them to at most `maxBytes`.
 */
export async function readWalFile(path: string, file: WalFile, trust: WalTrust, o: WalReadOptions): Promise<WalRead> {
  let bytes: Buffer;
  try {
    bytes = await readWholeFile(path, storedLimit(o.maxBytes));
  } catch (err) {
    throw new TaskError(ExitCode.storage, `WAL file ${path} cannot be read (${errnoCode(err) ?? (err as Error).message}); check the file and the storage mount`, { cause: err });
  }
  return decodeWal(file, bytes, trust, (key) => readWalStatement(path, key, o.systemIdentifier), o);
}
