// auto-restore on real clusters: a no-op on a live cluster, a full restore (roles included)
// of a wiped one behind the write gate, which it then lifts; two runs at once restore once
// (the lock); with no backups it only lifts the gate; the next backup of the restored
// cluster starts a new chain instead of refusing.
import { cpSync, existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCK_KEY } from "../../lib/postgres/lock.js";
import { run as backup } from "../../tasks/backup.js";
import type { ClusterInfo } from "../cluster.js";
import { ClusterSet, normalisedDumpall, psqlScript, sql } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

const clusters = new ClusterSet();
let src: ClusterInfo;
let dir: string;
let clock = Date.parse("2026-05-03T03:00:00Z");
const now = () => new Date((clock += 60_000));

/** A wiped data volume: a new cluster whose init hook set the write gate (as stack/initdb/10-write-gate.sh does). */
async function wipedCluster(name: string, init = ""): Promise<ClusterInfo> {
  const c = await clusters.create(name);
  psqlScript(c, "postgres", `${init} ALTER SYSTEM SET default_transaction_read_only = on; SELECT pg_reload_conf();`);
  return c;
}

async function gate(c: ClusterInfo): Promise<string> {
  return (await sql(c, "postgres", "SHOW default_transaction_read_only")).rows[0].default_transaction_read_only as string;
}

beforeAll(async () => {
  src = await clusters.create("ar-src");
  dir = tempDir();
  psqlScript(src, "postgres", `
    CREATE ROLE svc LOGIN PASSWORD 'svc-pw';
    CREATE DATABASE orders OWNER svc;
    CREATE DATABASE "ünï qu""ote";`);
  psqlScript(src, "orders", "CREATE TABLE o (id int PRIMARY KEY, v text); INSERT INTO o SELECT g, 'v' || g FROM generate_series(1, 2000) g; ALTER TABLE o OWNER TO svc;");
  const full = await backup(testConfig(src, dir), testDeps(now), { tier: "full", force: false, dryRun: false, allowNewCluster: false });
  expect(full.status).toBe("written");
  await sql(src, "ünï qu\"ote", "CREATE TABLE later (x int); INSERT INTO later VALUES (1)");
  await new Promise((r) => setTimeout(r, 300));
  const inc = await backup(testConfig(src, dir), testDeps(now), { tier: "incremental", force: false, dryRun: false, allowNewCluster: false });
  expect(inc.status === "written" && inc.manifest.included).toEqual(["ünï qu\"ote"]);
});

afterAll(() => {
  clusters.destroyAll();
});

describe("auto-restore", () => {
  it("does nothing on the live cluster the backups come from", async () => {
    const before = normalisedDumpall(src);
    const r = await runCli(["auto-restore", "--wait", "5"], cliEnv(src, dir));
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("nothing to do: the cluster has user data");
    expect(normalisedDumpall(src)).toBe(before);
  });

  it("leaves a live cluster alone without asking for the lock, so a running backup never makes it exit 3", async () => {
    const holder = new pg.Client({ host: src.socketDir, port: src.port, user: "postgres", database: "postgres" });
    await holder.connect();
    try {
      await holder.query("SELECT pg_advisory_lock($1)", [LOCK_KEY]);
      const r = await runCli(["auto-restore", "--wait", "5"], cliEnv(src, dir, { LOCK_MODE: "skip" }));
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toContain("nothing to do: the cluster has user data");
    } finally {
      await holder.end();
    }
  });

  it("restores a wiped cluster behind the write gate, roles included, then lifts the gate", async () => {
    // The postgres image's POSTGRES_DB makes an empty database; it holds no data, so it does not stop auto-restore.
    const dst = await wipedCluster("ar-wiped", "CREATE DATABASE orders;");
    // A copy, because the backup taken at the end adds a newer chain the other tests must not see.
    const own = tempDir();
    cpSync(dir, own, { recursive: true });
    expect(await gate(dst)).toBe("on");
    await expect(sql(dst, "postgres", "CREATE TABLE app_write (x int)")).rejects.toThrow(/read-only transaction/);
    // The scheduled backup meets it first: a wipe (exit 4), not a new cluster to start a chain with (issue 25).
    const files = readdirSync(join(own, "full")).sort();
    const refused = await runCli(["backup", "incremental"], cliEnv(dst, own));
    expect(refused.code, refused.stderr).toBe(4);
    expect(refused.stderr).toMatch(/freshly initialised.*POSTGRES_DB does not count.*auto-restore/s);
    expect(readdirSync(join(own, "full")).sort()).toEqual(files);
    expect(existsSync(join(own, "incremental")) ? readdirSync(join(own, "incremental")).filter((f) => f.endsWith(".json")) : []).toHaveLength(1);
    const t0 = Date.now();
    const r = await runCli(["auto-restore"], cliEnv(dst, own));
    console.log(`auto-restore of a wiped cluster: ${Date.now() - t0} ms`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/restored 4 database\(s\) from .*_full\.sql\.bz2 -> .*_incremental\.sql\.bz2 .*; write gate lifted/);
    expect(normalisedDumpall(dst)).toBe(normalisedDumpall(src));
    expect(await gate(dst)).toBe("off");
    await sql(dst, "orders", "INSERT INTO o VALUES (9999, 'after')");

    // The next scheduled backup of the restored cluster starts a new chain rather than refusing.
    const next = await backup(testConfig(dst, own), testDeps(now), { tier: "incremental", force: false, dryRun: false, allowNewCluster: false });
    expect(next.status === "written" && next.tier).toBe("full");
  });

  it("run twice at once: one restores, the other waits for the lock and then does nothing", async () => {
    const dst = await wipedCluster("ar-twice");
    const runs = await Promise.all([runCli(["auto-restore"], cliEnv(dst, dir)), runCli(["auto-restore"], cliEnv(dst, dir))]);
    expect(runs.map((r) => r.code)).toEqual([0, 0]);
    const restored = runs.filter((r) => /write gate lifted/.test(r.stdout));
    const skipped = runs.filter((r) => /nothing to do: the cluster has user data/.test(r.stderr));
    expect([restored.length, skipped.length]).toEqual([1, 1]);
    expect(skipped[0]?.stderr).toContain("waiting for the cluster lock");
    expect(normalisedDumpall(dst)).toBe(normalisedDumpall(src));
    expect(await gate(dst)).toBe("off");
  });

  it("with no backups at all, lifts the gate at once and says so", async () => {
    const dst = await wipedCluster("ar-empty");
    const r = await runCli(["auto-restore"], cliEnv(dst, tempDir()));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("no backups in BACKUP_DIR: a new installation, nothing to restore; write gate lifted");
    expect(await gate(dst)).toBe("off");
  });
});
