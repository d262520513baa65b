import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { ScriptGuard, ScriptRefusal, dumpConnectTarget, refusalText } from "../../../lib/sql/metaCommands.js";
import type { ScriptPart } from "../../../lib/sql/metaCommands.js";
import { readSections } from "../../../lib/sql/sections.js";

const DB: ScriptPart = { globals: false, database: "app" };
const GLOBALS: ScriptPart = { globals: true };

/** Runs a script through a guard in chunks of `size` bytes; returns what reached "psql", or the refusal. */
function guard(sql: string | Buffer, part: ScriptPart = DB, size = 1 << 20): { out: Buffer } | { refused: ScriptRefusal } {
  const buf = typeof sql === "string" ? Buffer.from(sql) : sql;
  const g = new ScriptGuard(part);
  const out: Buffer[] = [];
  try {
    for (let i = 0; i < buf.length; i += size) out.push(...g.push(buf.subarray(i, i + size)));
    out.push(...g.end());
  } catch (err) {
    if (err instanceof ScriptRefusal) return { refused: err };
    throw err;
  }
  return { out: Buffer.concat(out) };
}

describe("ScriptGuard refuses what psql would run and pg_dump never writes", () => {
  it.each([
    ["\\! touch /tmp/x\n", 1, "\\!"],
    ["SELECT 1;\n\\! id\n", 2, "\\!"],
    ["SELECT 1; \\! id\n", 1, "\\!"],
    ["SELECT 1 \\gexec\n", 1, "\\gexec"],
    ["SELECT 1 \\g /tmp/out\n", 1, "\\g"],
    ["\\o /tmp/out\n", 1, "\\o"],
    ["\\copy t from program 'id'\n", 1, "\\copy"],
    ["\\i /etc/passwd\n", 1, "\\i"],
    ["\\ir x.sql\n", 1, "\\ir"],
    ["\\setenv PAGER id\n", 1, "\\setenv"],
    ["\\set ON_ERROR_STOP 0\n", 1, "\\set"],
    ["\\w /tmp/x\n", 1, "\\w"],
    ["\\connect app \\\\ \\! id\n", 1, "\\connect"],
    ["\\connect app\\! id\n", 1, "\\connect"],
    ["\\connect other\n", 1, "\\connect"],
    ['\\connect -reuse-previous=on "dbname=\'app\' host=evil"\n', 1, "\\connect"],
    ["\\connect host=evil dbname=app\n", 1, "\\connect"],
    ["\\connect app\r\n", 1, "\\connect"],
    ["  \\connect app\n", 1, "\\connect"],
    ["\\unrestrict key; \\! id\n", 1, "\\unrestrict"],
    ["\\.\n\\! id\n", 1, "\\."],
    ["SELECT 'a'\\! id\n", 1, "\\!"],
    ["SELECT $x\\! id\n", 1, "\\!"],
    ["SELECT 1 -\\! id\n", 1, "\\!"],
    ["SELECT \"a\"\\! id\n", 1, "\\!"],
    ["/* c */ \\! id\n", 1, "\\!"],
    // A COPY psql sends as a COPY but in another form, or a COPY psql is not sending yet: its "data" is SQL.
    ["COPY t FROM stdin WITH (FORMAT csv);\n'\n\\.\n\\! id\n", 1, "COPY"],
    ["copy t from stdin;\n", 1, "COPY"],
    ["SELECT (1; COPY t (a) FROM stdin;\n\\! id\n", 1, "COPY"],
    ["CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1;\nCOPY t (a) FROM stdin;\n\\! id\n", 2, "COPY"],
    ["COPY t (a) FROM stdin; \\! id\n", 1, "text after"],
    ["COPY t (a)\nFROM stdin;\n", 2, "COPY"],
    // Lexing that standard_conforming_strings or a client encoding could change.
    ["SELECT '\\''; \\! id\n-- '\n", 1, "\\'"],
    ["SELECT E'\\''; SELECT 1;\n", 1, "\\'"],
    [Buffer.from([...Buffer.from("SELECT '"), 0x95, 0x5c, ...Buffer.from("'; SELECT 1;\n")]), 1, "\\"],
    [Buffer.from([...Buffer.from("SELECT a"), 0x95, 0x3b, ...Buffer.from(" 1;\n")]), 1, "non-ASCII"],
    // psql reads C strings: after a NUL it does not see the quote that opens a string for us.
    [Buffer.from([...Buffer.from("SELECT 1 "), 0, ...Buffer.from(" '\n\\! id\n';\n")]), 1, "NUL"],
    [Buffer.from([...Buffer.from("SELECT $$ "), 0, ...Buffer.from(" $$;\n")]), 1, "NUL"],
    [Buffer.from([...Buffer.from("-- x\n-- "), 0, ...Buffer.from("\n")]), 2, "NUL"],
  ])("%j", (sql, line, found) => {
    const r = guard(sql);
    expect(r).toHaveProperty("refused");
    const err = (r as { refused: ScriptRefusal }).refused;
    expect(err.line).toBe(line);
    expect(`${err.found} ${err.reason}`).toContain(found);
  });

  it("refuses \\connect and \\encoding in the globals", () => {
    expect(guard("\\connect app\n", GLOBALS)).toHaveProperty("refused");
    expect(guard("\\encoding SQL_ASCII\n", GLOBALS)).toHaveProperty("refused");
  });

  it("never hands psql a byte of a refused meta-command line, however the input is cut", () => {
    const sql = "SELECT 1;\n\\! touch /tmp/x\n";
    for (let size = 1; size < sql.length; size++) {
      const g = new ScriptGuard(DB);
      const out: Buffer[] = [];
      expect(() => {
        for (let i = 0; i < sql.length; i += size) out.push(...g.push(Buffer.from(sql.slice(i, i + size))));
      }).toThrow(ScriptRefusal);
      expect(Buffer.concat(out).toString()).not.toContain("\\");
    }
  });

  it("names file, line and command in refusalText", () => {
    const r = guard("SET a = 1;\n\n\\! id > /tmp/x\n") as { refused: ScriptRefusal };
    expect(refusalText("b.sql.zst", DB, r.refused)).toBe('b.sql.zst line 3 (in the section of database "app"): psql meta-command \\!, which pg_dump never writes: \\! id > /tmp/x');
  });
});

describe("ScriptGuard passes what pg_dump writes", () => {
  it.each([
    ["\\connect app\n\\restrict abcXYZ09\nSET a = 1;\n\\unrestrict abcXYZ09\n"],
    ["SELECT 'it''s \\! not a command';\nSELECT $$ \\! in a body $$;\nSELECT $f$ $$ \\! $f$;\n"],
    ["SELECT \"quo\\\"\"\"te\";\n-- \\! in a comment\n/* \\! in /* nested */ comment */ SELECT 1;\n"],
    ["SELECT 'C:\\\\dir\\\\';\nSELECT '\\d+';\n"],
    ["COPY public.t (a, b) FROM stdin;\n\\N\t\\\\! x\n'\n\\.\\x\n\\.\nSELECT 1;\n"],
    ["COPY public.t (a) FROM stdin;\n\\.\r\nSELECT 1;\n"],
    ["COPY public.t (a) FROM stdin;\nx\u0000y\n\\.\n"],
    ["CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 1 END; END;\nCOPY t (a) FROM stdin;\n\\N\n\\.\n"],
    ["SELECT a::text, :'x', b[1:2] FROM t;\n"],
    ["CREATE VIEW v AS SELECT (1);\nCOPY t (a) FROM stdin;\n1\n\\.\n"],
  ])("%j", (sql) => {
    for (const size of [1, 2, 5, 1 << 20]) expect(guard(sql, DB, size)).toEqual({ out: Buffer.from(sql) });
  });

  it.each([
    ["\\connect postgres", "postgres"],
    ['\\connect "Foo.Bar"', "Foo.Bar"],
    [`\\connect -reuse-previous=on "dbname='quo""te'"`, 'quo"te'],
    [`\\connect -reuse-previous=on "dbname='it\\'s a \\\\ name'"`, "it's a \\ name"],
    [Buffer.from(`\\connect -reuse-previous=on "dbname='ünï'"`).toString("latin1"), "ünï"],
    ["\\connect -reuse-previous=on \"dbname='a' host='b'\"", null],
    ["\\connect Foo", null],
  ])("dumpConnectTarget(%j) = %j", (line, target) => {
    expect(dumpConnectTarget(line)).toBe(target);
  });

  it("passes the real pg_dumpall output untouched, in any chunking", async () => {
    const file = readFileSync(new URL("../../fixtures/dumpall.sql", import.meta.url));
    for (const size of [1, 7, 4096, 1 << 20]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < file.length; i += size) chunks.push(file.subarray(i, i + size));
      let g = new ScriptGuard(GLOBALS);
      const out: Buffer[] = [];
      await readSections(Readable.from(chunks), {
        onGlobals: (c) => void out.push(...g.push(c)),
        onDatabaseStart: (name) => {
          out.push(...g.end());
          g = new ScriptGuard({ globals: false, database: name }, g.line);
        },
        onDatabaseData: (_name, c) => void out.push(...g.push(c)),
        onDatabaseEnd: () => void out.push(...g.end()),
      });
      // Every byte but the cluster trailer, which belongs to no part.
      expect(Buffer.concat([...out, Buffer.from("--\n-- PostgreSQL database cluster dump complete\n--\n\n")]).equals(file)).toBe(true);
    }
  });

  it("is linear on a long line", () => {
    const body = "x".repeat(50 << 20);
    const t0 = Date.now();
    expect(guard(`CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $_$ SELECT '${body}' $_$;\n`, DB, 1 << 16)).toHaveProperty("out");
    expect(guard(`SELECT '${body}';\n`, DB, 1 << 16)).toHaveProperty("out");
    expect(Date.now() - t0).toBeLessThan(60_000);
  });
});
