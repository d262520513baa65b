// `mirror` and `cleanup` for the physical tier against real PostgreSQL 15, pg_receivewal and
// s3rver: base backups taken without the mirror and WAL received without it are caught up by
// `mirror` (after a --dry-run that uploads nothing); a base backup that changed on the share is
// not uploaded; wal-receive uploading plain WAL straight from wal/ (no spool); and the bucket
// pruned by cleanup's plan — what cleanup deletes locally goes from the bucket, what cleanup
// keeps locally stays in it even when the bucket alone would let it go.
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../../lib/core/log.js";
import { parseWalName } from "../../lib/physical/layout.js";
import type { MirrorTarget } from "../../lib/s3/client.js";
import { mirrorTarget } from "../../lib/s3/client.js";
import { listObjects } from "../../lib/s3/objects.js";
import type { ClusterInfo } from "../cluster.js";
import { createCluster, destroyCluster, sql } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig } from "../helpers.js";
import { restoreTarget } from "../pitrFixtures.js";
import type { Server } from "../s3Server.js";
import { s3Env, startS3 } from "../s3Server.js";
import { makeKeys, startWalReceive, stopAllWalReceive, stopWalReceive, waitFor } from "../walReceiver.js";

const PREFIX = "mirrored";
const cleanup: (() => void)[] = [];
let server: Server;
let src: ClusterInfo;
let backupDir: string;
let t: MirrorTarget;
const bases: string[] = [];
/** A time after the second base backup and before the third. */
let afterSecond = "";

const env = (extra: Record<string, string> = {}) => cliEnv(src, backupDir, { BACKUP_COMPRESSION: "zstd", WAL_STATUS_INTERVAL_SECONDS: "1", ...extra });
const withS3 = (extra: Record<string, string> = {}) => env({ ...s3Env(server.port, PREFIX), ...extra });
const remote = async (folder: string) => (await listObjects(t, `${PREFIX}/${folder}/`)).map((o) => o.key.slice(PREFIX.length + folder.length + 2)).sort();
const local = (folder: string) => readdirSync(join(backupDir, folder)).sort();
const segments = (names: string[]) => names.filter((n) => parseWalName(n)?.kind === "segment" && !n.includes(".partial"));

async function switchWal(): Promise<string> {
  await sql(src, "postgres", "INSERT INTO marks DEFAULT VALUES");
  const f = (await sql(src, "postgres", "SELECT pg_walfile_name(pg_switch_wal()) AS f")).rows[0].f as string;
  await waitFor(`${f} in wal/`, () => readdirSync(join(backupDir, "wal")).includes(`${f}.gz`));
  return f;
}

beforeAll(async () => {
  server = await startS3();
  src = await createCluster({ name: "s3mirror" });
  cleanup.push(() => destroyCluster(src));
  backupDir = tempDir("pgsb-s3mirror-");
  const config = testConfig(src, backupDir, withS3());
  t = mirrorTarget(config.s3 as NonNullable<typeof config.s3>, silentLogger());
  await sql(src, "postgres", "CREATE TABLE marks (id serial PRIMARY KEY)");
  // Without the mirror: pg_receivewal straight into wal/, base backups only local.
  const r = startWalReceive(env());
  await waitFor("pg_receivewal's .partial", () => existsSync(join(backupDir, "wal")) && readdirSync(join(backupDir, "wal")).some((n) => n.endsWith(".gz.partial")));
  for (let i = 0; i < 3; i++) {
    const b = await runCli(["backup", "base"], env());
    if (b.code !== 0) throw new Error(`backup base failed: ${b.stderr}`);
    bases.push(local("base").filter((n) => n.endsWith(".tar.zst")).at(-1) as string);
    await switchWal();
    if (i === 1) afterSecond = new Date().toISOString();
    await switchWal();
  }
  await stopWalReceive(r);
}, 180_000);

afterAll(async () => {
  await stopAllWalReceive();
  await server?.stop();
  for (const f of cleanup.reverse()) f();
});

describe("mirror catches up the physical tier", () => {
  it("--dry-run lists the base backups and WAL the bucket lacks and uploads nothing; mirror uploads them as stored", async () => {
    const dry = await runCli(["mirror", "--dry-run"], withS3());
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`base backups: would upload 3; 0 already in S3\n  upload ${bases[2]}: not in S3\n`);
    expect(dry.stdout).toMatch(/^WAL: would upload \d+ file\(s\) \(000000010000000000000001\.gz \.\. [0-9A-F]{24}\.gz(\.partial)?\)$/m);
    expect(await remote("base")).toEqual([]);
    const r = await runCli(["mirror"], withS3());
    expect(r.code, r.stderr).toBe(0);
    expect(await remote("base")).toEqual(local("base").filter((n) => !n.includes(".partial")));
    expect(segments(await remote("wal"))).toEqual(segments(local("wal")));
    for (const name of bases) {
      const stored = readFileSync(join(backupDir, "base", name));
      const key = `${PREFIX}/base/${name}`;
      expect((await listObjects(t, key)).find((o) => o.key === key)?.size).toBe(stored.length);
    }
    const again = await runCli(["mirror"], withS3());
    expect(again.stdout).toContain("base backups: uploaded 0; 3 already in S3\n");
    expect(again.stdout).toMatch(/^WAL: uploaded 0 file\(s\)/m);
  });

  it("restore-pitr --source s3 --at fetches only the base backup the plan restores and the WAL from its start to the target", async () => {
    const c = await restoreTarget("s3mirror-at");
    cleanup.push(() => destroyCluster(c));
    const r = await runCli(["restore-pitr", "--source", "s3", "--pgdata", c.dataDir, "--at", afterSecond], env({ ...s3Env(server.port, PREFIX), BACKUP_DIR: tempDir("pgsb-s3mirror-empty-") }));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`from ${bases[1]} `);
    const [, got, of] = /"fetchedBytes":(\d+),"bucketBytes":(\d+)/.exec(r.stderr) ?? [];
    const size = (name: string) => readFileSync(join(backupDir, "base", name)).length;
    const wal = (await listObjects(t, `${PREFIX}/wal/`)).filter((o) => !o.key.endsWith(".sig"));
    expect(Number(got)).toBeGreaterThan(size(bases[1] as string));
    expect(Number(got)).toBeLessThan(size(bases[1] as string) + wal.reduce((n, o) => n + o.size, 0));
    console.log(`restore-pitr --source s3 --at (second of three base backups): fetched ${got} of the ${of} bytes in the bucket (base backup ${size(bases[1] as string)}, ${wal.length} WAL files)`);
  });

  it("a base backup changed on the share after it was written is not uploaded (exit 4), the others are", async () => {
    const base = join(backupDir, "base", bases[0] as string);
    const data = readFileSync(base);
    data[data.length - 10] = (data[data.length - 10] as number) ^ 0xff;
    writeFileSync(base, data);
    try {
      const r = await runCli(["mirror"], withS3({ S3_PREFIX: "tampered" }));
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(new RegExp(`${(bases[0] as string).replace(/\./g, "\\.")}: checksum mismatch in chunk 1 of 1 .*it was not uploaded to S3`));
      const uploaded = (await listObjects(t, "tampered/base/")).map((o) => o.key.slice("tampered/base/".length));
      expect(uploaded.filter((n) => n.startsWith(bases[0] as string))).toEqual([]);
      expect(uploaded.filter((n) => n.endsWith(".json"))).toEqual([`${bases[1]}.json`, `${bases[2]}.json`]);
      expect(r.stdout).toMatch(/^WAL: uploaded \d+ file\(s\)/m);
    } finally {
      data[data.length - 10] = (data[data.length - 10] as number) ^ 0xff;
      writeFileSync(base, data);
    }
  });

  it("with BACKUP_VERIFY_KEY_FILE, unsigned base backups and WAL (archived before signing was on) stay out of the bucket, each named", async () => {
    const keys = makeKeys();
    const r = await runCli(["mirror"], withS3({ S3_PREFIX: "verified", BACKUP_VERIFY_KEY_FILE: keys.verify }));
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/signature \S+_base\.tar\.zst\.sha256\.sig is missing: the backup is unsigned .*\(and 2 more base backup\(s\): .*; everything else was mirrored/);
    expect(r.stdout).toMatch(/^ {2}not uploaded ([0-9A-F]{24}\.gz): WAL file \1: its signature \1\.sig is missing: the file is unsigned$/m);
    expect(await listObjects(t, "verified/")).toEqual([]);
  });

  it("wal-receive without a spool uploads pg_receivewal's WAL straight from wal/, the segment being received too", async () => {
    const r = startWalReceive(withS3({ S3_WAL_SNAPSHOT_SECONDS: "1" }));
    const f = await switchWal();
    await waitFor(`${f} in the bucket`, async () => (await remote("wal")).includes(`${f}.gz`), 30_000);
    await sql(src, "postgres", "INSERT INTO marks DEFAULT VALUES");
    await waitFor("the snapshot in the bucket", async () => (await remote("wal-partial")).some((n) => n.endsWith(".gz.partial")), 30_000);
    await stopWalReceive(r);
    expect(r.logs().some((l) => l.event === "s3-upload" && l.file === `${f}.gz`)).toBe(true);
  });
});

describe("cleanup and mirror prune the bucket by cleanup's plan", () => {
  const policy = { RETENTION_KEEP_ALL_DAYS: "0", RETENTION_KEEP_DIFFERENTIAL_DAYS: "0", RETENTION_KEEP_FULL_DAYS: "0", RETENTION_MIN_FULL: "1" };

  it("nothing is deleted from the bucket that cleanup keeps locally; what it deletes locally goes from the bucket", async () => {
    // The newest base backup is gone from BACKUP_DIR (deleted by hand): the bucket alone would keep only it.
    const newest = bases[2] as string;
    for (const s of ["", ".sha256", ".json"]) rmSync(join(backupDir, "base", newest + s));
    const startOf = (name: string) => JSON.parse(readFileSync(join(backupDir, "base", `${name}.json`), "utf8")) as { startLsn: string };
    const keepFrom = (() => {
      const [hi, lo] = startOf(bases[1] as string).startLsn.split("/").map((x) => parseInt(x, 16)) as [number, number];
      return `00000001${hi.toString(16).toUpperCase().padStart(8, "0")}${Math.floor(lo / (16 << 20)).toString(16).toUpperCase().padStart(8, "0")}`;
    })();
    const later = new Date(Date.now() + 100 * 86_400_000).toISOString();
    const dry = await runCli(["cleanup", "--dry-run", "--now", later], withS3(policy));
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(new RegExp(`^S3 mirror \\(physical tier, cleanup's plan\\): would delete 1 base backup\\(s\\), \\d+ WAL file\\(s\\); kept from ${keepFrom}`, "m"));
    expect(dry.stdout).toContain(`  would delete ${bases[0]}: `);
    expect(await remote("base")).toContain(`${bases[0]}.json`);
    const r = await runCli(["cleanup", "--now", later], withS3(policy));
    expect(r.code, r.stderr).toBe(0);
    expect(local("base").filter((n) => n.endsWith(".tar.zst"))).toEqual([bases[1]]);
    expect((await remote("base")).filter((n) => n.endsWith(".tar.zst"))).toEqual([bases[1], newest]);
    expect(segments(local("wal"))[0]).toBe(`${keepFrom}.gz`);
    expect(segments(await remote("wal"))[0]).toBe(`${keepFrom}.gz`);
    // mirror with the default policy deletes nothing more, and puts back nothing cleanup removed.
    const m = await runCli(["mirror"], withS3());
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toMatch(/^pruning \(cleanup's plan\): deleted 0 base backup\(s\), 0 WAL file\(s\)/m);
    expect((await remote("base")).filter((n) => n.endsWith(".tar.zst"))).toEqual([bases[1], newest]);
  });

  it("with S3_RETENTION=keep neither cleanup nor mirror deletes anything in the bucket", async () => {
    const before = await remote("wal");
    const later = new Date(Date.now() + 200 * 86_400_000).toISOString();
    const r = await runCli(["mirror"], withS3({ ...policy, S3_RETENTION: "keep" }));
    expect(r.stdout).toContain("pruning: none (S3_RETENTION=keep");
    expect((await runCli(["cleanup", "--now", later], withS3({ ...policy, S3_RETENTION: "keep" }))).code).toBe(0);
    expect(await remote("wal")).toEqual(before);
  });
});
