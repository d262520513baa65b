// restore-pitr from a wal/ folder that archive_library = 'basic_archive' fills (uncompressed
// segments, no .partial), and what a bad base backup or WAL file does: refused or failed with
// nothing presented as restored, the partial folder gone, the old data directory untouched.
import { execFileSync } from "node:child_process";
import { chownSync, mkdirSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleep } from "../../lib/core/concurrency.js";
import type { ClusterInfo } from "../cluster.js";
import { createCluster, destroyCluster, sql, startCluster, stopCluster } from "../cluster.js";

/** Stops a restored cluster without removing its folder (a mount point must be unmounted first). */
function destroyClusterKeepDir(c: ClusterInfo): void {
  try {
    stopCluster(c, "immediate");
  } catch {
    // not running
  }
}
import { cliEnv, runCli, snapshot, tempDir } from "../helpers.js";
import { makeBaseBackup, restoreTarget, startRestored } from "../pitrFixtures.js";

let src: ClusterInfo;
let backupDir: string;
let baseName: string;
const cleanup: (() => void)[] = [];

async function target(name: string): Promise<ClusterInfo> {
  const t = await restoreTarget(name);
  cleanup.push(() => destroyCluster(t));
  return t;
}

/** Whether this test run may mount a tmpfs (root with CAP_SYS_ADMIN), to stand in for a volume mounted as PGDATA. */
function canMount(): boolean {
  const probe = tempDir("pgsb-pitr-mountprobe-");
  try {
    execFileSync("mount", ["-t", "tmpfs", "none", probe], { stdio: "ignore" });
    execFileSync("umount", [probe]);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

const env = (extra: Record<string, string> = {}) => cliEnv(src, backupDir, extra);

beforeAll(async () => {
  src = await createCluster({ name: "pitr-archive" });
  cleanup.push(() => destroyCluster(src));
  backupDir = tempDir("pgsb-pitr-archive-");
  cleanup.push(() => rmSync(backupDir, { recursive: true, force: true }));
  const wal = join(backupDir, "wal");
  mkdirSync(wal);
  // The server writes into wal/ itself, as on a host where postgres mounts the storage box.
  if (process.getuid?.() === 0) {
    const [uid, gid] = ["-u", "-g"].map((f) => Number(execFileSync("id", [f, "postgres"]).toString()));
    chownSync(backupDir, uid as number, gid as number);
    chownSync(wal, uid as number, gid as number);
  }
  // basic_archive's setting is unknown to ALTER SYSTEM until the library is loaded.
  writeFileSync(join(src.dataDir, "postgresql.auto.conf"), ["archive_mode = on", "archive_library = 'basic_archive'", `basic_archive.archive_directory = '${wal}'`, ""].join("\n"), { flag: "a" });
  stopCluster(src);
  startCluster(src);
  await sql(src, "postgres", "CREATE TABLE t (x text)");
  baseName = makeBaseBackup(src, backupDir).name;
  await sql(src, "postgres", "INSERT INTO t VALUES ('after the base backup')");
  const switched = (await sql(src, "postgres", "SELECT pg_walfile_name(pg_switch_wal()) AS f")).rows[0].f as string;
  for (const end = Date.now() + 30_000; !readdirSync(wal).includes(switched); await sleep(100)) {
    if (Date.now() > end) throw new Error(`basic_archive did not archive ${switched} within 30 s`);
  }
  stopCluster(src);
}, 120_000);

afterAll(() => {
  for (const f of cleanup.reverse()) {
    try {
      f();
    } catch {
      // keep cleaning
    }
  }
});

describe("restore-pitr from basic_archive's folder", () => {
  it("recovers to the end of the archived WAL; unsigned, the source's archive_library is refused until --trust-unsigned", async () => {
    expect(readdirSync(join(backupDir, "wal")).every((n) => !n.endsWith(".partial") && !n.endsWith(".gz"))).toBe(true);
    const t = await target("pitr-archive-end");
    // The source cluster sets archive_library in its postgresql.auto.conf, so the base backup carries it.
    const refused = await runCli(["restore-pitr", "--pgdata", t.dataDir], env());
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain(`${baseName} is not signed (BACKUP_VERIFY_KEY_FILE is unset), and its configuration sets what runs commands or loads code when postgres starts: postgresql.auto.conf:`);
    expect(refused.stderr).toContain(`archive_library = "basic_archive" (loads a library into the archiver)`);
    expect(refused.stderr).toContain("--trust-unsigned");
    expect(readdirSync(t.dir)).toEqual(["sock"]);
    const r = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--trust-unsigned"], env());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/--trust-unsigned: the unsigned base backup's configuration runs commands or loads code, restored as it is: postgresql\.auto\.conf:\d+ archive_library/);
    startRestored(t);
    for (const end = Date.now() + 60_000; ; await sleep(200)) {
      const rec = await sql(t, "postgres", "SELECT pg_is_in_recovery() AS r").catch(() => null);
      if (rec?.rows[0].r === false) break;
      if (Date.now() > end) throw new Error("the restored cluster did not promote within 60 s");
    }
    expect((await sql(t, "postgres", "SELECT x FROM t")).rows).toEqual([{ x: "after the base backup" }]);
  });

  it.skipIf(!canMount())("restores into a data directory that is a mount point, its old contents moved into DIR/.pgsb-moved-<time>/", async () => {
    const t = await restoreTarget("pitr-archive-mount");
    mkdirSync(t.dataDir);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=512m,mode=0755", "none", t.dataDir]);
    try {
      writeFileSync(join(t.dataDir, "PG_VERSION"), "15\n");
      const r = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--move-aside", "--trust-unsigned"], env());
      expect(r.code, r.stderr).toBe(0);
      const entries = readdirSync(t.dataDir);
      const moved = entries.filter((n) => n.startsWith(".pgsb-moved-"));
      expect(moved).toHaveLength(1);
      expect(readdirSync(join(t.dataDir, moved[0] as string))).toEqual(["PG_VERSION"]);
      expect(entries.filter((n) => n.includes(".partial"))).toEqual([]);
      expect(statSync(t.dataDir).mode & 0o777).toBe(0o700);
      startRestored(t);
      for (const end = Date.now() + 60_000; ; await sleep(200)) {
        const rec = await sql(t, "postgres", "SELECT pg_is_in_recovery() AS r").catch(() => null);
        if (rec?.rows[0].r === false) break;
        if (Date.now() > end) throw new Error("the restored cluster did not promote within 60 s");
      }
      expect((await sql(t, "postgres", "SELECT x FROM t")).rows).toEqual([{ x: "after the base backup" }]);
    } finally {
      destroyClusterKeepDir(t);
      execFileSync("umount", [t.dataDir]);
      rmSync(t.dir, { recursive: true, force: true });
    }
  });

  it("refuses a base backup whose checksum does not match, writing nothing", async () => {
    const path = join(backupDir, "base", baseName);
    const sidecar = path + ".sha256";
    const good = execFileSync("cat", [sidecar]).toString();
    writeFileSync(sidecar, good.replace(/^[0-9a-f]{64}/, "0".repeat(64)));
    try {
      const t = await target("pitr-archive-sum");
      const r = await runCli(["restore-pitr", "--pgdata", t.dataDir], env());
      expect(r.code).toBe(4);
      expect(r.stderr).toMatch(/nothing was written: .*the \.sha256 sidecar and the manifest disagree/);
      expect(readdirSync(t.dir)).toEqual(["sock"]);
    } finally {
      writeFileSync(sidecar, good);
    }
  });

  it("refuses an unsigned base backup when BACKUP_VERIFY_KEY_FILE is set", async () => {
    const keys = tempDir("pgsb-pitr-keys-");
    cleanup.push(() => rmSync(keys, { recursive: true, force: true }));
    execFileSync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", join(keys, "sign.pem")]);
    execFileSync("openssl", ["pkey", "-in", join(keys, "sign.pem"), "-pubout", "-out", join(keys, "verify.pem")]);
    const t = await target("pitr-archive-sig");
    const r = await runCli(["restore-pitr", "--pgdata", t.dataDir], env({ BACKUP_VERIFY_KEY_FILE: join(keys, "verify.pem") }));
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/signature .*\.sig is missing/);
    expect(readdirSync(t.dir)).toEqual(["sock"]);
  });

  it("a truncated WAL segment fails the restore: the partial folder is removed and the old data directory left as it was", async () => {
    const wal = join(backupDir, "wal");
    const seg = readdirSync(wal).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort().at(-1) as string;
    const saved = join(backupDir, seg);
    execFileSync("cp", ["-p", join(wal, seg), saved]);
    truncateSync(join(wal, seg), 8192);
    try {
      const t = await target("pitr-archive-trunc");
      mkdirSync(t.dataDir);
      writeFileSync(join(t.dataDir, "PG_VERSION"), "15\n");
      const before = snapshot(t.dir);
      const r = await runCli(["restore-pitr", "--pgdata", t.dataDir, "--move-aside", "--trust-unsigned"], env());
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`was not restored \\(the partial folder was removed\\): WAL segment ${seg} in BACKUP_DIR/wal holds 8192 bytes`));
      expect(snapshot(t.dir)).toEqual(before);
    } finally {
      execFileSync("cp", ["-p", saved, join(wal, seg)]);
    }
  });
});
