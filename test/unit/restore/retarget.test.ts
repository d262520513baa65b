import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { RECONNECT, SectionRetargeter, connectTarget, databaseSpan } from "../../../lib/restore/retarget.js";
import { extractSections } from "../../../lib/sql/sections.js";

// Real pg_dumpall output (test/fixtures/make-dumpall-fixture.sh) and a real pg_dump --create
// section of a database with a comment, properties, a per-database role setting and ACLs
// (pg_dump 15.18), which names the database in ten places.
const FIXTURE = readFileSync(new URL("../../fixtures/dumpall.sql", import.meta.url));
const KEY = "uqm2AWg1H4n1J0vRAsf8fasw5abdSH6zTFFomL8fG1X5xeSC00WLb5U0dbQuxcw";
const PROPS = `--
-- Database "quo"te" dump
--

\\restrict ${KEY}
SET client_encoding = 'UTF8';
CREATE DATABASE "quo""te" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8';
ALTER DATABASE "quo""te" OWNER TO bob;
\\unrestrict ${KEY}
\\encoding SQL_ASCII
\\connect -reuse-previous=on "dbname='quo""te'"
\\restrict ${KEY}
COMMENT ON DATABASE "quo""te" IS 'multi
line '' comment; ALTER DATABASE "quo""te" OWNER TO eve;';
ALTER DATABASE "quo""te" CONNECTION LIMIT = 5;
ALTER DATABASE "quo""te" SET work_mem TO '8MB';
ALTER ROLE bob IN DATABASE "quo""te" SET statement_timeout TO '5s';
\\unrestrict ${KEY}
\\encoding SQL_ASCII
\\connect -reuse-previous=on "dbname='quo""te'"
\\restrict ${KEY}
CREATE FUNCTION public.f() RETURNS text
    LANGUAGE sql
    AS $_$select 'x';
ALTER DATABASE "quo""te" OWNER TO eve;
$_$;
COPY public.t (a) FROM stdin;
ALTER DATABASE "quo""te" OWNER TO eve;
\\connect "quo""te"
\\.
REVOKE CONNECT,TEMPORARY ON DATABASE "quo""te" FROM PUBLIC;
GRANT CONNECT ON DATABASE "quo""te" TO "quo""r";
\\unrestrict ${KEY}
`;

/** Where the job reconnects, shown in the output text. */
const R = "@@RECONNECT@@";

function retarget(data: Buffer, from: string, to: string | null, size: number, mark: string | null = null): string {
  const r = new SectionRetargeter(from, to, mark);
  const out: Buffer[] = [];
  const put = (pieces: ReturnType<SectionRetargeter["push"]>) => out.push(...pieces.map((p) => (p === RECONNECT ? Buffer.from(R) : p)));
  for (let i = 0; i < data.length; i += size) put(r.push(data.subarray(i, i + size)));
  put(r.end());
  return Buffer.concat(out).toString("utf8");
}

/** pg_dump's keyed lines and the \encoding before a connection-string \connect: dropped to blank lines. */
const dropKeyed = (text: string) => text.replace(/^\\(?:restrict|unrestrict) [A-Za-z0-9]+$/gm, "").replace(/^\\encoding SQL_ASCII$/gm, "");

async function section(name: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  await extractSections((async function* () { yield FIXTURE; })(), [name], { onDatabaseData: (_n, chunk) => void parts.push(Buffer.from(chunk)) });
  return Buffer.concat(parts);
}

describe("SectionRetargeter", () => {
  it.each([1, 3, 17, 1 << 16])("rewrites every database-level statement, turns each \\connect into a reconnect and drops the keyed lines, nothing else (chunks of %i bytes)", (size) => {
    const out = retarget(Buffer.from(PROPS), 'quo"te', "pgsb_restore_x", size);
    const expected = dropKeyed(PROPS)
      .replace('CREATE DATABASE "quo""te"', 'CREATE DATABASE "pgsb_restore_x"')
      .replace('ALTER DATABASE "quo""te" OWNER TO bob', 'ALTER DATABASE "pgsb_restore_x" OWNER TO bob')
      .replaceAll(`\\connect -reuse-previous=on "dbname='quo""te'"`, R)
      .replace(`COMMENT ON DATABASE "quo""te" IS`, `COMMENT ON DATABASE "pgsb_restore_x" IS`)
      .replace(`ALTER DATABASE "quo""te" CONNECTION`, `ALTER DATABASE "pgsb_restore_x" CONNECTION`)
      .replace(`ALTER DATABASE "quo""te" SET`, `ALTER DATABASE "pgsb_restore_x" SET`)
      .replace(`IN DATABASE "quo""te" SET`, `IN DATABASE "pgsb_restore_x" SET`)
      .replace(`ON DATABASE "quo""te" FROM`, `ON DATABASE "pgsb_restore_x" FROM`)
      .replace(`ON DATABASE "quo""te" TO`, `ON DATABASE "pgsb_restore_x" TO`);
    expect(out).toBe(expected);
    // The copies inside the comment literal, the function body and the COPY data are untouched.
    expect(out.match(/ALTER DATABASE "quo""te" OWNER TO eve;/g)).toHaveLength(3);
    expect(out).toContain('\\connect "quo""te"\n\\.\n');
  });

  it("keeps the names of a section restored in place, and still reconnects", () => {
    const out = retarget(Buffer.from(PROPS), 'quo"te', null, 64);
    expect(out).toBe(dropKeyed(PROPS).replaceAll(`\\connect -reuse-previous=on "dbname='quo""te'"`, R));
  });

  it("passes any other meta-command on to psql, which refuses it", () => {
    const sql = "CREATE DATABASE app;\n\\connect app\nSELECT 1;\n\\! id\n\\unrestrict forged\nSELECT 1; \\restrict x\n";
    expect(retarget(Buffer.from(sql), "app", "pgsb_restore_a", 5)).toBe(`CREATE DATABASE "pgsb_restore_a";\n${R}\nSELECT 1;\n\\! id\n\nSELECT 1; \\restrict x\n`);
  });

  it.each([1, 5, 4096])("keeps real pg_dumpall sections byte for byte apart from the name (chunks of %i bytes)", async (size) => {
    for (const name of ["app", 'quo"te', "with space", "ünïcødé"]) {
      const data = await section(name);
      const out = retarget(data, name, "pgsb_restore_t", size);
      const before = data.toString("utf8").split("\n");
      const after = out.split("\n");
      expect(after).toHaveLength(before.length);
      const changed = before.flatMap((line, i) => (line === after[i] ? [] : [[line, after[i]]]));
      expect(changed.map(([, b]) => b).filter((b) => b !== "")).toEqual([
        'CREATE DATABASE "pgsb_restore_t" WITH TEMPLATE = template0 ENCODING = \'UTF8\' LOCALE_PROVIDER = libc LOCALE = \'C.UTF-8\';',
        'ALTER DATABASE "pgsb_restore_t" OWNER TO postgres;',
        R,
      ]);
      // The blanked lines are pg_dump's keyed lines and its \encoding, and nothing else.
      expect(changed.filter(([, b]) => b === "").every(([a]) => /^\\(restrict|unrestrict|encoding) /.test(a as string))).toBe(true);
    }
  });

  it.each([1, 7, 4096])("puts the mark after the CREATE DATABASE on its own line, line count unchanged (chunks of %i bytes)", async (size) => {
    const mark = "ALTER DATABASE pgsb_restore_t SET pgsb.temporary_restore = 'on';";
    const data = await section("app");
    const out = retarget(data, "app", "pgsb_restore_t", size, mark);
    expect(out.split("\n")).toHaveLength(data.toString("utf8").split("\n").length);
    expect(out).toContain(`CREATE DATABASE "pgsb_restore_t" WITH TEMPLATE = template0 ENCODING = 'UTF8' LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8'; ${mark}\n`);
    expect(out.split(mark)).toHaveLength(2);
  });

  it("refuses to mark a CREATE DATABASE that goes on past its line", () => {
    const sql = "CREATE DATABASE app\n  TEMPLATE template0;\n\\connect app\n";
    expect(() => retarget(Buffer.from(sql), "app", "pgsb_restore_a", 1024, "SELECT 1;")).toThrow(/does not end on its line/);
  });

  it("retargets a template1/postgres section, which only has the \\connect line", async () => {
    const data = await section("postgres");
    expect(retarget(data, "postgres", "pgsb_restore_p", 64)).toBe(dropKeyed(data.toString("utf8")).replace("\\connect postgres\n", `${R}\n`));
  });

  it.each([
    ["a statement before \\connect", "CREATE TABLE t (a int);\n\\connect app\n", /before its \\connect/],
    ["a CREATE DATABASE of another name", "CREATE DATABASE other;\n\\connect app\n", /creates database "other"/],
    ["a \\connect to another database", "CREATE DATABASE app;\n\\connect other\n", /connects to "other"/],
    ["no \\connect at all", "SET x = 1;\nCREATE DATABASE app;\n", /has no \\connect line/],
  ])("refuses %s", (_what, sql, message) => {
    expect(() => retarget(Buffer.from(sql), "app", "pgsb_restore_a", 1024)).toThrow(message);
  });
});

describe("connectTarget and databaseSpan", () => {
  it.each([
    ["\\connect app", "app"],
    ['\\connect "App"', "App"],
    [`\\connect -reuse-previous=on "dbname='quo""te'"`, 'quo"te'],
    [`\\connect -reuse-previous=on "dbname='it\\'s'"`, "it's"],
    [`\\connect -reuse-previous=on "dbname='with space'"`, "with space"],
  ])("%s names %s", (line, name) => {
    expect(connectTarget(Buffer.from(line).toString("latin1"))).toBe(name);
  });

  it("finds the database name of each form and leaves other statements alone", () => {
    expect(databaseSpan('SECURITY LABEL FOR sepgsql ON DATABASE "x" IS \'y\';', "x")).toEqual({ start: 39, end: 42, ours: true, create: false });
    expect(databaseSpan("GRANT ALL ON DATABASE app TO bob;", "x")).toEqual({ start: 22, end: 25, ours: false, create: false });
    expect(databaseSpan("CREATE DATABASE x;", "x")).toEqual({ start: 16, end: 17, ours: true, create: true });
    expect(databaseSpan("ALTER TABLE app OWNER TO bob;", "app")).toBeNull();
    expect(databaseSpan("GRANT SELECT ON TABLE database TO bob;", "database")).toBeNull();
  });
});

describe("a long line", () => {
  it("is scanned in linear time, and a 100 MB one-line function body passes byte for byte", () => {
    const body = "x".repeat(100 << 20);
    const section = Buffer.from(`CREATE DATABASE app;\n\\connect app\nCREATE FUNCTION f() RETURNS text LANGUAGE sql AS $_$ SELECT '${body}' $_$; ALTER DATABASE app SET work_mem TO '8MB';\nSELECT 1;\n`);
    const t0 = Date.now();
    const out = retarget(section, "app", "tmp_db", 64 * 1024);
    const ms = Date.now() - t0;
    const expected = section.toString("latin1").replace("CREATE DATABASE app", 'CREATE DATABASE "tmp_db"').replace("\\connect app", R).replace("ALTER DATABASE app", 'ALTER DATABASE "tmp_db"');
    expect(out === expected).toBe(true);
    console.log(`retarget: 100 MiB line in 64 KiB chunks: ${ms} ms`);
  });
});
