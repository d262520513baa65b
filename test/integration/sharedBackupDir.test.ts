// BACKUP_DIR is a share other hosts, other stacks and the storage provider can write. Planted
// symlinks must never redirect a write (sidecars, temp files, the log, metrics), a deletion
// (a symlinked tier folder) or a read (latest pointers naming files outside BACKUP_DIR).
import { execFileSync } from "node:child_process";
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { backupName } from "../../lib/store/naming.js";
import { IDENTITY_MARKER } from "../../lib/store/backupDir.js";
import { run as backup } from "../../tasks/backup.js";
import { sql } from "../cluster.js";
import { cliEnv, runCli, snapshot, tempDir, testConfig, testDeps } from "../helpers.js";
import { runCliUmask } from "../umaskCli.js";

const cluster = inject("cluster");
const DAY = 24 * 60 * 60 * 1000;
const T0 = new Date("2026-11-20T03:00:00Z");
const at = (days: number) => new Date(T0.getTime() - days * DAY);

/** Plants a symlink at `path` to a fresh outside file; returns a check that the file is unchanged. */
function plant(path: string, outsideDir: string): () => void {
  const victim = join(outsideDir, `victim-${readdirSync(outsideDir).length}`);
  const content = `victim of ${path}\n`;
  writeFileSync(victim, content);
  symlinkSync(victim, path);
  return () => expect([path, readFileSync(victim, "utf8")]).toEqual([path, content]);
}

describe("backup into a BACKUP_DIR with planted symlinks", () => {
  it("writes through none of them: sidecar temp files, final sidecar names, latest pointer and its temp name", async () => {
    const dir = tempDir();
    const outside = tempDir("pgsb-outside-");
    mkdirSync(join(dir, "full"));
    const name = backupName("full", T0, "bzip2");
    const f = (n: string) => join(dir, "full", n);
    // The names the task used to write to, predictable from the schedule and the pid (1 in a container).
    const checks = [
      `${name}.sha256.tmp-${process.pid}`,
      `${name}.json.tmp-${process.pid}`,
      `latest_full.sql.bz2.tmp-${process.pid}`,
      `${name}.sha256`,
      `${name}.json`,
      "latest_full.sql.bz2",
      "latest_full.sql.bz2.txt",
    ].map((n) => plant(f(n), outside));
    const r = await backup(testConfig(cluster, dir), testDeps(() => T0), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
    expect(r.status).toBe("written");
    for (const check of checks) check();
    for (const n of [name, `${name}.sha256`, `${name}.json`]) expect([n, lstatSync(f(n)).isFile()]).toEqual([n, true]);
    expect(readlinkSync(f("latest_full.sql.bz2"))).toBe(name);
    execFileSync("sha256sum", ["-c", `${name}.sha256`], { cwd: join(dir, "full") });
  });

  it("is not blocked by a file planted at the old partial name", async () => {
    const dir = tempDir();
    const outside = tempDir("pgsb-outside-");
    mkdirSync(join(dir, "full"));
    const name = backupName("full", T0, "bzip2");
    const check = plant(join(dir, "full", `${name}.partial`), outside);
    const r = await backup(testConfig(cluster, dir), testDeps(() => T0), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
    expect(r.status).toBe("written");
    check();
    expect(readdirSync(join(dir, "full")).filter((n) => n.endsWith(".partial"))).toEqual([`${name}.partial`]);
  });

  it("the CLI neither appends its log through a symlinked backup.log nor writes metrics through planted temp names", async () => {
    const dir = tempDir();
    const outside = tempDir("pgsb-outside-");
    mkdirSync(join(dir, "full"));
    // A BACKUP_DIR in use: the default log file is opened only in a folder with its identity marker.
    writeFileSync(join(dir, IDENTITY_MARKER), "");
    const metrics = join(dir, "metrics.prom");
    const checks = [plant(join(dir, "backup.log"), outside), plant(`${metrics}.json`, outside)];
    const start = Date.now();
    const r = await runCliUmask(["backup", "full", "--force"], cliEnv(cluster, dir, { METRICS_FILE: metrics }), {
      onSpawn: (pid) => {
        checks.push(plant(`${metrics}.tmp-${pid}`, outside), plant(`${metrics}.json.tmp-${pid}`, outside));
        // The backup's name is its start second: plant the old temp names for the next minute.
        for (let s = -2; s < 60; s++) {
          const name = backupName("full", new Date(start + s * 1000), "bzip2");
          for (const n of [`${name}.sha256.tmp-${pid}`, `${name}.json.tmp-${pid}`]) checks.push(plant(join(dir, "full", n), outside));
        }
        checks.push(plant(join(dir, "full", `latest_full.sql.bz2.tmp-${pid}`), outside));
      },
    });
    for (const check of checks) check();
    expect(r.stderr).toContain(`LOG_FILE=${join(dir, "backup.log")} is a symlink; the log is never appended through a symlink`);
    expect(r.code).toBe(0);
    expect(lstatSync(join(dir, "backup.log")).isSymbolicLink()).toBe(true);
    expect(lstatSync(metrics).isFile()).toBe(true);
    expect(readFileSync(metrics, "utf8")).toContain('pgsb_last_result{task="backup",tier="full"} 1');
  });
});

describe("a symlinked tier folder", () => {
  it("makes cleanup refuse (exit 4) and leaves the backups it points at alone", async () => {
    const other = tempDir("pgsb-other-cluster-");
    for (const days of [60, 50, 10]) {
      const r = await backup(testConfig(cluster, other), testDeps(() => at(days)), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
      expect(r.status).toBe("written");
    }
    const env = (backupDir: string) => cliEnv(cluster, backupDir, { RETENTION_KEEP_FULL_DAYS: "42", RETENTION_MIN_FULL: "2" });
    // Planned against the other folder itself, cleanup would delete its oldest full.
    const plan = await runCli(["cleanup", "--dry-run", "--json", "--now", T0.toISOString()], env(other));
    expect(plan.code).toBe(0);
    expect((JSON.parse(plan.stdout) as { decisions: { action: string }[] }).decisions.map((d) => d.action)).toEqual(["delete", "keep", "keep"]);

    const dir = tempDir();
    symlinkSync(join(other, "full"), join(dir, "full"));
    const before = snapshot(other);
    for (const args of [["cleanup", "--now", T0.toISOString()], ["cleanup", "--dry-run", "--now", T0.toISOString()]]) {
      const r = await runCli(args, env(dir));
      expect(snapshot(other)).toEqual(before);
      expect([args.join(" "), r.code]).toEqual([args.join(" "), 4]);
      expect(r.stderr).toContain(`BACKUP_DIR=${dir}: tier folder ${join(dir, "full")} is a symlink; it is not followed`);
      expect(r.stdout).toBe("");
    }
    expect(snapshot(other)).toEqual(before);

    // Readers refuse it the same way, and a backup refuses to write through it (exit 9).
    const oldest = backupName("full", at(60), "bzip2");
    for (const args of [["list-databases", oldest], ["list-databases", join(dir, "full", oldest)], ["restore-full", oldest], ["list"]]) {
      const r = await runCli(args, env(dir));
      expect([args[0], r.code, r.stdout]).toEqual([args[0], 4, ""]);
      expect(r.stderr).toContain("is a symlink; it is not followed");
    }
    const b = await runCli(["backup", "full", "--force"], env(dir));
    expect(b.code).toBe(9);
    expect(b.stderr).toContain(`tier folder ${join(dir, "full")} (-> ${join(other, "full")}) is a symlink`);
    expect(snapshot(other)).toEqual(before);
  });
});

describe("latest pointers naming files outside their folder", () => {
  it("cleanup replaces a pointer that does not hold a backup name instead of refusing forever", async () => {
    const dir = tempDir();
    const r = await backup(testConfig(cluster, dir), testDeps(() => T0), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
    expect(r.status).toBe("written");
    rmSync(join(dir, "full", "latest_full.sql.bz2"));
    symlinkSync("../../../etc/passwd", join(dir, "full", "latest_full.sql.bz2"));
    const c = await runCli(["cleanup", "--now", T0.toISOString()], cliEnv(cluster, dir));
    expect(c.code).toBe(0);
    expect(c.stderr).toContain("latest full pointer is not a backup name; cleanup replaces it");
    expect(c.stdout).toContain("(invalid pointer) -> " + backupName("full", T0, "bzip2"));
    expect(readlinkSync(join(dir, "full", "latest_full.sql.bz2"))).toBe(backupName("full", T0, "bzip2"));
  });

  const MARKER = "leaked_marker_db";
  // pg_dumpall-shaped, so a reader that followed the pointer would list (or restore) its database.
  const SECRET = [
    ...["--", "-- PostgreSQL database cluster dump", "--", "", "--", "-- Databases", "--", ""],
    ...["--", `-- Database "${MARKER}" dump`, "--", "", `CREATE DATABASE ${MARKER};`, `\\connect ${MARKER}`, ""],
    ...["--", "-- PostgreSQL database dump complete", "--", ""],
    ...["--", "-- PostgreSQL database cluster dump complete", "--", "", ""],
  ].join("\n");

  function layout(): { root: string; dir: string; secret: string } {
    const root = tempDir("pgsb-pointer-");
    const dir = join(root, "backups");
    mkdirSync(join(dir, "full"), { recursive: true });
    const secret = join(root, "secret.sql");
    writeFileSync(secret, SECRET);
    return { root, dir, secret };
  }

  it("the secret file is readable as a backup when named directly, so following a pointer to it would leak it", async () => {
    const { dir, secret } = layout();
    const r = await runCli(["list-databases", secret], cliEnv(cluster, dir));
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(MARKER);
  });

  it.each([
    ["a pointer file holding ../../secret.sql", (d: string) => writeFileSync(join(d, "full", "latest_full.sql.txt"), "../../secret.sql\n")],
    ["a pointer file holding ../../etc/passwd", (d: string) => writeFileSync(join(d, "full", "latest_full.sql.txt"), `${"../".repeat(12)}etc/passwd\n`)],
    ["a symlink pointer to ../../secret.sql", (d: string) => symlinkSync("../../secret.sql", join(d, "full", "latest_full.sql"))],
    ["a symlink pointer to the secret's absolute path", (d: string) => symlinkSync(join(dirname(d), "secret.sql"), join(d, "full", "latest_full.sql"))],
    ["a pointer file that is a symlink to a file naming a backup", (d: string) => {
      writeFileSync(join(dirname(d), "name.txt"), "20231215_030000_full.sql\n");
      symlinkSync(join(dirname(d), "name.txt"), join(d, "full", "latest_full.sql.txt"));
    }],
  ])("%s: list-databases and restore refuse (exit 4) and print nothing of the target", async (_what, setup) => {
    const { dir } = layout();
    setup(dir);
    const pointer = join(dir, "full", "latest_full.sql");
    // A path names a file: the symlink form is read as a pointer, a missing file stays missing (exit 2).
    const byPath = lstatSync(pointer, { throwIfNoEntry: false })?.isSymbolicLink() === true ? [["restore-full", pointer]] : [];
    for (const args of [["list-databases", "latest_full.sql"], ["list-databases", "--json", "latest_full.sql"], ["restore-full", "latest_full.sql"], ...byPath]) {
      const r = await runCli(args, cliEnv(cluster, dir));
      expect([args.join(" "), r.code, r.stdout]).toEqual([args.join(" "), 4, ""]);
      expect(r.stderr).not.toContain(MARKER);
      expect(r.stderr).not.toContain("root:");
      expect(r.stderr).toMatch(/latest pointer (file )?\S*latest_full\.sql(\.txt)? (holds .*, not a bare full backup name|is a symlink; it is not followed)/);
    }
    const dbs = await sql(cluster, "postgres", "SELECT 1 FROM pg_database WHERE datname = $1", [MARKER]);
    expect(dbs.rowCount).toBe(0);
    expect(existsSync(join(dir, "full", "latest_full.sql.partial"))).toBe(false);
  });
});
