// Signed WAL against real PostgreSQL 15 clusters (issue 24): wal-receive with
// BACKUP_SIGNING_KEY_FILE receives into its spool and ships signed files; `backup base` signs
// the base backup. With BACKUP_VERIFY_KEY_FILE, restore-pitr recovers the signed WAL (the
// snapshot of the segment being received included) and refuses, naming the file, with nothing
// written to PGDATA: a forged timeline (the signed base recovered elsewhere, promoted to
// timeline 2, tampered with, its WAL copied into wal/ — which, as a control, restores without
// the key), a forged .history alone, and an unsigned segment in the middle of the range.
// verify reports the same through its wal-signatures check.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep } from "../../lib/core/concurrency.js";
import { parseWalName } from "../../lib/physical/layout.js";
import { run as verify } from "../../tasks/verify.js";
import type { ClusterInfo } from "../cluster.js";
import { createCluster, destroyCluster, sql, startCluster, stopCluster } from "../cluster.js";
import { cliEnv, runCli, snapshot, tempDir, testConfig, testDeps } from "../helpers.js";
import { restoreTarget, startRestored } from "../pitrFixtures.js";
import type { TestKeys, WalReceiveProcess } from "../walReceiver.js";
import { cleanUpAfterWalTests, makeKeys, startWalReceive, stopWalReceive, waitFor } from "../walReceiver.js";

let src: ClusterInfo;
let keys: TestKeys;
let backupDir: string;
let wal: string;
let receiver: WalReceiveProcess;
const cleanup: (() => void)[] = [];

const env = (extra: Record<string, string> = {}) => cliEnv(src, backupDir, { BACKUP_COMPRESSION: "zstd", ...extra });
const withKey = () => env({ BACKUP_VERIFY_KEY_FILE: keys.verify });

async function target(name: string): Promise<ClusterInfo> {
  const t = await restoreTarget(name);
  cleanup.push(() => destroyCluster(t));
  return t;
}

async function promoted(t: ClusterInfo): Promise<void> {
  startRestored(t);
  await waitFor("the restored cluster to promote", async () => (await sql(t, "postgres", "SELECT NOT pg_is_in_recovery() AS p").catch(() => null))?.rows[0]?.p === true, 60_000);
}

const values = async (t: ClusterInfo) => (await sql(t, "postgres", "SELECT v FROM t ORDER BY id")).rows.map((r) => r.v as string);

/** restore-pitr with the verify key into a non-empty PGDATA (--move-aside): refused, and nothing under it changed. */
async function refusedWithKey(name: string, message: RegExp): Promise<string> {
  const t = await target(name);
  mkdirSync(t.dataDir);
  writeFileSync(join(t.dataDir, "old-file"), "keep me");
  const before = snapshot(t.dir);
  const r = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--move-aside"], withKey());
  expect(r.code, r.stderr).toBe(4);
  expect(r.stderr).toMatch(/restore-pitr refused, nothing was written|was not restored \(the partial folder was removed\)/);
  expect(r.stderr).toMatch(message);
  expect(snapshot(t.dir)).toEqual(before);
  return r.stderr;
}

beforeAll(async () => {
  src = await createCluster({ name: "walsigned" });
  cleanup.push(() => destroyCluster(src));
  keys = makeKeys();
  backupDir = tempDir("pgsb-walsigned-");
  wal = join(backupDir, "wal");
  receiver = startWalReceive(cliEnv(src, backupDir, { WAL_STATUS_INTERVAL_SECONDS: "1", BACKUP_SIGNING_KEY_FILE: keys.sign, WAL_SPOOL_DIR: tempDir("pgsb-walsigned-spool-") }));
  await sql(src, "postgres", "CREATE TABLE t (id serial PRIMARY KEY, v text)");
  await sql(src, "postgres", "INSERT INTO t (v) VALUES ('before the base backup')");
  const base = await runCli(["backup", "base"], env({ BACKUP_SIGNING_KEY_FILE: keys.sign }));
  if (base.code !== 0) throw new Error(`backup base failed: ${base.stderr}`);
  await sql(src, "postgres", "INSERT INTO t (v) SELECT 'bulk ' || g FROM generate_series(1, 50000) g");
  // At least three complete segments after the base backup's, however little WAL the rows above made:
  // a switch after a write ends the segment (a switch with nothing written is a no-op).
  for (const n of [1, 2]) {
    await sql(src, "postgres", "SELECT pg_switch_wal()");
    await sql(src, "postgres", `INSERT INTO t (v) VALUES ('switch ${n}')`);
  }
  const switched = (await sql(src, "postgres", "SELECT pg_walfile_name(pg_switch_wal()) AS f")).rows[0].f as string;
  await sql(src, "postgres", "INSERT INTO t (v) VALUES ('in the segment being received')");
  await waitFor(`${switched}.gz and its signature in wal/`, () => existsSync(join(wal, `${switched}.gz.sig`)));
  // The snapshot of the segment being received carries the last row once the next tick shipped it.
  await sleep(2500);
  await stopWalReceive(receiver);
}, 120_000);

afterAll(() => cleanUpAfterWalTests(cleanup));

describe("signed WAL", () => {
  it("every segment and history file in wal/ is signed; stock tools check a signature", () => {
    const names = readdirSync(wal);
    const walFiles = names.filter((n) => parseWalName(n)?.kind === "segment" || parseWalName(n)?.kind === "history");
    expect(walFiles.some((n) => n.endsWith(".gz.partial"))).toBe(true);
    expect(walFiles.filter((n) => !names.includes(`${n}.sig`))).toEqual([]);
    const file = walFiles.find((n) => /^[0-9A-F]{24}\.gz$/.test(n)) as string;
    const out = execFileSync(
      "sh",
      ["-c", `cd "$0" && sed '$d' "$1.sig" > "$2/stmt" && tail -n1 "$1.sig" | cut -d' ' -f2 | base64 -d > "$2/sig" && openssl pkeyutl -verify -pubin -inkey "$3" -rawin -in "$2/stmt" -sigfile "$2/sig" && grep '^sha256 ' "$2/stmt" && sha256sum "$1"`, wal, file, keys.dir, keys.verify],
    ).toString();
    expect(out).toMatch(/Signature Verified Successfully/);
    const [, signed] = /^sha256 ([0-9a-f]{64})$/m.exec(out) ?? [];
    expect(out).toContain(`${signed}  ${file}`);
  });

  it("restore-pitr with the verify key recovers the signed WAL to its end, the snapshot of the segment being received included; verify passes", async () => {
    const t = await target("walsigned-end");
    const r = await runCli(["restore-pitr", "--pgdata", t.dataDir], withKey());
    expect(r.code, r.stderr).toBe(0);
    await promoted(t);
    const v = await values(t);
    expect(v.at(-1)).toBe("in the segment being received");
    expect(v).toHaveLength(50004);
    const report = await verify(testConfig(src, backupDir, { BACKUP_VERIFY_KEY_FILE: keys.verify }), testDeps(), { json: false, restore: true, server: null });
    const physical = report.checks.filter((c) => ["base-checksum", "wal-continuity", "wal-signatures", "pitr-restore"].includes(c.name));
    expect(physical.map((c) => [c.name, c.ok])).toEqual([
      ["base-checksum", true],
      ["wal-continuity", true],
      ["wal-signatures", true],
      ["pitr-restore", true],
    ]);
  });

  it("the forged timeline: restored without the key it brings the attacker's role and rows; with the key refused (exit 4) naming 00000002.history, PGDATA untouched", async () => {
    // The attacker recovers the signed base backup and WAL from the share, promotes (timeline 2) and tampers.
    const evil = await target("walsigned-attacker");
    const stolen = await runCli(["restore-pitr", "--pgdata", evil.dataDir], env());
    expect(stolen.code, stolen.stderr).toBe(0);
    // The attacker archives the new timeline's WAL as the server completes it.
    const archive = join(evil.dir, "archive");
    mkdirSync(archive);
    if (process.getuid?.() === 0) execFileSync("chown", ["postgres:postgres", archive]);
    writeFileSync(join(evil.dataDir, "postgresql.auto.conf"), [`port = ${evil.port}`, `unix_socket_directories = '${evil.socketDir}'`, "archive_mode = on", `archive_command = 'cp %p ${archive}/%f'`, ""].join("\n"), { flag: "a" });
    if (process.getuid?.() === 0) execFileSync("chown", ["-R", "postgres:postgres", evil.dataDir]);
    startCluster(evil);
    await waitFor("the attacker's cluster to promote", async () => (await sql(evil, "postgres", "SELECT NOT pg_is_in_recovery() AS p").catch(() => null))?.rows[0]?.p === true, 60_000);
    await sql(evil, "postgres", "CREATE ROLE evil SUPERUSER LOGIN PASSWORD 'x'");
    await sql(evil, "postgres", "UPDATE t SET v = 'TAMPERED'");
    const last = (await sql(evil, "postgres", "SELECT pg_walfile_name(pg_switch_wal()) AS f")).rows[0].f as string;
    await waitFor(`the attacker's ${last} archived`, () => existsSync(join(archive, last)));
    stopCluster(evil);
    const planted: string[] = [];
    for (const n of readdirSync(archive).filter((x) => /^00000002[0-9A-F]{16}$|^00000002\.history$/.test(x))) {
      writeFileSync(join(wal, `${n}.gz`), gzipSync(readFileSync(join(archive, n))));
      planted.push(`${n}.gz`);
    }
    expect(planted).toContain("00000002.history.gz");
    try {
      // Control: what restore-pitr without a verify key makes of it (today's behaviour with the key as well).
      const control = await target("walsigned-control");
      const unchecked = await runCli(["restore-pitr", "--pgdata", control.dataDir], env());
      expect(unchecked.code, unchecked.stderr).toBe(0);
      await promoted(control);
      expect((await sql(control, "postgres", "SELECT count(*)::int AS n FROM pg_roles WHERE rolname = 'evil'")).rows[0].n).toBe(1);
      expect((await values(control)).every((v) => v === "TAMPERED")).toBe(true);

      await refusedWithKey("walsigned-forged", /00000002\.history\.gz: its signature 00000002\.history\.gz\.sig is missing: the file is unsigned/);
      const report = await verify(testConfig(src, backupDir, { BACKUP_VERIFY_KEY_FILE: keys.verify }), testDeps(), { json: false, restore: true, server: null });
      const bad = report.checks.find((c) => c.name === "wal-signatures");
      expect(bad).toMatchObject({ ok: false, file: "00000002.history.gz" });
      expect(report.checks.find((c) => c.name === "pitr-restore")).toMatchObject({ ok: false, message: expect.stringMatching(/not attempted/) });
    } finally {
      for (const n of planted) rmSync(join(wal, n));
    }
  });

  it("a forged .history alone is refused by name (exit 4), PGDATA untouched", async () => {
    writeFileSync(join(wal, "00000003.history"), "1\t0/3000000\tno recovery target specified\n2\t0/4000000\tno recovery target specified\n");
    try {
      await refusedWithKey("walsigned-history", /00000003\.history: its signature 00000003\.history\.sig is missing/);
    } finally {
      rmSync(join(wal, "00000003.history"));
    }
  });

  it("an unsigned segment in the middle of the range is refused by name (exit 4); verify names it", async () => {
    const segments = readdirSync(wal).filter((n) => /^[0-9A-F]{24}\.gz$/.test(n)).sort();
    expect(segments.length).toBeGreaterThanOrEqual(3);
    const middle = segments[Math.floor(segments.length / 2)] as string;
    renameSync(join(wal, `${middle}.sig`), join(backupDir, "held.sig"));
    try {
      await refusedWithKey("walsigned-middle", new RegExp(`WAL file ${middle}: its signature ${middle}\\.sig is missing`));
      const v = await runCli(["verify"], withKey());
      expect(v.code).toBe(5);
      expect(v.stdout).toMatch(new RegExp(`FAIL +wal-signatures +${middle} `));
    } finally {
      renameSync(join(backupDir, "held.sig"), join(wal, `${middle}.sig`));
    }
    // Altered bytes under a genuine signature: refused in the read that stages them.
    copyFileSync(join(wal, middle), join(backupDir, "held"));
    writeFileSync(join(wal, middle), gzipSync(Buffer.alloc(16 << 20, 1)));
    try {
      await refusedWithKey("walsigned-altered", new RegExp(`${middle} (holds \\d+ bytes, but its signature covers|does not match the sha256)`));
    } finally {
      renameSync(join(backupDir, "held"), join(wal, middle));
    }
  });
});

describe("signed WAL after the server was restored to an earlier point", () => {
  it("restore-pitr --at on the server: the abandoned history is set aside in wal/ and the spool, receiving resumes at the fork without a gap, and a signed restore follows the new timeline", async () => {
    const c = await createCluster({ name: "walsigned-fork" });
    cleanup.push(() => destroyCluster(c));
    const dir = tempDir("pgsb-walsigned-fork-");
    const forkWal = join(dir, "wal");
    const reading = cliEnv(c, dir, { BACKUP_VERIFY_KEY_FILE: keys.verify });
    const receive = () => startWalReceive(cliEnv(c, dir, { WAL_STATUS_INTERVAL_SECONDS: "1", BACKUP_SIGNING_KEY_FILE: keys.sign, WAL_SPOOL_DIR: join(c.dir, "spool") }));
    const shipped = async (label: string) => {
      await sql(c, "postgres", "INSERT INTO marks (label) VALUES ($1)", [label]);
      const f = (await sql(c, "postgres", "SELECT pg_walfile_name(pg_switch_wal()) AS f")).rows[0].f as string;
      await waitFor(`${f}.gz.sig in wal/`, () => existsSync(join(forkWal, `${f}.gz.sig`)));
    };
    let r = receive();
    await sql(c, "postgres", "CREATE TABLE marks (id serial PRIMARY KEY, label text)");
    const base = await runCli(["backup", "base"], cliEnv(c, dir, { BACKUP_COMPRESSION: "zstd", BACKUP_SIGNING_KEY_FILE: keys.sign }));
    expect(base.code, base.stderr).toBe(0);
    await sql(c, "postgres", "INSERT INTO marks (label) VALUES ('kept')");
    await sleep(1500);
    const between = (await sql(c, "postgres", "SELECT to_json(clock_timestamp())#>>'{}' AS t")).rows[0].t as string;
    await sleep(1500);
    for (let i = 0; i < 3; i++) await shipped("abandoned");
    await stopWalReceive(r);
    // The operator restores the server to a point before the abandoned writes (a fork inside a segment).
    stopCluster(c);
    const owner = process.getuid?.() === 0 ? ["--owner", execFileSync("sh", ["-c", "echo $(id -u postgres):$(id -g postgres)"]).toString().trim()] : [];
    const restored = await runCli(["restore-pitr", "--pgdata", c.dataDir, "--move-aside", "--at", between, ...owner], reading);
    expect(restored.code, restored.stderr).toBe(0);
    startCluster(c);
    await waitFor("promotion", async () => (await sql(c, "postgres", "SELECT NOT pg_is_in_recovery() AS p").catch(() => null))?.rows[0]?.p === true, 60_000);
    r = receive();
    const fork = await waitFor("the fork line", () => r.logs().find((l) => l.event === "fork" && Array.isArray(l.files)), 30_000);
    expect(fork).toMatchObject({ level: "error", timeline: 1 });
    expect(r.logs().find((l) => l.event === "fork" && typeof l.resumePoint === "string")).toBeDefined();
    await waitFor("the new timeline's history in wal/, signed", () => existsSync(join(forkWal, "00000002.history.gz.sig")), 30_000);
    await shipped("after the fork");
    await stopWalReceive(r);
    expect(r.logs().find((l) => l.event === "gap")).toBeUndefined();
    const names = readdirSync(forkWal);
    expect(names.filter((n) => parseWalName(n) !== null && parseWalName(n)?.kind !== "backup-label" && !names.includes(`${n}.sig`))).toEqual([]);
    const t = await target("walsigned-fork-restore");
    const restore = await runCli(["restore-pitr", "--pgdata", t.dataDir], reading);
    expect(restore.code, restore.stderr).toBe(0);
    await promoted(t);
    expect((await sql(t, "postgres", "SELECT label FROM marks ORDER BY id")).rows.map((x) => x.label as string)).toEqual(["kept", "after the fork"]);
  });
});
