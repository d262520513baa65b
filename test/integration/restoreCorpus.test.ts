// Genuine backups are never refused: what pg_dump writes restores exactly, equal to the source
// by pg_dumpall, backslashes and all. Each object below puts a backslash where a lexer that
// re-decides psql's rules could stumble: at the end of a string literal (views, defaults,
// CHECK and LIKE … ESCAPE, function bodies in both forms, comments, index expressions,
// policies, rules), in identifiers, in U&'' strings; and the settings that change how psql
// reads its input: standard_conforming_strings off as a database setting, LATIN1 and
// SQL_ASCII databases.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run as backup } from "../../tasks/backup.js";
import type { ClusterInfo } from "../cluster.js";
import { ClusterSet, normalisedDumpall, psqlScript } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

const clusters = new ClusterSet();
let src: ClusterInfo;

const CORPUS = String.raw`
SET standard_conforming_strings = on;
CREATE TABLE t (id int PRIMARY KEY, v text DEFAULT 'C:\path\', "we\ird" text DEFAULT '\', CHECK (v NOT LIKE '%\_x%' ESCAPE '\'));
INSERT INTO t VALUES (1, 'ends in \', 'a\b\'), (2, '\\', '\');
CREATE VIEW v1 AS SELECT '\' AS x, E'\\' AS y, 'a''b\' AS z;
CREATE VIEW v2 AS SELECT v FROM t WHERE v LIKE '%\' ESCAPE '!' OR v LIKE '\%' ESCAPE '\';
CREATE FUNCTION f_std() RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT '\' AS x; END;
CREATE FUNCTION f_dollar() RETURNS text LANGUAGE plpgsql AS $$BEGIN RETURN '\'; END$$;
CREATE FUNCTION f_quoted() RETURNS text LANGUAGE sql AS 'SELECT ''\''::text';
COMMENT ON TABLE t IS 'a comment that ends in a backslash \';
COMMENT ON COLUMN t."we\ird" IS '\';
CREATE INDEX t_expr ON t ((v || '\'));
ALTER TABLE t ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON t USING (v <> '\');
CREATE TABLE "back\slash" (x text);
INSERT INTO "back\slash" VALUES (U&'\0041\005C'), (U&'!005C' UESCAPE '!');
CREATE RULE r AS ON INSERT TO "back\slash" WHERE NEW.x = '\' DO INSTEAD NOTHING;
CREATE TABLE copy_data (x text);
INSERT INTO copy_data VALUES ('\.'), (E'line\nbreak\\'), ('tab	\');
`;

beforeAll(async () => {
  src = await clusters.create("corpus-src");
  psqlScript(src, "postgres", "CREATE ROLE owner_r LOGIN; CREATE DATABASE corpus OWNER owner_r; CREATE DATABASE scs_off; CREATE DATABASE latin TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'; CREATE DATABASE ascii TEMPLATE template0 ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C';");
  psqlScript(src, "corpus", CORPUS);
  psqlScript(src, "scs_off", CORPUS);
  psqlScript(src, "postgres", "ALTER DATABASE scs_off SET standard_conforming_strings = off;");
  // Latin-1 bytes as Latin-1 text, and bytes no encoding checks in SQL_ASCII.
  psqlScript(src, "latin", "SET client_encoding = 'LATIN1';\n" + Buffer.from("CREATE TABLE l (x text DEFAULT 'caf\xe9\\');\nINSERT INTO l VALUES ('\xe9\\'), ('\xff''\\');\nCOMMENT ON TABLE l IS '\xe9\\';\n", "latin1").toString("latin1"));
  psqlScript(src, "ascii", "CREATE TABLE a (x text);\nINSERT INTO a VALUES (E'\\x81\\\\'), (E'\\xfe\\x27\\\\');\nCREATE VIEW av AS SELECT E'\\x81' || '\\' AS y;\n");
});

afterAll(() => clusters.destroyAll());

describe("a genuine corpus of backslashes and encodings", () => {
  it.each(["bzip2", "zstd"])("backed up (%s) and restored with restore-latest, equal to the source by pg_dumpall", async (codec) => {
    const dir = tempDir("pgsb-corpus-");
    const r = await backup(testConfig(src, dir, { BACKUP_COMPRESSION: codec }), testDeps(), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
    expect(r.status).toBe("written");
    const dst = await clusters.create(`corpus-dst-${codec}`);
    const out = await runCli(["restore-latest"], cliEnv(dst, dir));
    expect(out.code, out.stderr.split("\n").filter((l) => l.includes('"error"')).join("\n")).toBe(0);
    expect(normalisedDumpall(dst)).toBe(normalisedDumpall(src));
  });
});
