// Before a restore touches anything, every file it will read is decompressed and put through
// the script guard (lib/sql/metaCommands.ts), all of it: a file that carries one psql
// meta-command pg_dump never writes has been tampered with, and is refused whole. The
// executor guards the streams to psql as well, so a file swapped after this scan still
// cannot hand psql a forbidden line. The file's bytes are hashed as they are read, so the
// restore's checksum check needs no second read of a file that scanned cleanly. An encrypted
// file is decrypted here too, so a wrong identity or a forged file fails age's authentication
// before anything is touched.
import { createHash } from "node:crypto";
import { ScriptGuard, ScriptRefusal, refusalText } from "../sql/metaCommands.js";
import { readSections } from "../sql/sections.js";
import type { KeyObject } from "node:crypto";
import type { AgeIdentity } from "../keys/ageIdentity.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { verifyBackupFile } from "../store/signature.js";
import { decryptionProblem, identityProblems, openSqlStream } from "./decompress.js";
import type { ReadOptions, SqlSource } from "./decompress.js";

/** `forbidden`: it holds a line psql must not get; `undecryptable`: age refused it; `unreadable`: anything else. */
export type ScanVerdict = { ok: true; sha256: string } | { ok: false; kind: "forbidden" | "undecryptable" | "unreadable"; problem: string };

/** Scans one file and hashes its bytes. */
export async function prescanFile(file: SqlSource, read: Omit<ReadOptions, "hash">): Promise<ScanVerdict> {
  const hash = createHash("sha256");
  const sql = openSqlStream(file, { ...read, hash });
  let guard = new ScriptGuard({ globals: true });
  try {
    await readSections(sql.stream, {
      onGlobals: (chunk) => void guard.push(chunk),
      onDatabaseStart: (name) => {
        guard.end();
        // Each part goes to its own psql; numbering goes on through the file.
        guard = new ScriptGuard({ globals: false, database: name }, guard.line);
      },
      onDatabaseData: (_name, chunk) => void guard.push(chunk),
      onDatabaseEnd: () => void guard.end(),
    });
    await sql.done;
    return { ok: true, sha256: hash.digest("hex") };
  } catch (err) {
    sql.cancel();
    // The reader may have seen only "Premature close": the stage that broke the stream says why.
    const failure = (await sql.cause) ?? err;
    if (err instanceof ScriptRefusal) return { ok: false, kind: "forbidden", problem: refusalText(file.name, guard.part, err) };
    const undecryptable = decryptionProblem(file, read.identity, failure);
    if (undecryptable !== null) return { ok: false, kind: "undecryptable", problem: undecryptable };
    return { ok: false, kind: "unreadable", problem: `cannot read ${file.name}: ${(failure as Error).message}` };
  }
}

/**
 * What a restore checks before it touches anything: that the identity can open every encrypted
 * file, then every file's whole content through the script guard, hashed in the
 * same read, then its checksum (and with a verify key its signature first) against that hash.
 * A file the scan could not finish is hashed on its own, so a corrupt file is still reported
 * by its checksum first.
 */
export async function verifyFiles(
  files: readonly (SqlSource & { sha256: string | null })[],
  ctx: { read: Omit<ReadOptions, "hash">; verifyKey: KeyObject | null; identity: AgeIdentity | null; log: Logger },
): Promise<void> {
  const keyProblems = identityProblems(files, ctx.identity);
  if (keyProblems.length > 0) throw new TaskError(ExitCode.refused, `restore refused, nothing was changed: ${keyProblems.join("; ")}`);
  const scans = await Promise.all(files.map((f) => prescanFile(f, ctx.read)));
  const sums = await Promise.all(
    files.map((f, i) => {
      const scan = scans[i];
      return verifyBackupFile(f.path, f.sha256 ?? undefined, ctx.verifyKey, scan?.ok === true ? scan.sha256 : undefined);
    }),
  );
  const problems = sums.flatMap((v) => (v.ok ? [] : [v.problem]));
  if (problems.length > 0) throw new TaskError(ExitCode.refused, `restore refused, nothing was changed: ${problems.join("; ")}`);
  const undecryptable = scans.flatMap((v) => (!v.ok && v.kind === "undecryptable" ? [v.problem] : []));
  if (undecryptable.length > 0) throw new TaskError(ExitCode.refused, `restore refused, nothing was changed: ${undecryptable.join("; ")}`);
  const refused = scans.flatMap((v) => (!v.ok && v.kind === "forbidden" ? [v.problem] : []));
  if (refused.length > 0) {
    throw new TaskError(ExitCode.refused, `restore refused, nothing was changed: ${refused.join("; ")}; only the psql meta-commands pg_dump writes may reach psql, so the file was altered after the backup`);
  }
  const unreadable = scans.flatMap((v) => (v.ok ? [] : [v.problem]));
  if (unreadable.length > 0) throw new TaskError(ExitCode.failed, `restore failed, nothing was changed: ${unreadable.join("; ")}`);
  const what = ctx.verifyKey !== null ? "signatures, checksums and content" : "checksums and content";
  ctx.log.info({ files: files.map((f) => f.name), signed: ctx.verifyKey !== null }, `${what} verified for ${files.length} file(s)`);
}
