// Encrypted WAL against real PostgreSQL 15 clusters, real age and real pg_receivewal (issue
// 27): wal-receive with AGE_RECIPIENTS_FILE receives into its spool and ships age files. A
// mixed archive (plain WAL, then encrypted to key A, then to key B after a rotation) with a
// plain base backup recovers to a time between two commits with both identities. With
// encryption on from the start: no table name, role name or row in any file in wal/ (while the
// spool, the control, holds them); a missing or wrong identity refused (exit 4, naming
// AGE_IDENTITY_FILE) with PGDATA untouched, verify too; the identity recovers the signed and
// encrypted WAL after a crash of the source; and the stock path, a restore_command that
// decrypts one segment (age -d -i KEY FILE | gunzip > %p), recovers to a time.
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep } from "../../lib/core/concurrency.js";
import { parseWalName } from "../../lib/physical/layout.js";
import type { ClusterInfo } from "../cluster.js";
import { createCluster, destroyCluster, sql, startCluster, stopCluster } from "../cluster.js";
import { cliEnv, runCli, snapshot, tempDir } from "../helpers.js";
import { restoreTarget, startRestored } from "../pitrFixtures.js";
import type { TestKeys } from "../walReceiver.js";
import { cleanUpAfterWalTests, makeKeys, startWalReceive, stopWalReceive, waitFor } from "../walReceiver.js";

const cleanup: (() => void)[] = [];
let keys: TestKeys;

async function target(name: string): Promise<ClusterInfo> {
  const t = await restoreTarget(name);
  cleanup.push(() => destroyCluster(t));
  return t;
}

async function promoted(t: ClusterInfo, start: () => void = () => startRestored(t)): Promise<void> {
  start();
  await waitFor("the restored cluster to promote", async () => (await sql(t, "postgres", "SELECT NOT pg_is_in_recovery() AS p").catch(() => null))?.rows[0]?.p === true, 60_000);
}

const now = async (c: ClusterInfo) => (await sql(c, "postgres", "SELECT to_json(clock_timestamp())#>>'{}' AS t")).rows[0].t as string;
const labels = async (c: ClusterInfo) => (await sql(c, "postgres", "SELECT label FROM marks ORDER BY id")).rows.map((r) => r.label as string);

/** The name of the segment a switch completed, once it is in wal/ as `<name><suffix>`. */
async function switchAndShip(c: ClusterInfo, wal: string, suffix: string): Promise<string> {
  const f = (await sql(c, "postgres", "SELECT pg_walfile_name(pg_switch_wal()) AS f")).rows[0].f as string;
  await waitFor(`${f}${suffix} in wal/`, () => existsSync(join(wal, f + suffix)));
  return f;
}

beforeAll(() => {
  keys = makeKeys("a", "b", "c");
});

afterAll(() => cleanUpAfterWalTests(cleanup));

describe("a mixed archive: plain WAL, then encrypted to key A, then to key B", () => {
  let src: ClusterInfo;
  let backupDir: string;
  let between: string;
  const env = (extra: Record<string, string> = {}) => cliEnv(src, backupDir, { BACKUP_COMPRESSION: "zstd", WAL_STATUS_INTERVAL_SECONDS: "1", ...extra });

  beforeAll(async () => {
    src = await createCluster({ name: "walenc-mixed" });
    cleanup.push(() => destroyCluster(src));
    backupDir = tempDir("pgsb-walenc-mixed-");
    const wal = join(backupDir, "wal");
    await sql(src, "postgres", "CREATE TABLE marks (id serial PRIMARY KEY, label text)");
    let r = startWalReceive(env());
    await waitFor("pg_receivewal's .partial", () => existsSync(wal) && readdirSync(wal).some((n) => n.endsWith(".gz.partial")));
    const base = await runCli(["backup", "base"], env());
    if (base.code !== 0) throw new Error(`backup base failed: ${base.stderr}`);
    await sql(src, "postgres", "INSERT INTO marks (label) VALUES ('plain')");
    await switchAndShip(src, wal, ".gz");
    await stopWalReceive(r);
    r = startWalReceive(env({ AGE_RECIPIENTS_FILE: keys.recipients("a"), WAL_SPOOL_DIR: tempDir("pgsb-walenc-spool-a-") }));
    await sql(src, "postgres", "INSERT INTO marks (label) VALUES ('under key A')");
    await switchAndShip(src, wal, ".gz.age");
    // A receiver started again may stream the newest segment once more (the slot's position can still be in it),
    // shipping it encrypted to the new key: the segment before it stays encrypted to key A.
    await sql(src, "postgres", "INSERT INTO marks (label) VALUES ('under key A, 2')");
    await switchAndShip(src, wal, ".gz.age");
    await stopWalReceive(r);
    // Key rotation, and the task moved to another node: a new, empty spool.
    r = startWalReceive(env({ AGE_RECIPIENTS_FILE: keys.recipients("b"), WAL_SPOOL_DIR: tempDir("pgsb-walenc-spool-b-") }));
    await sql(src, "postgres", "INSERT INTO marks (label) VALUES ('under key B, first')");
    await sleep(1500);
    between = await now(src);
    await sleep(1500);
    await sql(src, "postgres", "INSERT INTO marks (label) VALUES ('under key B, second')");
    await switchAndShip(src, wal, ".gz.age");
    await sleep(1500);
    await stopWalReceive(r);
  }, 180_000);

  it("holds plain segments and segments encrypted to each key", () => {
    const wal = join(backupDir, "wal");
    const segments = readdirSync(wal).filter((n) => parseWalName(n)?.kind === "segment");
    const opens = (n: string, k: string) => {
      try {
        execFileSync("age", ["-d", "-i", keys.identity(k), join(wal, n)], { stdio: ["ignore", "ignore", "ignore"] });
        return true;
      } catch {
        return false;
      }
    };
    const encrypted = segments.filter((n) => n.endsWith(".age"));
    expect(segments.filter((n) => !n.endsWith(".age")).length).toBeGreaterThan(0);
    expect(encrypted.filter((n) => opens(n, "a")).length).toBeGreaterThan(0);
    expect(encrypted.filter((n) => opens(n, "b")).length).toBeGreaterThan(0);
    // The plain .partial of the segment that was being received when encryption was switched on is gone: it shipped encrypted.
    expect(segments.filter((n) => n.endsWith(".gz.partial"))).toEqual([]);
  });

  it("restore-pitr --at a time between two commits recovers the plain and both keys' WAL with both identities", async () => {
    const t = await target("walenc-mixed");
    const r = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--at", between], env({ AGE_IDENTITY_FILE: keys.identities("a", "b") }));
    expect(r.code, r.stderr).toBe(0);
    await promoted(t);
    expect(await labels(t)).toEqual(["plain", "under key A", "under key A, 2", "under key B, first"]);
  });

  it("an identity file without the old key is refused, naming the file and AGE_IDENTITY_FILE", async () => {
    const t = await target("walenc-mixed-old");
    const r = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--at", between], env({ AGE_IDENTITY_FILE: keys.identity("b") }));
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(/WAL file [0-9A-F]{24}\.gz\.age cannot be decrypted with AGE_IDENTITY_FILE=.*b\.identity: none of its identities is a recipient of the file; .*keep the old identity in the file too/);
    expect(readdirSync(t.dir)).toEqual(["sock"]);
  });
});

describe("encryption on from the start (signed too)", () => {
  let src: ClusterInfo;
  let backupDir: string;
  let spool: string;
  let between: string;
  let crashAt: Date;
  const SECRETS = ["secret_tbl_xyzzy", "secret_role_plugh", "secret_row_quux"];
  const env = (extra: Record<string, string> = {}) => cliEnv(src, backupDir, { BACKUP_COMPRESSION: "zstd", ...extra });
  const reading = (extra: Record<string, string> = {}) => env({ BACKUP_VERIFY_KEY_FILE: keys.verify, ...extra });

  beforeAll(async () => {
    src = await createCluster({ name: "walenc" });
    cleanup.push(() => destroyCluster(src));
    backupDir = tempDir("pgsb-walenc-");
    spool = tempDir("pgsb-walenc-spool-");
    const wal = join(backupDir, "wal");
    const r = startWalReceive(env({ WAL_STATUS_INTERVAL_SECONDS: "1", AGE_RECIPIENTS_FILE: keys.recipients("a"), BACKUP_SIGNING_KEY_FILE: keys.sign, WAL_SPOOL_DIR: spool }));
    await sql(src, "postgres", "CREATE TABLE marks (id serial PRIMARY KEY, label text, at timestamptz NOT NULL DEFAULT clock_timestamp())");
    const base = await runCli(["backup", "base"], env({ BACKUP_SIGNING_KEY_FILE: keys.sign }));
    if (base.code !== 0) throw new Error(`backup base failed: ${base.stderr}`);
    await sql(src, "postgres", `CREATE ROLE ${SECRETS[1]} LOGIN`);
    await sql(src, "postgres", `CREATE TABLE ${SECRETS[0]} (v text)`);
    await sql(src, "postgres", `INSERT INTO ${SECRETS[0]} SELECT '${SECRETS[2]} ' || g FROM generate_series(1, 1000) g`);
    await sql(src, "postgres", "INSERT INTO marks (label) VALUES ('first')");
    await sleep(1500);
    between = await now(src);
    await sleep(1500);
    await sql(src, "postgres", "INSERT INTO marks (label) VALUES ('second')");
    await switchAndShip(src, wal, ".gz.age");
    for (let i = 0; i < 10; i++) {
      await sql(src, "postgres", "INSERT INTO marks (label) VALUES ($1)", [`tick-${i}`]);
      await sleep(100);
    }
    // The source dies; the receiver ships what pg_receivewal flushed when its connection ends.
    crashAt = new Date();
    stopCluster(src, "immediate");
    await waitFor("pg_receivewal to notice", () => r.logs().some((l) => l.event === "stop"));
    await sleep(1500);
    await stopWalReceive(r);
    startCluster(src);
  }, 180_000);

  it("no table name, role name or row in any file in wal/; the private spool holds them (the control)", () => {
    const wal = join(backupDir, "wal");
    const names = readdirSync(wal);
    const walFiles = names.filter((n) => parseWalName(n) !== null);
    expect(walFiles.length).toBeGreaterThan(2);
    expect(walFiles.filter((n) => !n.endsWith(".age"))).toEqual([]);
    for (const n of names) {
      const bytes = readFileSync(join(wal, n));
      if (walFiles.includes(n)) expect(bytes.subarray(0, 21).toString()).toBe("age-encryption.org/v1");
      for (const s of SECRETS) expect([n, bytes.includes(s)]).toEqual([n, false]);
    }
    const spooled = readdirSync(spool).filter((n) => /^[0-9A-F]{24}\.gz(\.partial)?$/.test(n));
    const plain = Buffer.concat(spooled.map((n) => gunzipSync(readFileSync(join(spool, n)), { finishFlush: 2 })));
    expect(SECRETS.filter((s) => plain.includes(s)).length).toBeGreaterThan(0);
  });

  it("without AGE_IDENTITY_FILE, or with the wrong identity, restore-pitr and verify refuse (exit 4) naming it; PGDATA untouched", async () => {
    for (const [what, extra] of [
      ["no identity", {}],
      ["the wrong identity", { AGE_IDENTITY_FILE: keys.identity("c") }],
    ] as const) {
      const t = await target(`walenc-${what.replace(/\W+/g, "-")}`);
      mkdirSync(t.dataDir);
      writeFileSync(join(t.dataDir, "old-file"), "keep me");
      const before = snapshot(t.dir);
      const r = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--move-aside"], reading(extra));
      expect([what, r.code]).toEqual([what, 4]);
      expect(r.stderr).toMatch(/AGE_IDENTITY_FILE/);
      expect(r.stderr).not.toMatch(/AGE-SECRET-KEY-1[0-9A-Z]{10}/);
      expect(snapshot(t.dir)).toEqual(before);
      const v = await runCli(["verify"], reading(extra));
      expect([what, v.code]).toEqual([what, 4]);
      expect(v.stderr).toMatch(/AGE_IDENTITY_FILE/);
    }
  });

  it("with the identity and the verify key restore-pitr recovers to the end: the rows committed before the crash are there", async () => {
    const t = await target("walenc-end");
    const r = await runCli(["restore-pitr", "--pgdata", t.dataDir], reading({ AGE_IDENTITY_FILE: keys.identity("a") }));
    expect(r.code, r.stderr).toBe(0);
    await promoted(t);
    const rows = (await sql(t, "postgres", "SELECT label, at FROM marks ORDER BY id")).rows as { label: string; at: Date }[];
    expect(rows.map((x) => x.label)).toEqual(["first", "second", ...Array.from({ length: 10 }, (_, i) => `tick-${i}`)]);
    const newest = rows.at(-1)?.at as Date;
    console.log(`encrypted WAL: the newest row restored was committed ${((crashAt.getTime() - newest.getTime()) / 1000).toFixed(2)} s before the source crashed`);
    expect((await sql(t, "postgres", `SELECT count(*)::int AS n FROM ${SECRETS[0]}`)).rows[0].n).toBe(1000);
  });

  it("the stock path: restore_command = 'age -d -i KEY WAL/%f.gz.age | gunzip > %p' recovers the base backup to a time", async () => {
    const t = await target("walenc-stock");
    // What a restore job sees of the share, readable by the server's user here.
    const share = tempDir("pgsb-walenc-share-");
    cpSync(join(backupDir, "wal"), join(share, "wal"), { recursive: true });
    cpSync(keys.identity("a"), join(share, "identity.txt"));
    execFileSync("chmod", ["-R", "a+rX", share]);
    const base = readdirSync(join(backupDir, "base")).find((n) => n.endsWith(".tar.zst")) as string;
    mkdirSync(t.dataDir, { mode: 0o700 });
    execFileSync("sh", ["-c", `zstd -dc "$0" | tar -xf - -C "$1"`, join(backupDir, "base", base), t.dataDir]);
    writeFileSync(join(t.dataDir, "recovery.signal"), "");
    writeFileSync(
      join(t.dataDir, "postgresql.auto.conf"),
      [
        `restore_command = 'age -d -i ${share}/identity.txt ${share}/wal/%f.gz.age | gunzip > %p'`,
        `recovery_target_time = '${between}'`,
        "recovery_target_action = 'promote'",
        `port = ${t.port}`,
        `unix_socket_directories = '${t.socketDir}'`,
        "archive_mode = off",
        "",
      ].join("\n"),
      { flag: "a" },
    );
    chmodSync(t.dataDir, 0o700);
    if (process.getuid?.() === 0) execFileSync("chown", ["-R", "postgres:postgres", t.dataDir]);
    await promoted(t, () => startCluster(t));
    expect((await labels(t)).filter((l) => ["first", "second"].includes(l))).toEqual(["first"]);
  });
});
