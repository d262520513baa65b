// Failures never leave a half-restored database under the real name: a psql error or a
// truncated section drops the temporary database and keeps the existing one; the error names
// the file, the database and psql's line. Replacing postgres, where the lock lives, works.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256File } from "../../lib/store/checksum.js";
import { run as backup } from "../../tasks/backup.js";
import type { ClusterInfo } from "../cluster.js";
import { ClusterSet, psqlScript, sql } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

const clusters = new ClusterSet();
let src: ClusterInfo;
let plainSql: string;
let fullName: string;
let dir: string;

/** A plain .sql backup (no manifest) with a checksum sidecar, as a seed-era or hand-made file would be. */
async function plainBackup(name: string, text: string): Promise<string> {
  const path = join(tempDir(), name);
  writeFileSync(path, text);
  writeFileSync(`${path}.sha256`, `${await sha256File(path)}  ${name}\n`);
  return path;
}

const databases = async (c: ClusterInfo) => (await sql(c, "postgres", "SELECT datname FROM pg_database ORDER BY 1")).rows.map((r: { datname: string }) => r.datname);

beforeAll(async () => {
  src = await clusters.create("rf-src");
  dir = tempDir();
  psqlScript(src, "postgres", "CREATE DATABASE shop; CREATE DATABASE stock;");
  psqlScript(src, "shop", "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 100);");
  psqlScript(src, "stock", "CREATE TABLE s (id int); INSERT INTO s VALUES (1);");
  const r = await backup(testConfig(src, dir, { BACKUP_COMPRESSION: "none" }), testDeps(), { tier: "full", force: false, dryRun: false, allowNewCluster: false });
  if (r.status !== "written") throw new Error("no full backup");
  fullName = r.name;
  plainSql = readFileSync(r.path, "utf8");
});

afterAll(() => clusters.destroyAll());

describe("a failing restore", () => {
  it("names file, database and line; the temporary database is dropped and the existing one kept", async () => {
    const dst = await clusters.create("rf-psql");
    psqlScript(dst, "postgres", "CREATE DATABASE shop;");
    await sql(dst, "shop", "CREATE TABLE precious (x int); INSERT INTO precious VALUES (1)");
    const broken = plainSql.replace("CREATE TABLE public.items (\n", "CREATE TABLE public.items (\n    b nosuchtype,\n");
    const path = await plainBackup("broken.sql", broken);
    const r = await runCli(["restore-full", path, "--drop-existing"], cliEnv(dst, dir));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/restore failed for 1 of 4 database\(s\): database "shop" from broken\.sql: psql exited with 3 at line \d+ of its section: ERROR: {1,2}type "nosuchtype" does not exist/);
    expect(r.stderr).toMatch(/\(shop left unchanged\)\. Restored: "template1", "postgres", "stock"/);
    expect(await databases(dst)).toEqual(["postgres", "shop", "stock", "template0", "template1"]);
    expect((await sql(dst, "shop", "SELECT x FROM precious")).rows).toEqual([{ x: 1 }]);
  });

  it("a section cut short by a truncated file is not renamed into place", async () => {
    const dst = await clusters.create("rf-trunc");
    const cut = plainSql.slice(0, plainSql.indexOf("COPY public.items") + 200);
    const path = await plainBackup("cut.sql", cut);
    const r = await runCli(["restore-database", path, "shop"], cliEnv(dst, dir));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('database "shop" from cut.sql: its section ends early: the backup file is truncated');
    expect(await databases(dst)).toEqual(["postgres", "template0", "template1"]);
  });
});

describe("--drop-existing over a live cluster", () => {
  it("replaces postgres too, last, although the lock lives there", async () => {
    const dst = await clusters.create("rf-postgres");
    psqlScript(dst, "postgres", "CREATE TABLE stray (x int); CREATE DATABASE shop;");
    await sql(dst, "shop", "CREATE TABLE old (x int)");
    const refused = await runCli(["restore-full", fullName], cliEnv(dst, dir));
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('database "postgres" exists and is not empty');
    const r = await runCli(["restore-full", fullName, "--drop-existing"], cliEnv(dst, dir));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("replacing postgres, where the cluster lock lives");
    expect((await sql(dst, "postgres", "SELECT count(*)::int AS n FROM pg_class WHERE relname = 'stray'")).rows).toEqual([{ n: 0 }]);
    expect((await sql(dst, "shop", "SELECT count(*)::int AS n FROM items")).rows).toEqual([{ n: 100 }]);
    expect(await databases(dst)).toEqual(["postgres", "shop", "stock", "template0", "template1"]);
  });
});
