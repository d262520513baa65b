// Before a restore touches anything, every file it will read is decompressed and put through
// the script guard (lib/sql/metaCommands.ts), all of it: a file that carries one psql
// meta-command pg_dump never writes has been tampered with, and is refused whole. The
// executor guards the streams to psql as well, so a file swapped after this scan still
// cannot hand psql a forbidden line. The file's bytes are hashed as they are read, so the
// restore's checksum check needs no second read of a file that scanned cleanly.
import { createHash } from "node:crypto";
import type { Codec } from "../core/codec.js";
import { ScriptGuard, ScriptRefusal, refusalText } from "../sql/metaCommands.js";
import { readSections } from "../sql/sections.js";
import { openSqlStream } from "./decompress.js";

export type ScanVerdict = { ok: true; sha256: string } | { ok: false; refused: boolean; problem: string };

/** Scans one file and hashes its bytes; `refused`: it holds a forbidden line (else it could not be read). */
export async function prescanFile(file: { name: string; path: string; codec: Codec }, threads: number, env: NodeJS.ProcessEnv): Promise<ScanVerdict> {
  const hash = createHash("sha256");
  const sql = openSqlStream(file.path, file.codec, threads, env, hash);
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
    if (err instanceof ScriptRefusal) return { ok: false, refused: true, problem: refusalText(file.name, guard.part, err) };
    return { ok: false, refused: false, problem: `cannot read ${file.name}: ${(err as Error).message}` };
  }
}
