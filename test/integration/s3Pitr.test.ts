// The physical tier in the S3 mirror with the storage box lost (issue 27), against real
// PostgreSQL, pg_receivewal, age and s3rver: wal-receive signs and encrypts WAL and uploads it,
// `backup base` uploads its encrypted base backup; then the database node dies with the box
// (wal-receive killed, the source stopped immediately, BACKUP_DIR deleted) and
// restore-pitr --source s3 recovers from the bucket alone — to a time between two commits and
// to the end, the recovery point measured. Refused with PGDATA untouched: no identity, the wrong
// one, a forged or unsigned WAL object and an unsigned newer base backup in the bucket.
import { execFileSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DeleteObjectCommand, PutObjectCommand } from "@aws-sdk/client-s3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep } from "../../lib/core/concurrency.js";
import { silentLogger } from "../../lib/core/log.js";
import { parseWalName } from "../../lib/physical/layout.js";
import type { MirrorTarget } from "../../lib/s3/client.js";
import { getBytes, mirrorTarget } from "../../lib/s3/client.js";
import { listObjects } from "../../lib/s3/objects.js";
import type { ClusterInfo } from "../cluster.js";
import { createCluster, destroyCluster, sql, stopCluster } from "../cluster.js";
import { cliEnv, runCli, snapshot, tempDir, testConfig } from "../helpers.js";
import { restoreTarget, startRestored } from "../pitrFixtures.js";
import type { Server } from "../s3Server.js";
import { BUCKET, s3Env, startS3 } from "../s3Server.js";
import type { TestKeys } from "../walReceiver.js";
import { childrenOf, makeKeys, startWalReceive, stopAllWalReceive, waitFor } from "../walReceiver.js";

const cleanup: (() => void)[] = [];
let keys: TestKeys;
let server: Server;
let src: ClusterInfo;
let t: MirrorTarget;
let between: string;
let crashAt: Date;
const PREFIX = "prod";
const SECRETS = ["secret_tbl_s3xyz", "secret_row_s3quux"];

/** Everything restore-pitr --source s3 needs, with BACKUP_DIR an empty folder: the box is gone. */
const restoreEnv = (extra: Record<string, string> = {}) => cliEnv(src, tempDir("pgsb-s3pitr-empty-"), { ...s3Env(server.port, PREFIX), BACKUP_VERIFY_KEY_FILE: keys.verify, AGE_IDENTITY_FILE: keys.identity("a"), ...extra });

async function target(name: string): Promise<ClusterInfo> {
  const c = await restoreTarget(name);
  cleanup.push(() => destroyCluster(c));
  return c;
}

async function promoted(c: ClusterInfo): Promise<void> {
  startRestored(c);
  await waitFor("the restored cluster to promote", async () => (await sql(c, "postgres", "SELECT NOT pg_is_in_recovery() AS p").catch(() => null))?.rows[0]?.p === true, 60_000);
}

const now = async (c: ClusterInfo) => (await sql(c, "postgres", "SELECT to_json(clock_timestamp())#>>'{}' AS t")).rows[0].t as string;
const objects = async (folder: string) => (await listObjects(t, `${PREFIX}/${folder}/`)).map((o) => o.key.slice(PREFIX.length + folder.length + 2));

/** A PGDATA with an old file in it, and its snapshot: a refused restore must leave it exactly so. */
async function occupied(name: string): Promise<{ c: ClusterInfo; before: Record<string, string> }> {
  const c = await target(name);
  mkdirSync(c.dataDir);
  writeFileSync(join(c.dataDir, "old-file"), "keep me");
  return { c, before: snapshot(c.dir) };
}

beforeAll(async () => {
  keys = makeKeys("a", "c");
  server = await startS3();
  src = await createCluster({ name: "s3pitr" });
  cleanup.push(() => destroyCluster(src));
  const backupDir = tempDir("pgsb-s3pitr-box-");
  const env = cliEnv(src, backupDir, {
    ...s3Env(server.port, PREFIX),
    BACKUP_COMPRESSION: "zstd",
    AGE_RECIPIENTS_FILE: keys.recipients("a"),
    BACKUP_SIGNING_KEY_FILE: keys.sign,
    WAL_SPOOL_DIR: tempDir("pgsb-s3pitr-spool-"),
    WAL_STATUS_INTERVAL_SECONDS: "1",
    S3_WAL_SNAPSHOT_SECONDS: "1",
  });
  const config = testConfig(src, backupDir, env);
  t = mirrorTarget(config.s3 as NonNullable<typeof config.s3>, silentLogger());
  const r = startWalReceive(env);
  await sql(src, "postgres", "CREATE TABLE marks (id serial PRIMARY KEY, label text, at timestamptz NOT NULL DEFAULT clock_timestamp())");
  const base = await runCli(["backup", "base"], env);
  if (base.code !== 0) throw new Error(`backup base failed: ${base.stderr}`);
  await sql(src, "postgres", `CREATE TABLE ${SECRETS[0]} (v text)`);
  await sql(src, "postgres", `INSERT INTO ${SECRETS[0]} SELECT '${SECRETS[1]} ' || g FROM generate_series(1, 1000) g`);
  await sql(src, "postgres", "INSERT INTO marks (label) VALUES ('first')");
  await sleep(1500);
  between = await now(src);
  await sleep(1500);
  await sql(src, "postgres", "INSERT INTO marks (label) VALUES ('second')");
  const switched = (await sql(src, "postgres", "SELECT pg_walfile_name(pg_switch_wal()) AS f")).rows[0].f as string;
  await waitFor(`${switched} in the bucket`, async () => (await objects("wal")).includes(`${switched}.gz.age.sig`), 30_000);
  for (let i = 0; i < 40; i++) {
    await sql(src, "postgres", "INSERT INTO marks (label) VALUES ($1)", [`tick-${i}`]);
    await sleep(100);
  }
  // The database node dies with the storage box: no last round, no clean stop.
  crashAt = new Date();
  for (const p of [...childrenOf(r.pid), r.pid]) process.kill(p, "SIGKILL");
  stopCluster(src, "immediate");
  await r.exited;
  rmSync(backupDir, { recursive: true, force: true });
}, 240_000);

afterAll(async () => {
  await stopAllWalReceive();
  await server?.stop();
  for (const f of cleanup.reverse()) {
    try {
      f();
    } catch {
      // keep cleaning
    }
  }
});

describe("a signed and encrypted physical tier in the bucket, BACKUP_DIR lost", () => {
  it("holds the base backup and every WAL file as stored: age files, each with its signature, no plaintext", async () => {
    const base = await objects("base");
    expect(base.filter((n) => n.endsWith(".tar.zst.age"))).toHaveLength(1);
    expect(base.map((n) => n.replace(/^\d{8}_\d{6}_base\.tar\.zst\.age/, "B")).sort()).toEqual(["B", "B.json", "B.sha256", "B.sha256.sig"]);
    const wal = [...(await objects("wal")), ...(await objects("wal-partial"))];
    const files = wal.filter((n) => !n.endsWith(".sig"));
    expect(files.length).toBeGreaterThan(1);
    for (const n of files) {
      expect([n, parseWalName(n)?.kind === "segment" && n.endsWith(".gz.age") || n.endsWith(".gz.partial.age")]).toEqual([n, true]);
      expect(wal).toContain(`${n}.sig`);
    }
    for (const key of [...base.filter((n) => !n.endsWith(".json")).map((n) => `${PREFIX}/base/${n}`), ...wal.map((n) => `${PREFIX}/${n.includes(".partial") ? "wal-partial" : "wal"}/${n}`)]) {
      const bytes = (await getBytes(t, key)) as Buffer;
      for (const s of SECRETS) expect([key, bytes.includes(s)]).toEqual([key, false]);
    }
  });

  it("list --source s3 shows the base backup and the WAL range", async () => {
    const r = await runCli(["list", "--source", "s3"], restoreEnv());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^base .* \d{8}_\d{6}_base\.tar\.zst\.age$/m);
    expect(r.stdout).toMatch(/^WAL: .* \(timeline 1, [0-9A-F]{24}\.gz\.age to [0-9A-F]{24}\.gz(\.partial)?\.age, \d+ files/m);
    const json = JSON.parse((await runCli(["list", "--source", "s3", "--json", "--tier", "base"], restoreEnv())).stdout) as { bases: { problem: string | null }[]; wal: unknown };
    expect(json.bases.map((b) => b.problem)).toEqual([null]);
    expect(json.wal).toBeNull();
  });

  it("restore-pitr --source s3 --dry-run says what it would fetch, and fetches nothing", async () => {
    const c = await target("s3pitr-dry");
    const r = await runCli(["restore-pitr", "--source", "s3", "--pgdata", c.dataDir, "--dry-run"], restoreEnv());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^source: +the S3 mirror s3:\/\/pgsb-backups\/prod\/$/m);
    expect(r.stdout).toMatch(/^would fetch: +\d{8}_\d{6}_base\.tar\.zst\.age \(.*\) and \d+ WAL file\(s\) \(.*\) of .* in the bucket$/m);
    expect(r.stdout).toContain("signatures:   every planned file is signed");
    expect(readdirSync(c.dir)).toEqual(["sock"]);
  });

  it("recovers to a time between two commits from the bucket alone, fetching less than it holds", async () => {
    const c = await target("s3pitr-at");
    const r = await runCli(["restore-pitr", "--source", "s3", "--pgdata", c.dataDir, "--at", between], restoreEnv());
    expect(r.code, r.stderr).toBe(0);
    const [, got, of] = /"fetchedBytes":(\d+),"bucketBytes":(\d+)/.exec(r.stderr) ?? [];
    const base = (await listObjects(t, `${PREFIX}/base/`)).find((o) => o.key.endsWith(".age"))?.size ?? 0;
    expect(Number(got), r.stderr).toBeGreaterThan(base);
    expect(Number(got)).toBeLessThan(Number(of));
    console.log(`restore-pitr --source s3 --at: fetched ${got} of the ${of} bytes in the bucket (base backup ${base})`);
    await promoted(c);
    expect((await sql(c, "postgres", "SELECT label FROM marks ORDER BY id")).rows.map((x) => x.label)).toEqual(["first"]);
  });

  it("recovers to the end: every row committed before the last upload, seconds before the crash (the recovery point with the box lost)", async () => {
    const c = await target("s3pitr-end");
    const r = await runCli(["restore-pitr", "--source", "s3", "--pgdata", c.dataDir], restoreEnv());
    expect(r.code, r.stderr).toBe(0);
    await promoted(c);
    const rows = (await sql(c, "postgres", "SELECT label, at FROM marks ORDER BY id")).rows as { label: string; at: Date }[];
    expect(rows.slice(0, 2).map((x) => x.label)).toEqual(["first", "second"]);
    expect(rows.slice(2).map((x) => x.label)).toEqual(Array.from({ length: rows.length - 2 }, (_, i) => `tick-${i}`));
    const lost = (crashAt.getTime() - (rows.at(-1)?.at as Date).getTime()) / 1000;
    console.log(`storage box lost: the newest row restored from S3 was committed ${lost.toFixed(2)} s before the crash (${rows.length - 2} of 40 ticks)`);
    expect((await sql(c, "postgres", `SELECT count(*)::int AS n FROM ${SECRETS[0]}`)).rows[0].n).toBe(1000);
  });

  it("without AGE_IDENTITY_FILE, or with the wrong identity, it refuses (exit 4) naming it; PGDATA untouched", async () => {
    for (const [what, extra] of [
      ["no identity", { AGE_IDENTITY_FILE: "" }],
      ["the wrong identity", { AGE_IDENTITY_FILE: keys.identity("c") }],
    ] as const) {
      const { c, before } = await occupied(`s3pitr-${what.replace(/\W+/g, "-")}`);
      const r = await runCli(["restore-pitr", "--source", "s3", "--pgdata", c.dataDir, "--move-aside"], restoreEnv(extra));
      expect([what, r.code]).toEqual([what, 4]);
      expect(r.stderr).toMatch(/AGE_IDENTITY_FILE/);
      expect(r.stderr).not.toMatch(/AGE-SECRET-KEY-1[0-9A-Z]{10}/);
      expect(snapshot(c.dir)).toEqual(before);
    }
  });

  it("with a verify key, a forged or unsigned WAL object and an unsigned newer base backup are refused (exit 4), nothing in PGDATA", async () => {
    const wal = (await objects("wal")).filter((n) => /^[0-9A-F]{24}\.gz\.age$/.test(n)).sort();
    const victim = wal[1] as string;
    const key = `${PREFIX}/wal/${victim}`;
    const original = (await getBytes(t, key)) as Buffer;
    const signature = (await getBytes(t, `${key}.sig`)) as Buffer;
    const put = (k: string, body: Buffer | string) => t.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: k, Body: body }));
    const attempts: [string, () => Promise<unknown>, RegExp][] = [
      ["forged", () => put(key, execFileSync("age", ["-r", execFileSync("age-keygen", ["-y", keys.identity("a")]).toString().trim()], { input: "forged" })), new RegExp(`WAL file ${victim} holds \\d+ bytes, but its signature covers \\d+: it was changed after signing`)],
      ["unsigned", async () => (await put(key, original), t.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${key}.sig` }))), new RegExp(`WAL file ${victim}: its signature ${victim}\\.sig is missing in the S3 mirror: the file is unsigned`)],
    ];
    try {
      for (const [what, plant, message] of attempts) {
        await plant();
        const { c, before } = await occupied(`s3pitr-${what}`);
        const r = await runCli(["restore-pitr", "--source", "s3", "--pgdata", c.dataDir, "--move-aside"], restoreEnv());
        expect([what, r.code]).toEqual([what, 4]);
        expect(r.stderr).toMatch(message);
        expect(r.stderr).toMatch(/nothing was written|was not restored \(the partial folder was removed\)/);
        expect(snapshot(c.dir)).toEqual(before);
      }
    } finally {
      await put(key, original);
      await put(`${key}.sig`, signature);
    }
    // A base backup someone else put there, newer than the real one: not passed over quietly.
    const [real] = (await objects("base")).filter((n) => n.endsWith(".age"));
    const forged = `${new Date().toISOString().replace(/[-:]/g, "").replace("T", "_").slice(0, 15)}_base.tar.zst.age`;
    for (const s of ["", ".sha256", ".json"]) await put(`${PREFIX}/base/${forged}${s}`, ((await getBytes(t, `${PREFIX}/base/${real}${s}`)) as Buffer).toString("latin1").replaceAll(real as string, forged));
    try {
      const { c, before } = await occupied("s3pitr-forged-base");
      const r = await runCli(["restore-pitr", "--source", "s3", "--pgdata", c.dataDir, "--move-aside"], restoreEnv());
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(new RegExp(`base backup ${forged.replace(/\./g, "\\.")} in the S3 mirror is newer than \\S+ and does not verify \\(.*signature ${forged.replace(/\./g, "\\.")}\\.sha256\\.sig is missing`));
      expect(snapshot(c.dir)).toEqual(before);
    } finally {
      for (const s of ["", ".sha256", ".json"]) await t.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${PREFIX}/base/${forged}${s}` }));
    }
  });
});
