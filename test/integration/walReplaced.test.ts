// A cluster wiped and made again under wal-receive (real PostgreSQL 15 clusters, pg_receivewal,
// age): the new cluster has a new system identifier and its WAL starts over. wal-receive used to
// resume after the old cluster's newest segment in its spool, fail in a loop ("requested
// starting point … is ahead of the WAL flush position"), and ship that segment signed as the new
// cluster's. Now the old cluster's WAL is set aside (wal/.replaced-<id>-<ms>/, the spool's too),
// its last WAL shipped first signed as its own, and receiving starts over for the new cluster.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep } from "../../lib/core/concurrency.js";
import { parseWalName } from "../../lib/physical/layout.js";
import type { ClusterInfo } from "../cluster.js";
import { createCluster, destroyCluster, sql, stopCluster } from "../cluster.js";
import { cliEnv, tempDir } from "../helpers.js";
import type { TestKeys, WalReceiveProcess } from "../walReceiver.js";
import type { Server } from "../s3Server.js";
import { BUCKET, s3Env, startS3 } from "../s3Server.js";
import { cleanUpAfterWalTests, makeKeys, startWalReceive, stopWalReceive, waitFor } from "../walReceiver.js";

const cleanup: (() => void)[] = [];
let keys: TestKeys;
let server: Server;

beforeAll(async () => {
  keys = makeKeys("a");
  server = await startS3();
});

afterAll(async () => {
  await cleanUpAfterWalTests(cleanup);
  await server?.stop();
});

/** The bucket's objects in `folder` (under the test's prefix), as s3rver stores them on disk: name to path. */
function bucketFiles(folder: string): Map<string, string> {
  const dir = join(server.dir, BUCKET, folder);
  const out = new Map<string, string>();
  if (!existsSync(dir)) return out;
  for (const n of readdirSync(dir)) if (n.endsWith("._S3rver_object")) out.set(n.slice(0, -"._S3rver_object".length), join(dir, n));
  return out;
}

async function cluster(name: string): Promise<{ c: ClusterInfo; id: string }> {
  const c = await createCluster({ name });
  cleanup.push(() => destroyCluster(c));
  const id = (await sql(c, "postgres", "SELECT system_identifier::text AS id FROM pg_control_system()")).rows[0].id as string;
  return { c, id };
}

const completed = (dir: string) => readdirSync(dir).filter((n) => parseWalName(n)?.kind === "segment" && !n.includes(".partial") && !n.endsWith(".sig"));

/** Writes and switches until a segment completed after this call is in `wal`. */
async function switchAndShip(c: ClusterInfo, wal: string): Promise<string> {
  await sql(c, "postgres", "CREATE TABLE IF NOT EXISTS marks (id serial PRIMARY KEY, at timestamptz DEFAULT now())");
  await sql(c, "postgres", "INSERT INTO marks DEFAULT VALUES");
  const f = (await sql(c, "postgres", "SELECT pg_walfile_name(pg_switch_wal()) AS f")).rows[0].f as string;
  await waitFor(`${f} in ${wal}`, () => existsSync(wal) && completed(wal).some((n) => n.startsWith(f)), 30_000);
  return f;
}

/** pg_receivewal streaming from the server: a switch after this is received whole. */
async function streaming(c: ClusterInfo): Promise<void> {
  await waitFor("pg_receivewal streaming", async () => (await sql(c, "postgres", "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'")).rows[0].n === 1, 30_000);
}

/** The system identifier in a stored segment's first page header (xlp_sysid, at byte 24), decrypted and decompressed as stored. */
function segmentSystemId(path: string, name = path): string {
  const stored = name.endsWith(".age") ? execFileSync("age", ["-d", "-i", keys.identity("a"), path], { maxBuffer: 64 << 20 }) : readFileSync(path);
  return gunzipSync(stored).readBigUInt64LE(24).toString();
}

async function stillRunning(r: WalReceiveProcess): Promise<boolean> {
  return (await Promise.race([r.exited.then(() => false), sleep(1500).then(() => true)])) === true;
}

describe.each([
  ["with a spool, signed and encrypted (the stack's way)", true, false],
  ["with a spool, signed and encrypted, and the S3 mirror", true, true],
  ["pg_receivewal writing into wal/ itself", false, false],
])("a cluster wiped and made again under wal-receive: %s", (_what, spooled, mirrored) => {
  const prefix = `repl-${mirrored ? "s3" : spooled ? "s" : "d"}`;
  let backupDir: string;
  let wal: string;
  let spool: string;
  let old: { c: ClusterInfo; id: string };
  let fresh: { c: ClusterInfo; id: string };
  let oldSegments: string[];
  const env = (c: ClusterInfo) =>
    cliEnv(c, backupDir, {
      WAL_STATUS_INTERVAL_SECONDS: "1",
      ...(spooled ? { WAL_SPOOL_DIR: spool, BACKUP_SIGNING_KEY_FILE: keys.sign, AGE_RECIPIENTS_FILE: keys.recipients("a") } : {}),
      ...(mirrored ? { ...s3Env(server.port, prefix), S3_WAL_SNAPSHOT_SECONDS: "1" } : {}),
    });

  beforeAll(async () => {
    backupDir = tempDir("pgsb-walrepl-");
    spool = tempDir("pgsb-walrepl-spool-");
    wal = join(backupDir, "wal");
    old = await cluster(`walrepl-old-${prefix}`);
    const r = startWalReceive(env(old.c));
    await streaming(old.c);
    await switchAndShip(old.c, wal);
    await switchAndShip(old.c, wal);
    // Rows after the last switch: the segment being received holds them.
    await sql(old.c, "postgres", "INSERT INTO marks SELECT FROM generate_series(1, 100)");
    await sleep(1500);
    if (mirrored) await waitFor("the old cluster's segments in the bucket", () => completed(wal).every((n) => bucketFiles(`${prefix}/wal`).has(n)), 30_000);
    expect((await stopWalReceive(r)).code).toBe(143);
    oldSegments = completed(wal);
    stopCluster(old.c, "immediate");
    fresh = await cluster(`walrepl-new-${prefix}`);
    expect(fresh.id).not.toBe(old.id);
  });

  it("sets the old cluster's WAL aside, says so once, and receives the new cluster's WAL into wal/ without failing", async () => {
    const r = startWalReceive(env(fresh.c));
    const line = await waitFor("the replaced line", () => r.logs().find((l) => l.event === "replaced" && l.level === "error" || (l.level as number) === 50 && l.event === "replaced"), 30_000);
    expect(line).toMatchObject({ systemIdentifier: fresh.id, previous: old.id });
    expect(String(line.msg)).toMatch(/set aside .* receiving starts over for the new cluster\. (Its objects in the S3 mirror go to wal-replaced\/\d+-\d+\/ before anything more is uploaded\. )?Take a new base backup/);
    await streaming(fresh.c);
    const newest = await switchAndShip(fresh.c, wal);
    await switchAndShip(fresh.c, wal);
    expect(await stillRunning(r)).toBe(true);
    expect(r.logs().filter((l) => l.event === "stop" && l.fault === "foreign-timeline")).toEqual([]);
    expect(r.logs().filter((l) => l.event === "replaced" && (l.level === 50 || l.level === "error"))).toHaveLength(1);

    // The old cluster's WAL, all of it, in one folder inside wal/; the top level holds only the new cluster's.
    const folders = readdirSync(wal).filter((n) => n.startsWith(`.replaced-${old.id}-`));
    expect(folders).toHaveLength(1);
    const aside = readdirSync(join(wal, folders[0] as string));
    for (const s of oldSegments) expect(aside).toContain(s);
    expect(completed(wal).some((n) => n.startsWith(newest))).toBe(true);
    // The new cluster's WAL starts over at the same names: each file is the cluster's it is filed as.
    for (const n of oldSegments) expect(segmentSystemId(join(wal, folders[0] as string, n))).toBe(old.id);
    expect(completed(wal).length).toBeGreaterThan(0);
    for (const n of completed(wal)) expect(segmentSystemId(join(wal, n))).toBe(fresh.id);
    expect(readFileSync(join(wal, ".pgsb-system-identifier"), "utf8").trim()).toBe(fresh.id);

    if (spooled) {
      // Each signature names the cluster whose WAL it signs: the old one's in the folder, the new one's above.
      for (const n of aside.filter((x) => x.endsWith(".sig"))) expect(readFileSync(join(wal, folders[0] as string, n), "utf8")).toContain(`system-identifier ${old.id}`);
      const sigs = readdirSync(wal).filter((x) => x.endsWith(".sig"));
      expect(sigs.length).toBeGreaterThan(0);
      for (const n of sigs) expect(readFileSync(join(wal, n), "utf8")).toContain(`system-identifier ${fresh.id}`);
      expect(readFileSync(join(spool, ".pgsb-system-identifier"), "utf8").trim()).toBe(fresh.id);
      expect(readdirSync(spool).some((n) => n.startsWith(`.replaced-${old.id}-`))).toBe(true);
    }
    if (mirrored) {
      // In the bucket too: the old cluster's objects in wal-replaced/<id>-<ms>/, wal/ and wal-partial/ the new cluster's alone.
      const moved = await waitFor("the bucket's move", () => r.logs().find((l) => l.event === "replaced" && typeof l.moved === "number"), 30_000);
      expect(moved.moved as number).toBeGreaterThanOrEqual(2 * oldSegments.length);
      await waitFor(`${newest} in the bucket`, () => [...bucketFiles(`${prefix}/wal`).keys()].some((n) => n.startsWith(newest) && !n.endsWith(".sig")), 30_000);
      const replacedDirs = readdirSync(join(server.dir, BUCKET, prefix, "wal-replaced"));
      expect(replacedDirs).toHaveLength(1);
      expect(replacedDirs[0]).toMatch(new RegExp(`^${old.id}-\\d+$`));
      const aside = bucketFiles(`${prefix}/wal-replaced/${replacedDirs[0]}/wal`);
      for (const n of oldSegments) expect(segmentSystemId(aside.get(n) as string, n)).toBe(old.id);
      const above = [...bucketFiles(`${prefix}/wal`)].filter(([n]) => parseWalName(n)?.kind === "segment" && !n.endsWith(".sig"));
      expect(above.length).toBeGreaterThan(0);
      for (const [n, path] of above) expect(segmentSystemId(path, n)).toBe(fresh.id);
      for (const [n, path] of bucketFiles(`${prefix}/wal`)) if (n.endsWith(".sig")) expect(readFileSync(path, "utf8")).toContain(`system-identifier ${fresh.id}`);
      expect(readdirSync(wal).filter((n) => n.startsWith(".pgsb-bucket-replaced-"))).toEqual([]);
    }
    await stopWalReceive(r);
  });

  it("started again on the same cluster, sets nothing more aside", async () => {
    const r = startWalReceive(env(fresh.c));
    await streaming(fresh.c);
    await switchAndShip(fresh.c, wal);
    expect(await stillRunning(r)).toBe(true);
    await stopWalReceive(r);
    expect(r.logs().filter((l) => l.event === "replaced")).toEqual([]);
    expect(readdirSync(wal).filter((n) => n.startsWith(".replaced-"))).toHaveLength(1);
  });
});
