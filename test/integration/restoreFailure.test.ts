// Failures never leave a half-restored database under the real name: a psql error or a
// truncated section drops the temporary database and keeps the existing one; the error names
// the file, the database and psql's line. Replacing postgres, where the lock lives, works.
// Only temporary databases the tool marked are ever dropped (a user's pgsb_restore_* survives),
// --as refuses the reserved prefixes and names PostgreSQL would cut, and an interrupted restore
// leaves nothing under the real names, so a plain re-run finishes it. --continue-on-error
// restores everything but the failed statements and exits 10.
import { spawn, execFileSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sha256File } from "../../lib/store/checksum.js";
import { run as backup } from "../../tasks/backup.js";
import type { ClusterInfo } from "../cluster.js";
import { ClusterSet, psqlScript, sql } from "../cluster.js";
import { CLI, cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

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

const fullPath = () => join(dir, "full", fullName);
const count = async (c: ClusterInfo, db: string, table: string) => Number((await sql(c, db, `SELECT count(*) AS n FROM ${table}`)).rows[0].n);

async function until<T>(what: string, probe: () => Promise<T | null>, seconds = 60): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const found = await probe().catch(() => null);
    if (found !== null) return found;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
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

describe("temporary databases", () => {
  it("drops a marked leftover and never a user's database that only has the prefix", async () => {
    const dst = await clusters.create("tmp-user");
    psqlScript(dst, "postgres", "CREATE DATABASE pgsb_restore_mine; CREATE DATABASE pgsb_restore_shop_deadbeef;");
    psqlScript(dst, "pgsb_restore_mine", "CREATE TABLE keep (x int); INSERT INTO keep VALUES (42);");
    psqlScript(dst, "postgres", "ALTER DATABASE pgsb_restore_shop_deadbeef SET pgsb.temporary_restore = 'on';");
    const r = await runCli(["restore-full", fullPath()], cliEnv(dst, dir));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/dropping pgsb_restore_shop_deadbeef, left over by an interrupted restore/);
    expect(await databases(dst)).toEqual(["pgsb_restore_mine", "postgres", "shop", "stock", "template0", "template1"]);
    expect((await sql(dst, "pgsb_restore_mine", "SELECT x FROM keep")).rows).toEqual([{ x: 42 }]);
    // The restored databases do not keep the mark.
    const marks = await sql(dst, "postgres", "SELECT count(*) AS n FROM pg_db_role_setting WHERE array_to_string(setconfig, ',') LIKE '%pgsb.%'");
    expect(Number(marks.rows[0].n)).toBe(0);
  });

  it.each([
    ["pgsb_restore_x", /--as "pgsb_restore_x": names starting with pgsb_restore_ are reserved/],
    ["pgsb_verify_x", /names starting with pgsb_verify_ are reserved/],
    ["a".repeat(64), /is 64 bytes long; PostgreSQL keeps only 63 and would cut it silently/],
    ["ü".repeat(32), /is 64 bytes long/],
  ])("--as %s is refused (exit 2) and nothing is created", async (as, message) => {
    const dst = await clusters.create("tmp-as");
    const r = await runCli(["restore-database", fullPath(), "shop", "--as", as], cliEnv(dst, dir));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(await databases(dst)).toEqual(["postgres", "template0", "template1"]);
  });

  it("an interrupted restore leaves only marked temporary databases; a plain re-run finishes it and drops them", async () => {
    const dst = await clusters.create("tmp-kill");
    // A psql that hangs once connected to stock's temporary database (after its CREATE DATABASE
    // ran): the restore is stuck in stock's section after shop's finished, and is killed there.
    const bin = tempDir("pgsb-stallbin-");
    const counter = join(bin, "count");
    const realPsql = execFileSync("sh", ["-c", "command -v psql"]).toString().trim();
    writeFileSync(
      join(bin, "psql"),
      `#!/bin/sh\ncase "$*" in *pgsb_restore_stock_*) echo 5 > ${counter}; exec sleep 120;; esac\nexec ${realPsql} "$@"\n`,
    );
    chmodSync(join(bin, "psql"), 0o755);
    const env = { PATH: `${bin}:${process.env.PATH}`, LOG_FILE: "", ...cliEnv(dst, dir) };
    const child = spawn(process.execPath, [CLI, "restore-full", fullPath()], { env, detached: true, stdio: "ignore" });
    try {
      await until("shop restored into its temporary database while stock hangs", async () => {
        if (!existsSync(counter) || Number(readFileSync(counter, "utf8")) < 5) return null;
        const temps = (await databases(dst)).filter((d) => d.startsWith("pgsb_restore_shop_"));
        return temps.length === 1 && (await count(dst, temps[0] as string, "items")) === 100 ? temps : null;
      });
    } finally {
      process.kill(-(child.pid as number), "SIGKILL");
    }
    await until("the killed psql processes to end", async () => ((await sql(dst, "postgres", "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'psql'")).rows[0].n === "0" ? true : null));
    const left = await databases(dst);
    expect(left).not.toContain("shop");
    expect(left).not.toContain("stock");
    expect(left.filter((d) => d.startsWith("pgsb_restore_")).length).toBeGreaterThan(0);
    const again = await runCli(["restore-full", fullPath()], cliEnv(dst, dir));
    expect(again.code, again.stderr).toBe(0);
    expect(await databases(dst)).toEqual(["postgres", "shop", "stock", "template0", "template1"]);
    expect(await count(dst, "shop", "items")).toBe(100);
  });
});

describe("--continue-on-error", () => {
  // A function whose C library the new server lacks: stock psql restores everything else.
  const MISSING = "CREATE FUNCTION public.needs_lib() RETURNS integer AS '$libdir/pgsb_no_such_lib', 'f' LANGUAGE c;\n";
  const broken = () => plainSql.replace("CREATE TABLE public.items (", `${MISSING}CREATE TABLE public.items (`);
  /** The line of MISSING counted from the shop section's first line, as psql numbers it. */
  const lineInSection = () => {
    const text = broken();
    const start = text.lastIndexOf("\n--\n", text.indexOf('-- Database "shop" dump')) + 1;
    return text.slice(start, text.indexOf(MISSING)).split("\n").length;
  };

  it("restores every statement that works, lists the failed one with file and line, and exits 10", async () => {
    const dst = await clusters.create("tmp-coe");
    const path = await plainBackup("missing-lib.sql", broken());
    const r = await runCli(["restore-full", path, "--continue-on-error"], cliEnv(dst, dir));
    expect(r.code, r.stderr).toBe(10);
    expect(r.stdout).toContain(`1 failed statement(s) in database "shop" from missing-lib.sql:\n  line ${lineInSection()} of its section: ERROR: could not access file "$libdir/pgsb_no_such_lib"`);
    expect(r.stderr).toMatch(/restore finished with 1 failed statement\(s\) in 1 part\(s\)/);
    expect(await count(dst, "shop", "items")).toBe(100);
    expect(await count(dst, "stock", "s")).toBe(1);
  });

  it("is opt-in: without it the database is refused whole and left as it was (exit 1)", async () => {
    const dst = await clusters.create("tmp-coe-off");
    const path = await plainBackup("missing-lib.sql", broken());
    const r = await runCli(["restore-full", path], cliEnv(dst, dir));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`database "shop" from missing-lib\\.sql: psql exited with 3 at line ${lineInSection()} of its section`));
    expect(await databases(dst)).toEqual(["postgres", "stock", "template0", "template1"]);
  });
});
