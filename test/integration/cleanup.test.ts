// cleanup against real backups written by the backup task with a fixed clock: the files
// on disk must match the plan exactly, pointers are repaired, leftovers go, and every
// refusal leaves BACKUP_DIR untouched.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import pg from "pg";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { verifyChecksum } from "../../lib/store/checksum.js";
import { LOCK_KEY } from "../../lib/postgres/lock.js";
import { backupName } from "../../lib/store/naming.js";
import type { Tier } from "../../lib/store/naming.js";
import { readLatestPointer, updateLatestPointer } from "../../lib/store/latestPointer.js";
import { run as backup } from "../../tasks/backup.js";
import type { CleanupReport } from "../../tasks/cleanup.js";
import { run as cleanup } from "../../tasks/cleanup.js";
import { sql } from "../cluster.js";
import { cliEnv, runCli, snapshot, tempDir, testConfig, testDeps } from "../helpers.js";

const cluster = inject("cluster");
const DAY = 24 * 60 * 60 * 1000;
const T0 = new Date("2026-11-20T03:00:00Z");
const at = (days: number) => new Date(T0.getTime() - days * DAY);
const future = (days: number) => new Date(T0.getTime() + days * DAY).toISOString();

// The schedule under test, oldest first (each backup's parent is the newest before it).
const SCHEDULE: [string, Tier, number][] = [
  ["full60", "full", 60],
  ["full50", "full", 50],
  ["diff30", "differential", 30],
  ["incr20", "incremental", 20],
  ["full10", "full", 10],
  ["incr1", "incremental", 1],
];
const N = Object.fromEntries(SCHEDULE.map(([key, tier, days]) => [key, backupName(tier, at(days), "bzip2")])) as Record<string, string>;
const TIER_OF = Object.fromEntries(SCHEDULE.map(([key, tier]) => [N[key], tier])) as Record<string, Tier>;

let pristine: string;

beforeAll(async () => {
  const db = `cleanup_it_${process.pid}`;
  await sql(cluster, "postgres", `CREATE DATABASE ${db}`);
  await sql(cluster, db, "CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)");
  pristine = tempDir("pgsb-cleanup-pristine-");
  for (const [, tier, days] of SCHEDULE) {
    const r = await backup(testConfig(cluster, pristine), testDeps(() => at(days)), { tier, force: true, dryRun: false, allowNewCluster: false });
    expect(r.status).toBe("written");
  }
});

function fresh(): string {
  const dir = tempDir("pgsb-cleanup-");
  cpSync(pristine, dir, { recursive: true, verbatimSymlinks: true });
  return dir;
}

const filesOf = (dir: string, name: string) => {
  const base = join(dir, TIER_OF[name] ?? "?", name);
  return [base, `${base}.json`, `${base}.sha256`];
};

async function expectDiskMatches(dir: string, report: CleanupReport): Promise<void> {
  expect(report.decisions.map((d) => d.name)).toEqual(Object.values(N));
  for (const d of report.decisions) {
    const present = filesOf(dir, d.name).map((f) => existsSync(f));
    expect([d.name, present]).toEqual([d.name, d.action === "keep" ? [true, true, true] : [false, false, false]]);
    if (d.action === "keep") expect((await verifyChecksum(join(dir, d.tier, d.name))).ok).toBe(true);
  }
}

const actions = (report: CleanupReport) => Object.fromEntries(report.decisions.map((d) => [d.name, `${d.action}: ${d.reason}`]));
const pointer = (dir: string, tier: Tier) => readLatestPointer(join(dir, tier), tier, "bzip2");
const byteSum = (snap: Record<string, string>, names: string[]) =>
  Object.entries(snap)
    .filter(([rel]) => names.some((n) => rel.includes(n)))
    .reduce((sum, [, size]) => sum + Number(size), 0);

describe("cleanup: decisions on disk", () => {
  it("with the clock at T0 deletes only the 20-day incremental and repairs a pointer left on it", async () => {
    const dir = fresh();
    await updateLatestPointer(join(dir, "incremental"), "incremental", "bzip2", N.incr20!);
    const before = snapshot(dir);
    const deps = testDeps(() => T0);
    const report = await cleanup(testConfig(cluster, dir), deps, { dryRun: false, json: false });
    expect(actions(report)).toEqual({
      [N.full60!]: "keep: full: fulls are kept indefinitely",
      [N.full50!]: "keep: full: fulls are kept indefinitely",
      [N.diff30!]: "keep: differential within 42 days",
      [N.incr20!]: "delete: incremental older than 14 days",
      [N.full10!]: "keep: within 14 days",
      [N.incr1!]: "keep: within 14 days",
    });
    await expectDiskMatches(dir, report);
    expect(await pointer(dir, "incremental")).toBe(N.incr1);
    expect(await pointer(dir, "full")).toBe(N.full10);
    expect(await pointer(dir, "differential")).toBe(N.diff30);
    expect(report.pointers).toEqual([{ tier: "incremental", codec: "bzip2", encrypted: false, from: N.incr20, to: N.incr1 }]);
    expect(report.freedBytes).toBe(byteSum(before, [N.incr20!]));
    const done = deps.logs.find((l) => l.task === "cleanup" && String(l.msg).startsWith("cleanup done"));
    expect(done).toMatchObject({ freedBytes: report.freedBytes, deleted: 1, kept: 5 });
    expect(deps.output.join("")).toMatch(/ACTION\s+TIER\s+TIME \(Europe\/Berlin\)\s+SIZE\s+NAME\s+REASON/);
    expect(deps.output.join("")).toContain("keep 5, delete 1");
  });

  it("--now 30 days ahead deletes the differential and both incrementals, removing pointers of both forms", async () => {
    const dir = fresh();
    // The pointer-file form, as on CIFS/SMB where symlinks fail.
    rmSync(join(dir, "differential", "latest_differential.sql.bz2"));
    writeFileSync(join(dir, "differential", "latest_differential.sql.bz2.txt"), `${N.diff30}\n`);
    const report = await cleanup(testConfig(cluster, dir), testDeps(() => T0), { dryRun: false, json: false, now: future(30) });
    expect(actions(report)).toEqual({
      [N.full60!]: "keep: full: fulls are kept indefinitely",
      [N.full50!]: "keep: full: fulls are kept indefinitely",
      [N.diff30!]: "delete: differential older than 42 days",
      [N.incr20!]: "delete: incremental older than 14 days",
      [N.full10!]: "keep: full within 42 days",
      [N.incr1!]: "delete: incremental older than 14 days",
    });
    await expectDiskMatches(dir, report);
    expect(readdirSync(join(dir, "differential"))).toEqual([]);
    expect(readdirSync(join(dir, "incremental"))).toEqual([]);
    expect(await pointer(dir, "full")).toBe(N.full10);
  });

  it("past RETENTION_KEEP_FULL_DAYS keeps the newest two fulls and nothing else", async () => {
    const dir = fresh();
    const config = testConfig(cluster, dir, { RETENTION_KEEP_FULL_DAYS: "100" });
    const report = await cleanup(config, testDeps(() => T0), { dryRun: false, json: false, now: future(365) });
    expect(report.decisions.filter((d) => d.action === "keep").map((d) => [d.name, d.reason])).toEqual([
      [N.full50, "one of the newest 2 valid fulls"],
      [N.full10, "one of the newest 2 valid fulls"],
    ]);
    await expectDiskMatches(dir, report);
    expect(await pointer(dir, "full")).toBe(N.full10);
  });

  it("--dry-run changes nothing, and its --json plan is what the real run then does", async () => {
    const dir = fresh();
    const config = testConfig(cluster, dir);
    const before = snapshot(dir);
    const dry = testDeps(() => T0);
    await cleanup(config, dry, { dryRun: true, json: true, now: future(30) });
    expect(snapshot(dir)).toEqual(before);
    const planned = JSON.parse(dry.output.join("")) as CleanupReport & { refused: string | null };
    expect(planned).toMatchObject({ now: future(30), dryRun: true, refused: null, removedPartials: [], removedOrphans: [] });
    expect(planned.policy).toEqual({ keepAllDays: 14, keepDifferentialDays: 42, minFull: 2, keepFullDays: null });
    expect(planned.decisions[0]).toEqual({ name: N.full60, tier: "full", time: at(60).toISOString(), action: "keep", reason: "full: fulls are kept indefinitely", bytes: byteSum(before, [N.full60!]) });
    const real = testDeps(() => T0);
    await cleanup(config, real, { dryRun: false, json: true, now: future(30) });
    const done = JSON.parse(real.output.join("")) as CleanupReport;
    expect(done.decisions).toEqual(planned.decisions);
    expect(done.pointers).toEqual(planned.pointers);
    expect(done.freedBytes).toBe(planned.freedBytes);
    await expectDiskMatches(dir, done);
  });

  it("removes a .partial and orphaned sidecars older than a day and keeps fresh ones", async () => {
    const dir = fresh();
    const old = join(dir, "full", `${backupName("full", at(3), "bzip2")}.partial`);
    const young = join(dir, "full", `${backupName("full", at(0.5), "bzip2")}.partial`);
    const oldOrphan = join(dir, "incremental", `${backupName("incremental", at(5), "bzip2")}.sha256`);
    const youngOrphan = join(dir, "incremental", `${backupName("incremental", new Date(T0.getTime() - 3_600_000), "bzip2")}.json`);
    for (const f of [old, young, oldOrphan, youngOrphan]) writeFileSync(f, "x".repeat(100));
    utimesSync(old, at(2), at(2));
    utimesSync(young, at(0.5), at(0.5));
    const report = await cleanup(testConfig(cluster, dir), testDeps(() => T0), { dryRun: false, json: false });
    expect([existsSync(old), existsSync(young), existsSync(oldOrphan), existsSync(youngOrphan)]).toEqual([false, true, false, true]);
    expect(report.removedPartials).toEqual([`full/${backupName("full", at(3), "bzip2")}.partial`]);
    expect(report.removedOrphans).toEqual([`incremental/${backupName("incremental", at(5), "bzip2")}.sha256`]);
    expect(report.freedBytes).toBe(report.decisions.filter((d) => d.action === "delete").reduce((n, d) => n + d.bytes, 200));
  });
});

describe("cleanup: signed backups", () => {
  it("deletes a backup's .sig with it and an orphaned .sig like any sidecar; the signed newest passes with BACKUP_VERIFY_KEY_FILE", async () => {
    const dir = fresh();
    const keys = tempDir("pgsb-cleanup-keys-");
    execFileSync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", join(keys, "sign.pem")]);
    execFileSync("openssl", ["pkey", "-in", join(keys, "sign.pem"), "-pubout", "-out", join(keys, "verify.pem")]);
    // Signed with openssl itself: what the stock tools make, we accept.
    for (const name of Object.values(N)) {
      const sidecar = join(dir, TIER_OF[name] ?? "?", `${name}.sha256`);
      execFileSync("openssl", ["pkeyutl", "-sign", "-inkey", join(keys, "sign.pem"), "-rawin", "-in", sidecar, "-out", `${sidecar}.sig`]);
    }
    const orphan = join(dir, "incremental", `${backupName("incremental", at(5), "bzip2")}.sha256.sig`);
    writeFileSync(orphan, "x".repeat(64));
    const before = snapshot(dir);
    const report = await cleanup(testConfig(cluster, dir, { BACKUP_VERIFY_KEY_FILE: join(keys, "verify.pem") }), testDeps(() => T0), { dryRun: false, json: false });
    expect(report.decisions.filter((d) => d.action === "delete").map((d) => d.name)).toEqual([N.incr20]);
    expect(existsSync(join(dir, "incremental", `${N.incr20}.sha256.sig`))).toBe(false);
    expect(existsSync(join(dir, "incremental", `${N.incr1}.sha256.sig`))).toBe(true);
    expect(existsSync(orphan)).toBe(false);
    expect(report.removedOrphans).toEqual([`incremental/${backupName("incremental", at(5), "bzip2")}.sha256.sig`]);
    expect(report.freedBytes).toBe(byteSum(before, [N.incr20!]) + 64);
  });
});

describe("cleanup: refusals leave BACKUP_DIR untouched", () => {
  it("refuses with exit code 4 when the newest backup is corrupt (CLI, dry run too)", async () => {
    const dir = fresh();
    const newest = join(dir, "incremental", N.incr1!);
    const bytes = readFileSync(newest);
    const mid = bytes.length >> 1;
    bytes[mid] = (bytes[mid] ?? 0) ^ 0xff;
    writeFileSync(newest, bytes);
    const before = snapshot(dir);
    const real = await runCli(["cleanup", "--now", future(30)], cliEnv(cluster, dir));
    expect(real.code).toBe(4);
    expect(real.stderr).toContain(`the newest backup ${N.incr1} failed verification`);
    expect(real.stderr).toContain("checksum mismatch");
    expect(real.stderr).toMatch(/pg-swarm-backup verify.*backup full/);
    const dry = await runCli(["cleanup", "--dry-run", "--now", future(30)], cliEnv(cluster, dir));
    expect(dry.code).toBe(4);
    expect(dry.stdout).toContain("REFUSED, a real run would delete nothing");
    expect(snapshot(dir)).toEqual(before);
  });

  it("refuses when the newest backup has lost its manifest", async () => {
    const dir = fresh();
    rmSync(join(dir, "incremental", `${N.incr1}.json`));
    const before = snapshot(dir);
    await expect(cleanup(testConfig(cluster, dir), testDeps(() => T0), { dryRun: false, json: false, now: future(30) })).rejects.toMatchObject({
      exitCode: 4,
      message: expect.stringContaining(`no manifest ${N.incr1}.json`),
    });
    expect(snapshot(dir)).toEqual(before);
  });

  it("refuses when there are differentials and incrementals but no full at all", async () => {
    const dir = fresh();
    rmSync(join(dir, "full"), { recursive: true });
    mkdirSync(join(dir, "full"));
    const before = snapshot(dir);
    await expect(cleanup(testConfig(cluster, dir), testDeps(() => T0), { dryRun: false, json: false, now: future(30) })).rejects.toMatchObject({
      exitCode: 4,
      message: expect.stringMatching(/looks wrong: it holds 3 differential\/incremental backup\(s\) but no full backup at all/),
    });
    expect(snapshot(dir)).toEqual(before);
  });

  it("a missing BACKUP_DIR is a storage error (9)", async () => {
    const dir = join(tempDir(), "not-mounted");
    await expect(cleanup(testConfig(cluster, dir), testDeps(() => T0), { dryRun: true, json: false })).rejects.toMatchObject({
      exitCode: 9,
      message: expect.stringContaining(`BACKUP_DIR=${dir} does not exist`),
    });
    expect(existsSync(dir)).toBe(false);
  });

  it("a bad --now is a usage error (2) naming --now", async () => {
    const r = await runCli(["cleanup", "--dry-run", "--now", "next month"], cliEnv(cluster, fresh()));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--now "next month" is not an ISO date');
  });

  it("takes the cluster lock: with LOCK_MODE=skip and the lock held elsewhere it does nothing (3); --dry-run needs no lock", async () => {
    const dir = fresh();
    const before = snapshot(dir);
    const holder = new pg.Client({ host: cluster.socketDir, port: cluster.port, user: "postgres", database: "postgres" });
    await holder.connect();
    try {
      await holder.query("SELECT pg_advisory_lock($1)", [LOCK_KEY]);
      const config = testConfig(cluster, dir, { LOCK_MODE: "skip" });
      await expect(cleanup(config, testDeps(() => T0), { dryRun: false, json: false, now: future(30) })).rejects.toMatchObject({ exitCode: 3 });
      await cleanup(config, testDeps(() => T0), { dryRun: true, json: false, now: future(30) });
    } finally {
      await holder.end();
    }
    expect(snapshot(dir)).toEqual(before);
  });
});
