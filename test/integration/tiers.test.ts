// Differential and incremental tiers on a real cluster: every kind of change is seen,
// alone, by the next incremental, and an idle cluster costs nothing.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import pg from "pg";
import { LOCK_KEY } from "../../lib/postgres/lock.js";
import { run as backup } from "../../tasks/backup.js";
import type { BackupResult } from "../../tasks/backup.js";
import type { ClusterInfo } from "../cluster.js";
import { createCluster, destroyCluster, sql, startCluster, stopCluster } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

let c: ClusterInfo;
let dir: string;
let clock = Date.parse("2026-11-01T00:00:00Z");
// A fixed, advancing clock: names are unique and ordered however fast the runs are.
const now = () => new Date((clock += 60_000));
const settle = () => new Promise((r) => setTimeout(r, 300));

async function incremental(extra: Record<string, string> = {}): Promise<BackupResult> {
  return backup(testConfig(c, dir, extra), testDeps(now), { tier: "incremental", force: false, dryRun: false, allowNewCluster: false });
}

function included(r: BackupResult): string[] | "skipped" {
  return r.status === "written" ? r.manifest.included : "skipped";
}

beforeAll(async () => {
  c = await createCluster({ name: "tiers" });
  dir = tempDir();
  for (const db of ["a", "b", "c"]) await sql(c, "postgres", `CREATE DATABASE ${db}`);
  await sql(c, "a", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v' FROM generate_series(1, 100) g; CREATE SEQUENCE s; CREATE ROLE r");
  const full = await backup(testConfig(c, dir), testDeps(now), { tier: "full", force: false, dryRun: false, allowNewCluster: false });
  expect(full.status).toBe("written");
});

afterAll(() => destroyCluster(c));

describe("change detection", () => {
  it("an idle cluster: ten incrementals in a row write nothing", async () => {
    await settle();
    for (let i = 0; i < 10; i++) expect(included(await incremental())).toBe("skipped");
  });

  // Each change alone: the next incremental holds exactly the changed database (or only the globals).
  it.each([
    ["INSERT", "a", "INSERT INTO t VALUES (1000, 'x')", ["a"]],
    ["UPDATE in place (same size)", "a", "UPDATE t SET v = 'w' WHERE id = 1", ["a"]],
    ["DELETE", "a", "DELETE FROM t WHERE id = 2", ["a"]],
    ["TRUNCATE", "b", "CREATE TABLE u (x int)", ["b"]],
    ["TRUNCATE of an empty table", "b", "TRUNCATE u", ["b"]],
    ["CREATE TABLE", "c", "CREATE TABLE n (x int)", ["c"]],
    ["ALTER TABLE", "c", "ALTER TABLE n ADD COLUMN y text", ["c"]],
    ["DROP TABLE", "c", "DROP TABLE n", ["c"]],
    ["CREATE VIEW", "a", "CREATE VIEW v AS SELECT id FROM t", ["a"]],
    ["ALTER VIEW", "a", "ALTER VIEW v RENAME TO v2", ["a"]],
    ["DROP VIEW", "a", "DROP VIEW v2", ["a"]],
    ["CREATE FUNCTION", "b", "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", ["b"]],
    ["ALTER FUNCTION", "b", "ALTER FUNCTION f() RENAME TO g", ["b"]],
    ["DROP FUNCTION", "b", "DROP FUNCTION g()", ["b"]],
    ["GRANT", "a", "GRANT SELECT ON t TO r", ["a"]],
    ["REVOKE", "a", "REVOKE SELECT ON t FROM r", ["a"]],
    ["CREATE ROLE", "postgres", "CREATE ROLE newbie LOGIN", []],
    ["ALTER ROLE (password)", "postgres", "ALTER ROLE newbie PASSWORD 'changed'", []],
    ["role membership", "postgres", "GRANT r TO newbie", []],
    ["DROP ROLE", "postgres", "REVOKE r FROM newbie; DROP ROLE newbie", []],
    ["large object write", "c", "SELECT lo_from_bytea(0, 'blob'::bytea)", ["c"]],
    ["nextval() without a table write", "a", "SELECT nextval('s')", ["a"]],
    ["pg_stat_reset()", "b", "SELECT pg_stat_reset()", ["b"]],
    ["CREATE DATABASE", "postgres", "CREATE DATABASE d", ["d"]],
  ])("%s", async (_kind, db, statement, expected) => {
    await sql(c, db, statement);
    await settle();
    const r = await incremental();
    expect(included(r)).toEqual(expected);
    // and then it is quiet again
    await settle();
    expect(included(await incremental())).toBe("skipped");
  });

  it("DROP DATABASE: written as a globals-only incremental whose database list no longer has it", async () => {
    await sql(c, "postgres", "DROP DATABASE d");
    await settle();
    const r = await incremental();
    expect(r.status).toBe("written");
    if (r.status !== "written") return;
    expect(r.manifest.included).toEqual([]);
    expect(r.manifest.databases).not.toContain("d");
  });

  it("a crash restart (counters lost) makes every database count as changed", async () => {
    stopCluster(c, "immediate");
    startCluster(c);
    const r = await incremental();
    expect(included(r)).toEqual(["template1", "a", "b", "c", "postgres"]);
    await settle();
    expect(included(await incremental())).toBe("skipped");
  });

  it("a change whose statistics are not flushed yet is caught by this run or the next, never lost", async () => {
    const client = new pg.Client({ host: c.socketDir, port: c.port, user: "postgres", database: "b" });
    await client.connect();
    try {
      // Several quick transactions: the backend flushes at most once a second, so the last ones
      // stay pending while the connection idles.
      await client.query("CREATE TABLE IF NOT EXISTS lag (x int)");
      for (let i = 0; i < 5; i++) await client.query("INSERT INTO lag VALUES ($1)", [i]);
      const runs: (string[] | "skipped")[] = [];
      for (let i = 0; i < 15 && !runs.some((r) => r !== "skipped" && r.includes("b")); i++) {
        runs.push(included(await incremental()));
        if (i > 0) await new Promise((r) => setTimeout(r, 1000));
      }
      expect(runs.some((r) => r !== "skipped" && r.includes("b"))).toBe(true);
    } finally {
      await client.end();
    }
  });
});

describe("tiers", () => {
  it("a differential holds every database changed since the full, and --dry-run says why", async () => {
    await settle();
    const deps = testDeps(now);
    await backup(testConfig(c, dir), deps, { tier: "differential", force: false, dryRun: true, allowNewCluster: false });
    expect(deps.output.join("")).toMatch(/differential backup \(compared with \d{8}_\d{6}_full\.sql\.bz2\)/);
    const r = await backup(testConfig(c, dir), testDeps(now), { tier: "differential", force: false, dryRun: false, allowNewCluster: false });
    expect(r.status).toBe("written");
    if (r.status === "written") {
      expect(r.manifest.included).toEqual(["template1", "a", "b", "c", "postgres"]); // the crash restart above
      expect(r.manifest.parent).toMatch(/_full\.sql\.bz2$/);
    }
  });

  it("differential and incremental fall back to a full when no valid full exists", async () => {
    const empty = tempDir();
    for (const tier of ["differential", "incremental"] as const) {
      const deps = testDeps(now);
      const r = await backup(testConfig(c, tempDir()), deps, { tier, force: false, dryRun: false, allowNewCluster: false });
      expect(r.status === "written" && r.tier).toBe("full");
      expect(deps.logs.some((l) => /taking a full instead of a/.test(String(l.msg)))).toBe(true);
    }
    expect(empty).toBeTruthy();
  });
});

describe("the cluster lock", () => {
  it("LOCK_MODE=skip exits with the lock-busy code and names the holder; wait waits", async () => {
    const holder = new pg.Client({ host: c.socketDir, port: c.port, user: "postgres", database: "postgres", application_name: "test holder" });
    await holder.connect();
    try {
      await holder.query("SELECT pg_advisory_lock($1)", [LOCK_KEY]);
      const skip = await runCli(["backup", "incremental"], cliEnv(c, dir, { LOCK_MODE: "skip" }));
      expect(skip.code).toBe(3);
      expect(skip.stderr).toMatch(/lock busy: "test holder" \(pid \d+.*LOCK_MODE=skip/);
      const timeout = await runCli(["backup", "incremental"], cliEnv(c, dir, { LOCK_MODE: "wait", LOCK_TIMEOUT_SECONDS: "1" }));
      expect(timeout.code).toBe(3);
      expect(timeout.stderr).toMatch(/after LOCK_TIMEOUT_SECONDS=1/);
      const waiting = runCli(["backup", "full", "--force"], cliEnv(c, dir, { LOCK_MODE: "wait", LOCK_TIMEOUT_SECONDS: "30" }));
      await new Promise((r) => setTimeout(r, 1500));
      await holder.query("SELECT pg_advisory_unlock($1)", [LOCK_KEY]);
      expect((await waiting).code).toBe(0);
    } finally {
      await holder.end();
    }
  });

  it("two concurrent tasks never dump at the same time", async () => {
    const d = tempDir();
    const cfg = testConfig(c, d);
    const args = { tier: "full" as const, force: true, dryRun: false, allowNewCluster: false };
    const [r1, r2] = await Promise.all([backup(cfg, testDeps(), args), backup(cfg, testDeps(() => new Date(Date.now() + 5000)), args)]);
    const windows = [r1, r2].map((r) => (r.status === "written" ? [Date.parse(r.manifest.startedAt), Date.parse(r.manifest.finishedAt)] : [0, 0]));
    const [w1, w2] = windows.sort((x, y) => (x[0] ?? 0) - (y[0] ?? 0)) as [number[], number[]];
    expect(r1.status).toBe("written");
    expect(r2.status).toBe("written");
    expect(w2[0]).toBeGreaterThanOrEqual(w1[1] ?? Infinity);
  });
});

describe("the fresh-cluster guard", () => {
  it("refuses a wiped and re-initialised cluster, an empty POSTGRES_DB-like database included, and starts a new chain once a database holds an object", async () => {
    const fresh = await createCluster({ name: "wiped" });
    try {
      const r = await runCli(["backup", "incremental"], cliEnv(fresh, dir));
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/freshly initialised.*auto-restore.*--allow-new-cluster/s);
      // An empty database (the postgres image's POSTGRES_DB) is not data: still a wipe (issue 25).
      await sql(fresh, "postgres", "CREATE DATABASE newapp");
      const again = await runCli(["backup", "incremental"], cliEnv(fresh, dir));
      expect(again.code, again.stderr).toBe(4);
      expect(again.stderr).toMatch(/POSTGRES_DB does not count/);
      await sql(fresh, "newapp", "CREATE TABLE t (x int)");
      const deps = testDeps(now);
      const started = await backup(testConfig(fresh, dir), deps, { tier: "incremental", force: false, dryRun: false, allowNewCluster: false });
      expect(started.status === "written" && started.tier).toBe("full");
      expect(deps.logs.some((l) => /new cluster: system_identifier/.test(String(l.msg)))).toBe(true);
    } finally {
      destroyCluster(fresh);
    }
  });
});
