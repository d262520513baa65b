// An S3 outage while wal-receive uploads (real PostgreSQL 15, pg_receivewal, s3rver stopped and
// started again on the same port and folder): receiving into wal/ goes on untouched, the failure
// is logged and in the metrics (and the lag alert fires), and once S3 answers again the bucket
// catches up, oldest first — a restore from the bucket alone then has every row.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep } from "../../lib/core/concurrency.js";
import { silentLogger } from "../../lib/core/log.js";
import type { MirrorTarget } from "../../lib/s3/client.js";
import { mirrorTarget } from "../../lib/s3/client.js";
import { listObjects } from "../../lib/s3/objects.js";
import { checkWalContinuity } from "../../lib/wal/continuity.js";
import { listWalArchive } from "../../lib/wal/archive.js";
import type { ClusterInfo } from "../cluster.js";
import { createCluster, destroyCluster, sql } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig } from "../helpers.js";
import { restoreTarget, startRestored } from "../pitrFixtures.js";
import type { Server } from "../s3Server.js";
import { s3Env, startS3 } from "../s3Server.js";
import type { WalReceiveProcess } from "../walReceiver.js";
import { makeKeys, startWalReceive, stopAllWalReceive, stopWalReceive, waitFor } from "../walReceiver.js";

const PREFIX = "outage";
const cleanup: (() => void)[] = [];
let server: Server;
let src: ClusterInfo;
let backupDir: string;
let metrics: string;
let receiver: WalReceiveProcess;
let t: MirrorTarget;
let env: Record<string, string>;
let keys: ReturnType<typeof makeKeys>;
const during: string[] = [];

const inBucket = async () => (await listObjects(t, `${PREFIX}/wal/`)).map((o) => o.key.slice(`${PREFIX}/wal/`.length));
const metric = (name: string) => Number(new RegExp(`^${name}\\{[^}]*\\} (\\S+)$`, "m").exec(existsSync(metrics) ? readFileSync(metrics, "utf8") : "")?.[1] ?? NaN);

async function switchTo(label: string): Promise<string> {
  await sql(src, "postgres", "INSERT INTO marks (label) VALUES ($1)", [label]);
  return (await sql(src, "postgres", "SELECT pg_walfile_name(pg_switch_wal()) AS f")).rows[0].f as string;
}

beforeAll(async () => {
  keys = makeKeys();
  server = await startS3();
  src = await createCluster({ name: "s3outage" });
  cleanup.push(() => destroyCluster(src));
  backupDir = tempDir("pgsb-s3outage-");
  metrics = join(tempDir("pgsb-s3outage-metrics-"), "pgsb.prom");
  env = cliEnv(src, backupDir, {
    ...s3Env(server.port, PREFIX),
    BACKUP_COMPRESSION: "zstd",
    BACKUP_SIGNING_KEY_FILE: keys.sign,
    WAL_SPOOL_DIR: tempDir("pgsb-s3outage-spool-"),
    WAL_STATUS_INTERVAL_SECONDS: "1",
    S3_WAL_SNAPSHOT_SECONDS: "1",
    WAL_LAG_ALERT_SECONDS: "3",
    METRICS_FILE: metrics,
  });
  const config = testConfig(src, backupDir, env);
  t = mirrorTarget(config.s3 as NonNullable<typeof config.s3>, silentLogger(), { maxAttempts: 1 });
  receiver = startWalReceive(env);
  await sql(src, "postgres", "CREATE TABLE marks (id serial PRIMARY KEY, label text)");
  const base = await runCli(["backup", "base"], env);
  if (base.code !== 0) throw new Error(`backup base failed: ${base.stderr}`);
  const before = await switchTo("before");
  await waitFor(`${before} in the bucket`, async () => (await inBucket()).includes(`${before}.gz.sig`), 30_000);
}, 120_000);

afterAll(async () => {
  await stopAllWalReceive();
  await server?.stop();
  for (const f of cleanup.reverse()) f();
});

describe("S3 down while wal-receive runs", () => {
  it("receiving into wal/ goes on, the failure is logged, counted and alerted", async () => {
    await server.stop();
    for (const label of ["during-1", "during-2"]) during.push(await switchTo(label));
    const wal = join(backupDir, "wal");
    for (const f of during) await waitFor(`${f} shipped to wal/`, () => existsSync(join(wal, `${f}.gz.sig`)), 30_000);
    await waitFor("the S3 failure in the log", () => receiver.logs().some((l) => l.event === "s3-failed" && l.level === "error"), 30_000);
    await waitFor("the alert", () => receiver.logs().some((l) => String(l.msg).startsWith("WAL has not reached the S3 mirror for")), 30_000);
    await waitFor("the metrics", () => metric("pgsb_wal_receive_s3_up") === 0 && metric("pgsb_wal_receive_s3_lag_seconds") > 3, 30_000);
    const failed = receiver.logs().find((l) => l.event === "s3-failed");
    expect(String(failed?.msg)).toMatch(/^upload of WAL to the S3 mirror failed: cannot reach S3_ENDPOINT=http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\); .*receiving into wal\/ goes on/);
    expect(metric("pgsb_wal_receive_s3_failures_total")).toBeGreaterThan(0);
    expect(metric("pgsb_wal_receive_s3_pending_files")).toBeGreaterThan(1);
    // The local archive is whole: every segment from the base backup's start to the newest.
    const listing = await listWalArchive(backupDir);
    const base = readdirSync(join(backupDir, "base")).find((n) => n.endsWith(".json")) as string;
    const m = JSON.parse(readFileSync(join(backupDir, "base", base), "utf8")) as { startLsn: string; timeline: number };
    const [hi, lo] = m.startLsn.split("/").map((x) => BigInt(`0x${x}`)) as [bigint, bigint];
    expect(checkWalContinuity(listing.segments.map((s) => s.file), new Map(), { timeline: m.timeline, lsn: (hi << 32n) | lo }, 16 << 20)).toMatchObject({ ok: true });
    expect(receiver.logs().filter((l) => l.event === "ship").length).toBeGreaterThan(1);
  });

  it("once S3 answers again the bucket catches up, and a restore from it alone has every row", async () => {
    await sleep(1000);
    server = await startS3(server.dir, server.port);
    for (const f of during) await waitFor(`${f} in the bucket`, async () => (await inBucket()).includes(`${f}.gz.sig`), 90_000);
    await waitFor("the catch-up line", () => receiver.logs().some((l) => l.event === "s3-caught-up"), 30_000);
    await waitFor("the metrics to recover", () => metric("pgsb_wal_receive_s3_up") === 1, 30_000);
    const after = await switchTo("after");
    await waitFor(`${after} in the bucket`, async () => (await inBucket()).includes(`${after}.gz.sig`), 30_000);
    expect((await stopWalReceive(receiver)).code).toBe(143);
    const c = await restoreTarget("s3outage");
    cleanup.push(() => destroyCluster(c));
    const r = await runCli(["restore-pitr", "--source", "s3", "--pgdata", c.dataDir], { ...env, BACKUP_DIR: tempDir("pgsb-s3outage-empty-"), BACKUP_VERIFY_KEY_FILE: keys.verify, BACKUP_SIGNING_KEY_FILE: "" });
    expect(r.code, r.stderr).toBe(0);
    startRestored(c);
    await waitFor("the restored cluster to promote", async () => (await sql(c, "postgres", "SELECT NOT pg_is_in_recovery() AS p").catch(() => null))?.rows[0]?.p === true, 60_000);
    expect((await sql(c, "postgres", "SELECT label FROM marks ORDER BY id")).rows.map((x) => x.label)).toEqual(["before", "during-1", "during-2", "after"]);
  });
});
