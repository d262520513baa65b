// wal-receive's signature of one archived WAL file (a segment, the snapshot of the segment
// being received, or a timeline history file): `<file>.sig` beside it, a few lines of text
//
//   pg-swarm-backup WAL signature 1
//   file 000000010000000000000003.gz.age
//   system-identifier 7312345678901234567
//   bytes 4187342
//   sha256 <64 hex digits>
//   ed25519 <base64 of the Ed25519 signature over the five lines above>
//
// The statement binds the file's NAME (a genuine segment renamed, to another position or
// timeline, no longer matches), its exact size and sha256 as stored (encrypted bytes when
// encrypted), and the cluster's system identifier (a segment signed for another cluster with
// the same key is refused by a restore of this cluster's base backup).
//
// Why one signature file per WAL file rather than a signed ledger of hashes: the S3 mirror
// uploads each archived file with its own signature and a restore from S3 fetches just the
// segments its plan needs; cleanup (which holds no signing key) deletes a segment and its
// signature together and never has to rewrite and re-sign a shared file; and there is no
// file on the share that grows with every segment, is rewritten and re-uploaded each time,
// and that a reader could catch half-written. The price is a second, ~300-byte file per
// 16 MiB segment in wal/.
//
// Check with stock tools: `sed '$d' F.sig > stmt; tail -n1 F.sig | cut -d' ' -f2 | base64 -d > sig;
// openssl pkeyutl -verify -pubin -inkey verify.pem -rawin -in stmt -sigfile sig; sha256sum F` (docs/security.md "Signing").
import { createHash, sign, verify } from "node:crypto";
import type { KeyObject } from "node:crypto";

const HEADER = "pg-swarm-backup WAL signature 1";
/** A signature file is a few hundred bytes; anything larger is not one. */
export const WAL_SIGNATURE_MAX_BYTES = 4096;

export interface WalStatement {
  /** The file's name in wal/ (no folder). */
  file: string;
  systemIdentifier: string;
  bytes: number;
  sha256: string;
}

function statementText(s: WalStatement): string {
  return [HEADER, `file ${s.file}`, `system-identifier ${s.systemIdentifier}`, `bytes ${s.bytes}`, `sha256 ${s.sha256}`, ""].join("\n");
}

/** The statement for `data` stored as `file`. Pure. */
export function walStatement(file: string, data: Uint8Array, systemIdentifier: string): WalStatement {
  return { file, systemIdentifier, bytes: data.length, sha256: createHash("sha256").update(data).digest("hex") };
}

/** The text of `<file>.sig`. */
export function signWalStatement(s: WalStatement, key: KeyObject): string {
  const text = statementText(s);
  return `${text}ed25519 ${sign(null, Buffer.from(text, "utf8"), key).toString("base64")}\n`;
}

export type WalSignatureVerdict = { ok: true; statement: WalStatement } | { ok: false; problem: string };

const LINE = [
  /^file ([0-9A-Za-z.]{1,64})$/,
  /^system-identifier (\d{1,20})$/,
  /^bytes (\d{1,12})$/,
  /^sha256 ([0-9a-f]{64})$/,
] as const;

/**
 * Checks a signature file's text against `key` and the name it must cover; the caller then
 * compares `statement.bytes` and `.sha256` with the bytes it read (bytesProblem). Pure.
 * `systemIdentifier`: the cluster the restore is for (its base backup's), or null when not known yet.
 */
export function checkWalSignature(text: string, key: KeyObject, file: string, systemIdentifier: string | null): WalSignatureVerdict {
  const lines = text.split("\n");
  if (lines.length !== 7 || lines[0] !== HEADER || lines[6] !== "") return { ok: false, problem: `${file}.sig is not a WAL signature file written by wal-receive` };
  const values: string[] = [];
  for (const [i, re] of LINE.entries()) {
    const m = re.exec(lines[i + 1] as string);
    if (m === null) return { ok: false, problem: `${file}.sig is not a WAL signature file written by wal-receive (line ${i + 2})` };
    values.push(m[1] as string);
  }
  const sig = /^ed25519 ([A-Za-z0-9+/]{86}==)$/.exec(lines[5] as string);
  if (sig === null) return { ok: false, problem: `${file}.sig holds no Ed25519 signature` };
  const signed = lines.slice(0, 5).join("\n") + "\n";
  let valid = false;
  try {
    valid = verify(null, Buffer.from(signed, "utf8"), key, Buffer.from(sig[1] as string, "base64"));
  } catch {
    valid = false;
  }
  if (!valid) return { ok: false, problem: `${file}.sig does not match: it was changed after signing, or another key signed it` };
  const [name, sysid, bytes, sha256] = values as [string, string, string, string];
  if (name !== file) return { ok: false, problem: `${file}.sig is the signature of ${name}, not of ${file}: a signed file was copied or renamed` };
  if (systemIdentifier !== null && sysid !== systemIdentifier) {
    return { ok: false, problem: `${file}.sig was signed for the cluster with system identifier ${sysid}, not ${systemIdentifier} (the base backup's): WAL of another cluster` };
  }
  return { ok: true, statement: { file: name, systemIdentifier: sysid, bytes: Number(bytes), sha256 } };
}

/** Why `data` is not the file `s` covers, or null. Pure. */
export function bytesProblem(s: WalStatement, data: Uint8Array): string | null {
  if (data.length !== s.bytes) return `${s.file} holds ${data.length} bytes, but its signature covers ${s.bytes}: it was changed after signing`;
  const sha = createHash("sha256").update(data).digest("hex");
  return sha === s.sha256 ? null : `${s.file} does not match the sha256 its signature covers: it was changed after signing`;
}
