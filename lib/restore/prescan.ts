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
import { decryptionProblem, openSqlStream } from "./decompress.js";
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
    await sql.done.catch(() => undefined);
    if (err instanceof ScriptRefusal) return { ok: false, kind: "forbidden", problem: refusalText(file.name, guard.part, err) };
    const undecryptable = decryptionProblem(file, read.identity, err);
    if (undecryptable !== null) return { ok: false, kind: "undecryptable", problem: undecryptable };
    return { ok: false, kind: "unreadable", problem: `cannot read ${file.name}: ${(err as Error).message}` };
  }
}
