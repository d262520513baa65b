// The alternative without a service: the server's own archive_library = 'basic_archive' into
// BACKUP_DIR/wal. Its output (uncompressed segments, history files, .backup labels) is what
// walArchive reads: listed, continuous from a start point, and shown by `list`.
import { execFileSync } from "node:child_process";
import { appendFileSync, chmodSync, chownSync, mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseLsn } from "../../lib/physical/layout.js";
import { listWalArchive, readTimelineHistories } from "../../lib/wal/archive.js";
import { checkWalContinuity } from "../../lib/wal/continuity.js";
import { walRange } from "../../lib/wal/range.js";
import type { ClusterInfo } from "../cluster.js";
import { createCluster, destroyCluster, sql, startCluster, stopCluster } from "../cluster.js";
import { cliEnv, runCli, tempDir } from "../helpers.js";

let c: ClusterInfo;
let backupDir: string;

function postgresIds(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  return { uid: Number(execFileSync("id", ["-u", "postgres"]).toString()), gid: Number(execFileSync("id", ["-g", "postgres"]).toString()) };
}

beforeAll(async () => {
  c = await createCluster({ name: "basicarchive" });
  backupDir = tempDir("pgsb-basicarchive-");
  const wal = join(backupDir, "wal");
  mkdirSync(wal);
  const ids = postgresIds();
  // The server runs as the postgres OS user: it must reach and write the folder.
  chmodSync(backupDir, 0o755);
  if (ids !== null) chownSync(wal, ids.uid, ids.gid);
  stopCluster(c);
  appendFileSync(join(c.dataDir, "postgresql.auto.conf"), `archive_mode = on\narchive_library = 'basic_archive'\nbasic_archive.archive_directory = '${wal}'\n`);
  startCluster(c);
});

afterAll(() => {
  destroyCluster(c);
  rmSync(backupDir, { recursive: true, force: true });
});

describe("basic_archive into BACKUP_DIR/wal", () => {
  it("is read by walArchive: segments listed, no gap from the start point, and list shows the range", async () => {
    const start = parseLsn((await sql(c, "postgres", "SELECT pg_current_wal_lsn()::text AS l")).rows[0]?.l as string) as bigint;
    for (let i = 0; i < 3; i++) {
      await sql(c, "postgres", `CREATE TABLE t${i} AS SELECT g FROM generate_series(1, 1000) g`);
      await sql(c, "postgres", "SELECT pg_switch_wal()");
    }
    const last = (await sql(c, "postgres", "SELECT pg_walfile_name(pg_current_wal_lsn()) AS f")).rows[0]?.f as string;
    const deadline = Date.now() + 20_000;
    // The segment before the current one is the last archived.
    while ((await sql(c, "postgres", "SELECT last_archived_wal AS w FROM pg_stat_archiver")).rows[0]?.w === null || readdirSync(join(backupDir, "wal")).filter((n) => /^[0-9A-F]{24}$/.test(n)).length < 3) {
      if (Date.now() > deadline) throw new Error(`basic_archive archived too little: ${readdirSync(join(backupDir, "wal")).join(", ")}\n${readFileSync(join(c.dir, "server.log"), "utf8").slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const listing = await listWalArchive(backupDir);
    expect(listing.segments.length).toBeGreaterThanOrEqual(3);
    expect(listing.segments.every((e) => e.file.compression === "none" && !e.file.partial)).toBe(true);
    const r = checkWalContinuity(listing.segments.map((e) => e.file), await readTimelineHistories(listing), { timeline: 1, lsn: start }, 16 * 1024 * 1024);
    expect(r).toMatchObject({ ok: true });
    // pg_walfile_name of a segment boundary names the segment before it: the last one archived.
    expect(r.ok && r.to <= last).toBe(true);
    expect(walRange(listing)?.newest.file.name).toBe(r.ok ? r.to : "");
    const list = await runCli(["list"], cliEnv(c, backupDir), 30_000);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^WAL: .* \(timeline 1, 000000010000000000000001 to 0000000100000000000000\w\w, \d+ files/m);
  });
});
