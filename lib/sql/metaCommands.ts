// The psql meta-commands a backup may hand psql: exactly those pg_dump and pg_dumpall 13–17
// write, where they write them (a whole line between statements), in the syntax they write.
// Anything else (\!, \o, \copy, \i, \set, \gexec, a second command after \\ …) would let
// whoever can write the backup folder run commands as the restoring task.
// What pg_dump writes (PostgreSQL source):
// - `\connect NAME`: appendPsqlMetaConnect (src/fe_utils/string_utils.c) for a name of only
//   [A-Za-z0-9_.], NAME as fmtId prints it (bare lower-case word, or "double-quoted");
//   for any other name `\encoding SQL_ASCII` on one line, then
//   `\connect -reuse-previous=on "dbname='…'"` (appendConnStrVal escapes ' and \ with a
//   backslash, fmtId doubles "). pg_dump --create writes it after CREATE DATABASE
//   (_reconnectToDB, pg_backup_archiver.c); lib/backup/dump.ts writes `\connect postgres`
//   and `\connect template1` itself. Never in the globals (pg_dumpall --globals-only).
// - `\restrict KEY` / `\unrestrict KEY` (13.22, 14.19, 15.14, 16.10, 17.6 on): KEY from
//   generate_restrict_key, checked by valid_restrict_key (dumputils.c): letters and digits.
// - `\.` ending COPY data (pg_backup_archiver.c), which lib/sql/psqlLexer.ts handles as data.
import { PsqlLexer } from "./psqlLexer.js";
import { ScriptRefusal } from "./scriptRefusal.js";

/** What a script is: the globals (roles, tablespaces) or one database's section (by the name its header prints). */
export type ScriptPart = { globals: true } | { globals: false; database: string };

const KEYED = /^\\(?:restrict|unrestrict) [A-Za-z0-9]+$/;
const ENCODING = /^\\encoding SQL_ASCII$/;
const SIMPLE_CONNECT = /^\\connect ([a-z_][a-z0-9_]*|"[A-Za-z0-9_.]+")$/;
const CONNSTR_CONNECT = /^\\connect -reuse-previous=on "dbname='((?:[^'"\\]|\\['\\]|"")*)'"$/;

/** The database a \connect line pg_dump wrote names (UTF-8), or null when pg_dump would not write that line. */
export function dumpConnectTarget(line: string): string | null {
  let m = SIMPLE_CONNECT.exec(line);
  if (m !== null) return (m[1] as string).replace(/^"(.*)"$/, "$1");
  m = CONNSTR_CONNECT.exec(line);
  if (m === null) return null;
  return Buffer.from((m[1] as string).replace(/""/g, '"').replace(/\\(.)/g, "$1"), "latin1").toString("utf8");
}

/** Why psql must not get this meta-command line (latin1, from its backslash), or null when pg_dump writes it there. */
export function judgeMetaCommand(line: string, atBoundary: boolean, part: ScriptPart): string | null {
  const command = /^\\[^\s\\]*/.exec(line)?.[0] ?? "\\";
  if (!atBoundary) return `psql meta-command ${command} in the middle of a statement or line, where pg_dump writes none`;
  if (KEYED.test(line)) return null;
  const where = part.globals ? "the globals" : `the section of database ${JSON.stringify(part.database)}`;
  if (command === "\\connect" || command === "\\encoding") {
    if (part.globals) return `psql meta-command ${command} in the globals, where pg_dump writes none`;
    if (ENCODING.test(line)) return null;
    const target = dumpConnectTarget(line);
    if (target === null) return `psql meta-command ${command} with arguments pg_dump does not write`;
    return target === part.database ? null : `\\connect to database ${JSON.stringify(target)} in ${where}`;
  }
  return `psql meta-command ${command}, which pg_dump never writes`;
}

/**
 * Checks a script on its way to psql. push() returns the bytes psql may have now: a
 * meta-command line is held back until it is whole and judged, so psql never gets a byte of a
 * refused one. Throws ScriptRefusal (line numbers from `firstLine`).
 */
export class ScriptGuard {
  private readonly lexer: PsqlLexer;

  constructor(
    readonly part: ScriptPart,
    firstLine = 1,
  ) {
    this.lexer = new PsqlLexer((line, atBoundary) => judgeMetaCommand(line, atBoundary, part));
    this.lexer.line = firstLine;
  }

  /** The line the next byte is on. */
  get line(): number {
    return this.lexer.line;
  }

  push(chunk: Buffer): Buffer[] {
    return this.lexer.push(chunk);
  }

  end(): Buffer[] {
    return this.lexer.end();
  }
}

/** "FILE line N (in the section of database "x"): why: what", for messages. */
export function refusalText(file: string, part: ScriptPart, err: ScriptRefusal): string {
  const where = part.globals ? "in the globals" : `in the section of database ${JSON.stringify(part.database)}`;
  return `${file} line ${err.line} (${where}): ${err.reason}: ${err.found}`;
}

export { ScriptRefusal };
