// restore-pitr against real clusters: a source under pgbench writes, pg_receivewal (lz4) into
// BACKUP_DIR/wal and a base backup by `backup base`; two marked transactions with a time between them; then
// restores to that time and to the end of the WAL after an immediate shutdown, each started
// by postgres as the postgres OS user and queried. Refusals (time outside the range, a WAL
// gap, a live postmaster, a non-empty folder) are checked to write nothing.
import { execFileSync, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep } from "../../lib/core/concurrency.js";
import type { ClusterInfo } from "../cluster.js";
import { clusterEnv, createCluster, destroyCluster, sql, stopCluster } from "../cluster.js";
import { cliEnv, runCli, snapshot, tempDir, testConfig, testDeps } from "../helpers.js";
import { run as verify } from "../../tasks/verify.js";
import type { Receiver } from "../pitrFixtures.js";
import { restoreTarget, startReceiver, startRestored } from "../pitrFixtures.js";

let src: ClusterInfo;
let backupDir: string;
let receiver: Receiver | undefined;
let pgbench: ChildProcess | undefined;
const cleanup: (() => void)[] = [];
let between: string;
let lastTick: Date;
let shutdownAt: Date;

async function until<T>(what: string, ms: number, fn: () => Promise<T | null>): Promise<T> {
  for (const end = Date.now() + ms; ; await sleep(200)) {
    const v = await fn().catch(() => null);
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
  }
}

/** A restored cluster's folder, destroyed in afterAll. */
async function target(name: string): Promise<ClusterInfo> {
  const t = await restoreTarget(name);
  cleanup.push(() => destroyCluster(t));
  return t;
}

/** Starts the restored cluster and waits until it has promoted. */
async function startAndPromote(t: ClusterInfo): Promise<number> {
  const t0 = Date.now();
  try {
    startRestored(t);
  } catch (err) {
    throw new Error(`the restored cluster did not start: ${readFileSync(join(t.dir, "server.log"), "utf8").slice(-3000)}`, { cause: err });
  }
  await until("the restored cluster to promote", 60_000, async () => ((await sql(t, "postgres", "SELECT pg_is_in_recovery() AS r")).rows[0].r === false ? true : null));
  return (Date.now() - t0) / 1000;
}

const env = () => cliEnv(src, backupDir, { BACKUP_COMPRESSION: "zstd" });

beforeAll(async () => {
  src = await createCluster({ name: "pitr-src" });
  cleanup.push(() => destroyCluster(src));
  backupDir = tempDir("pgsb-pitr-");
  cleanup.push(() => rmSync(backupDir, { recursive: true, force: true }));
  receiver = startReceiver(src, join(backupDir, "wal"), "lz4");
  const penv = { PATH: process.env.PATH, ...clusterEnv(src) };
  execFileSync("pgbench", ["-i", "-q", "-s", "2", "postgres"], { env: penv, stdio: "ignore", timeout: 60_000 });
  await sql(src, "postgres", "CREATE TABLE marks (label text PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())");
  pgbench = spawn("pgbench", ["-n", "-c", "2", "-T", "60", "-R", "100", "postgres"], { env: penv, stdio: "ignore" });
  // The real `backup base` (pg_basebackup -X fetch through zstd), as the stack runs it.
  const base = await runCli(["backup", "base"], env());
  if (base.code !== 0) throw new Error(`backup base failed: ${base.stderr}`);
  await sql(src, "postgres", "INSERT INTO marks (label) VALUES ('first')");
  await sleep(1500);
  between = (await sql(src, "postgres", "SELECT to_json(clock_timestamp())#>>'{}' AS t")).rows[0].t as string;
  await sleep(1500);
  await sql(src, "postgres", "INSERT INTO marks (label) VALUES ('second')");
  // A commit every 100 ms until 5 s before the crash; the newest one restored gives the recovery point.
  for (let i = 0; i < 20; i++) {
    await sql(src, "postgres", "INSERT INTO marks (label) VALUES ($1)", [`tick-${i}`]);
    await sleep(100);
  }
  lastTick = new Date((await sql(src, "postgres", "SELECT max(at) AS t FROM marks")).rows[0].t as string);
  await sleep(5000);
}, 120_000);

afterAll(async () => {
  pgbench?.kill("SIGKILL");
  await receiver?.stop();
  for (const f of cleanup.reverse()) {
    try {
      f();
    } catch {
      // keep cleaning
    }
  }
});

describe("restore-pitr", () => {
  it("refuses a data directory a live postmaster uses", async () => {
    const r = await runCli(["restore-pitr", "--pgdata", src.dataDir, "--move-aside"], env());
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/belongs to a running PostgreSQL server/);
    const dry = await runCli(["restore-pitr", "--pgdata", src.dataDir, "--dry-run"], env());
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/\(live\): would be refused now: .*belongs to a running PostgreSQL server/);
  });

  it("refuses a time before the oldest base backup or after the newest WAL, writing nothing", async () => {
    const t = await target("pitr-range");
    for (const at of ["2000-01-01T00:00:00Z", new Date(Date.now() + 3_600_000).toISOString()]) {
      const r = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--at", at], env());
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/restorable range: \S+ \(end of the oldest base backup \S+_base\.tar\.zst\) to \S+ \(newest WAL\)/);
    }
    expect(readdirSync(t.dir)).toEqual(["sock"]);
    const bad = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--at", "yesterday"], env());
    expect(bad.code).toBe(2);
  });

  it("recovers to --at: the transaction before the time is there, the one after is not", async () => {
    const t = await target("pitr-at");
    const dry = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--at", between, "--dry-run"], env());
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/base backup: +\S+_base\.tar\.zst/);
    expect(existsSync(t.dataDir)).toBe(false);
    // As root, --owner hands the files to the server's user (on Swarm: the postgres image's uid).
    const serverUid = process.getuid?.() === 0 ? Number(execFileSync("id", ["-u", "postgres"]).toString()) : (process.getuid?.() as number);
    const owner = process.getuid?.() === 0 ? ["--owner", `${serverUid}:${execFileSync("id", ["-g", "postgres"]).toString().trim()}`] : [];
    const r = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--at", between, ...owner], env());
    expect(r.code, r.stderr).toBe(0);
    const st = statSync(t.dataDir);
    expect(st.mode & 0o777).toBe(0o700);
    expect([st.uid, statSync(join(t.dataDir, "global", "pg_control")).uid, statSync(join(t.dataDir, "pgsb_wal")).uid]).toEqual([serverUid, serverUid, serverUid]);
    expect(readdirSync(t.dir).filter((n) => n.endsWith(".partial"))).toEqual([]);
    await startAndPromote(t);
    const labels = (await sql(t, "postgres", "SELECT label FROM marks ORDER BY at")).rows.map((x) => x.label as string);
    expect(labels).toEqual(["first"]);
  });

  it("crash of the source: restores to the end of the WAL (recovery point measured), moving a non-empty folder aside only when asked", async () => {
    pgbench?.kill("SIGKILL");
    shutdownAt = new Date();
    stopCluster(src, "immediate");
    await sleep(500);
    await receiver?.stop();
    const t = await target("pitr-end");
    mkdirSync(t.dataDir);
    writeFileSync(join(t.dataDir, "old-file"), "keep me");
    // A killed server's postmaster.pid, naming a pid that now runs another program (here: this test runner).
    writeFileSync(join(t.dataDir, "postmaster.pid"), `${process.pid}\n${t.dataDir}\n0\n${t.port}\n${t.socketDir}\n\n`);
    const stale = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--dry-run"], env());
    expect(stale.stdout).toMatch(/\(non-empty\): would be refused now: .*--move-aside/);
    const before = snapshot(t.dir);
    const refused = await runCli(["restore-pitr", "--pgdata", t.dataDir], env());
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/--move-aside/);
    expect(snapshot(t.dir)).toEqual(before);

    const t0 = Date.now();
    const r = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--move-aside"], env());
    const restoreSeconds = (Date.now() - t0) / 1000;
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(t.dataDir).uid).toBe(process.getuid?.());
    const moved = readdirSync(t.dir).filter((n) => n.startsWith("data.pgsb-moved-"));
    expect(moved).toHaveLength(1);
    expect(readdirSync(join(t.dir, moved[0] as string)).sort()).toEqual(["old-file", "postmaster.pid"]);
    const replaySeconds = await startAndPromote(t);
    const rows = (await sql(t, "postgres", "SELECT label, at FROM marks ORDER BY at")).rows as { label: string; at: Date }[];
    expect(rows.map((x) => x.label)).toContain("tick-19");
    const newest = rows.at(-1)?.at as Date;
    // pgbench wrote until the crash: its newest restored transaction is the recovery point.
    const bench = (await sql(t, "postgres", "SELECT count(*)::int AS n, max(mtime) AT TIME ZONE current_setting('TimeZone') AS newest FROM pgbench_history")).rows[0] as { n: number; newest: Date };
    const rpo = (shutdownAt.getTime() - bench.newest.getTime()) / 1000;
    console.log(
      `restore-pitr to the end of WAL: restore ${restoreSeconds.toFixed(1)} s, replay+promote ${replaySeconds.toFixed(1)} s; ` +
        `marked row committed ${((shutdownAt.getTime() - lastTick.getTime()) / 1000).toFixed(1)} s before the crash restored; newest pgbench transaction restored ${rpo.toFixed(2)} s before the crash (recovery point); ${bench.n} pgbench_history rows`,
    );
    expect(rpo).toBeLessThan(2);
    expect(newest.getTime()).toBe(lastTick.getTime());
  });

  it("verify checks the newest base backup and the WAL, and --restore recovers it in a scratch cluster", async () => {
    const report = await verify(testConfig(src, backupDir), testDeps(), { json: false, restore: true, server: null });
    const physical = report.checks.filter((c) => ["base-checksum", "base-verifybackup", "wal-continuity", "pitr-restore"].includes(c.name));
    expect(physical.map((c) => [c.name, c.ok, c.message])).toEqual([
      ["base-checksum", true, expect.any(String)],
      ["base-verifybackup", true, expect.stringMatching(/pg_verifybackup found all \d+ files/)],
      ["wal-continuity", true, expect.stringMatching(/is complete/)],
      ["pitr-restore", true, expect.stringMatching(/reached a consistent state and promoted/)],
    ]);
    expect(readdirSync(tmpdir()).filter((n) => n.startsWith("pgsb-verify-pitr-") || n.startsWith("pgsb-verify-base-"))).toEqual([]);
  });

  it("refuses a WAL gap, naming the first missing segment, and writes nothing", async () => {
    const walDir = join(backupDir, "wal");
    const segs = readdirSync(walDir).filter((n) => /^[0-9A-F]{24}\.lz4$/.test(n)).sort();
    // The newest complete segment: the base backup's WAL or after it, with the .partial beyond it.
    const hole = segs.at(-1) as string;
    renameSync(join(walDir, hole), join(backupDir, hole));
    try {
      const t = await target("pitr-gap");
      const r = await runCli(["restore-pitr", "--pgdata", t.dataDir], env());
      expect(r.code).toBe(4);
      expect(r.stderr).toContain(`${hole.slice(0, 24)} is missing`);
      expect(readdirSync(t.dir)).toEqual(["sock"]);
      const v = await runCli(["verify"], env());
      expect(v.code).toBe(5);
      expect(v.stdout).toMatch(new RegExp(`FAIL +wal-continuity +${hole.slice(0, 24)} +WAL segment ${hole.slice(0, 24)} is missing`));
    } finally {
      renameSync(join(backupDir, hole), join(walDir, hole));
    }
  });
});
