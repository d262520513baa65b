// restore-database and restore-full on real clusters: the roles a database needs are
// created from the file's globals, --as restores under another name, an existing non-empty
// database is refused (exit 4) unless --drop-existing, a corrupted file is refused before
// anything is touched, and list-databases reads the manifest or, without one, the file.
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run as backup } from "../../tasks/backup.js";
import { run as listDatabases } from "../../tasks/listDatabases.js";
import { run as restore } from "../../tasks/restore.js";
import type { ClusterInfo } from "../cluster.js";
import { ClusterSet, clusterEnv, psqlScript, sql } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

const clusters = new ClusterSet();
let src: ClusterInfo;
let dir: string;
let fullName: string;
let clock = Date.parse("2026-04-05T01:00:00Z");
const now = () => new Date((clock += 60_000));

/** pg_dump of one database (no database name inside), the \restrict keys normalised. */
function dump(c: ClusterInfo, database: string): string {
  const out = execFileSync("pg_dump", ["-d", `dbname='${database.replace(/'/g, "\\'")}'`], { env: { PATH: process.env.PATH, ...clusterEnv(c) } }).toString("utf8");
  return out.replace(/^\\(un)?restrict \S+$/gm, "\\$1restrict KEY");
}

const names = async (c: ClusterInfo, query: string) => (await sql(c, "postgres", query)).rows.map((r: { n: string }) => r.n);
const roles = (c: ClusterInfo) => names(c, "SELECT rolname AS n FROM pg_roles WHERE rolname !~ '^pg_' ORDER BY 1");
const databases = (c: ClusterInfo) => names(c, "SELECT datname AS n FROM pg_database ORDER BY 1");

beforeAll(async () => {
  src = await clusters.create("rd-src");
  dir = tempDir();
  psqlScript(src, "postgres", `
    CREATE ROLE shop_owner LOGIN PASSWORD 'pw';
    CREATE ROLE shop_reader;
    CREATE ROLE unrelated;
    GRANT shop_reader TO shop_owner;
    CREATE DATABASE "shop é" OWNER shop_owner;
    CREATE DATABASE other;`);
  psqlScript(src, "shop é", `
    CREATE TABLE items (id int PRIMARY KEY, name text);
    INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g;
    ALTER TABLE items OWNER TO shop_owner;
    GRANT SELECT ON items TO shop_reader;`);
  await sql(src, "other", "CREATE TABLE o (x int)");
  const r = await backup(testConfig(src, dir), testDeps(now), { tier: "full", force: false, dryRun: false, allowNewCluster: false });
  if (r.status !== "written") throw new Error("no full backup");
  fullName = r.name;
});

afterAll(() => {
  clusters.destroyAll();
});

describe("restore-database", () => {
  it("restores into a cluster without its roles: the missing roles come from the file's globals", async () => {
    const dst = await clusters.create("rd-roles");
    const r = await restore(testConfig(dst, dir), testDeps(), { command: "restore-database", file: fullName, db: "shop é", dropExisting: false });
    expect(r.status === "restored" && r.createdRoles.sort()).toEqual(["shop_owner", "shop_reader", "unrelated"]);
    expect(dump(dst, "shop é")).toBe(dump(src, "shop é"));
    expect(await databases(dst)).toEqual(["postgres", "shop é", "template0", "template1"]);
    const member = await sql(dst, "postgres", "SELECT pg_has_role('shop_owner', 'shop_reader', 'MEMBER') AS m");
    expect(member.rows[0].m).toBe(true);
  });

  it("--as restores under another name, beside the original", async () => {
    const dst = await clusters.create("rd-as");
    const file = join(dir, "full", fullName);
    await restore(testConfig(dst, dir), testDeps(), { command: "restore-database", file, db: "shop é", dropExisting: false });
    await restore(testConfig(dst, dir), testDeps(), { command: "restore-database", file, db: "shop é", as: 'copy "of" shop', dropExisting: false });
    expect(dump(dst, 'copy "of" shop')).toBe(dump(src, "shop é"));
    const owner = await sql(dst, "postgres", "SELECT pg_get_userbyid(datdba) AS o FROM pg_database WHERE datname = $1", ['copy "of" shop']);
    expect(owner.rows[0].o).toBe("shop_owner");
  });

  it("refuses an existing non-empty database (exit 4) and changes nothing; --drop-existing replaces it", async () => {
    const dst = await clusters.create("rd-exists");
    psqlScript(dst, "postgres", 'CREATE DATABASE "shop é";');
    await sql(dst, "shop é", "CREATE TABLE mine (x int); INSERT INTO mine VALUES (7)");
    const refused = await runCli(["restore-database", fullName, "shop é"], cliEnv(dst, dir));
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain('database "shop é" exists and is not empty; pass --drop-existing');
    expect((await sql(dst, "shop é", "SELECT x FROM mine")).rows).toEqual([{ x: 7 }]);
    expect(await roles(dst)).toEqual(["postgres"]);
    const replaced = await runCli(["restore-database", fullName, "shop é", "--drop-existing"], cliEnv(dst, dir));
    expect(replaced.code).toBe(0);
    expect(replaced.stdout).toMatch(/restored 1 database\(s\) from .*_full\.sql\.bz2/);
    expect(dump(dst, "shop é")).toBe(dump(src, "shop é"));
  });

  it("names the database when the file has no section of it", async () => {
    const dst = await clusters.create("rd-missing");
    const r = await runCli(["restore-database", fullName, "nope"], cliEnv(dst, dir));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('holds no section for database "nope"');
  });
});

describe("a corrupted file", () => {
  it("is refused (exit 4) before anything is touched", async () => {
    const dst = await clusters.create("rd-corrupt");
    const bad = tempDir();
    mkdirSync(join(bad, "full"));
    for (const f of readdirSync(join(dir, "full")).filter((f) => f.startsWith(fullName))) copyFileSync(join(dir, "full", f), join(bad, "full", f));
    const data = readFileSync(join(bad, "full", fullName));
    const middle = Math.floor(data.length / 2);
    data[middle] = (data[middle] as number) ^ 0x01;
    writeFileSync(join(bad, "full", fullName), data);
    const before = { roles: await roles(dst), databases: await databases(dst) };
    for (const args of [["restore-full", fullName], ["restore-database", fullName, "other"], ["restore-latest"]]) {
      const r = await runCli(args, cliEnv(dst, bad));
      expect(r.code, args.join(" ")).toBe(4);
      expect(r.stderr).toMatch(new RegExp(`restore refused: ${fullName}: checksum mismatch in chunk 1 of 1 \\(bytes 0–\\d+\\): the file was changed after the backup`));
    }
    expect({ roles: await roles(dst), databases: await databases(dst) }).toEqual(before);
  });
});

describe("restore-full and list-databases", () => {
  it("restore-full of a file without a manifest streams it for its databases", async () => {
    const dst = await clusters.create("rd-full");
    const plain = tempDir();
    const path = join(plain, "seed-backup.sql.bz2");
    copyFileSync(join(dir, "full", fullName), path);
    const sum = readFileSync(join(dir, "full", `${fullName}.sha256`), "utf8").split(/\s+/)[0];
    writeFileSync(`${path}.sha256`, `${sum}  seed-backup.sql.bz2\n`);
    const listed = await listDatabases(testConfig(dst, dir), testDeps(), { file: path, json: false });
    expect(listed.source).toBe("stream");
    expect(listed.databases.map((d) => [d.name, d.complete])).toEqual([["template1", true], ["other", true], ["postgres", true], ["shop é", true]]);
    const r = await restore(testConfig(dst, dir), testDeps(), { command: "restore-full", file: path, dropExisting: false });
    expect(r.status === "restored" && r.restored.sort()).toEqual(["other", "postgres", "shop é", "template1"]);
    expect(dump(dst, "shop é")).toBe(dump(src, "shop é"));
  });

  it("list-databases --json reads the manifest of a bare backup name", async () => {
    const r = await runCli(["list-databases", fullName, "--json"], cliEnv(src, dir));
    expect(r.code).toBe(0);
    const listing = JSON.parse(r.stdout) as { source: string; databases: { name: string; tables: number; rows: number }[] };
    expect(listing.source).toBe("manifest");
    expect(listing.databases.find((d) => d.name === "shop é")).toEqual({ name: "shop é", tables: 1, rows: 1000 });
  });
});
