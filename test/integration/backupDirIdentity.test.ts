// BACKUP_DIR is known by its identity marker (issue 25): written when the folder is first set
// up, adopted by an installation from before it, and missing where METRICS_FILE says backups
// existed means the storage box is not mounted: exit 9, and nothing written beside the box (not
// even the default backup.log).
import { mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { IDENTITY_MARKER, assertBackupDirIdentity, assertBackupDirMarker } from "../../lib/store/backupDir.js";
import { silentLogger } from "../../lib/core/log.js";
import { cliEnv, runCli, snapshot, tempDir } from "../helpers.js";
import { runCliUmask } from "../umaskCli.js";

const cluster = inject("cluster");

describe("the BACKUP_DIR identity marker", () => {
  it("is written by the first backup into a new, empty folder, and the log says so", async () => {
    const dir = tempDir();
    // runCliUmask: LOG_FILE unset, so the default $BACKUP_DIR/backup.log applies.
    const r = await runCliUmask(["backup", "full"], cliEnv(cluster, dir));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`BACKUP_DIR set up: identity marker ${IDENTITY_MARKER} written`);
    expect(JSON.parse(readFileSync(join(dir, IDENTITY_MARKER), "utf8"))).toMatchObject({ tool: "pg-swarm-backup", id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    // The default LOG_FILE in BACKUP_DIR is opened once the marker is there, with the lines logged before it.
    const logged = readFileSync(join(dir, "backup.log"), "utf8");
    expect(logged.indexOf('"task":"backup"')).toBeLessThan(logged.indexOf("BACKUP_DIR set up"));
    expect(logged).toContain("full backup written");
  });

  it("is adopted by an installation from before it: backups there, no marker; the backup writes one and says so", async () => {
    const dir = tempDir();
    expect((await runCli(["backup", "full"], cliEnv(cluster, dir))).code).toBe(0);
    rmSync(join(dir, IDENTITY_MARKER));
    const r = await runCli(["backup", "full", "--force"], cliEnv(cluster, dir));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/BACKUP_DIR holds backups \(full\/.*\) but no identity marker \(written before this version\): marker .* written/);
    expect(readdirSync(dir)).toContain(IDENTITY_MARKER);
  });

  it("missing where METRICS_FILE records backups (the box is not mounted, its mount point's folder is): exit 9, nothing written there", async () => {
    const box = tempDir();
    const metrics = join(tempDir("pgsb-metrics-"), "pgsb.prom");
    expect((await runCli(["backup", "full"], cliEnv(cluster, box, { METRICS_FILE: metrics }))).code).toBe(0);
    // What a task sees when the box is not mounted: the empty folder a node's own disk has there.
    const local = tempDir("pgsb-unmounted-");
    const before = snapshot(local);
    for (const args of [["backup", "incremental"], ["backup", "full"], ["restore-latest"], ["auto-restore", "--wait", "5"], ["cleanup"]]) {
      const r = await runCliUmask(args, cliEnv(cluster, local, { METRICS_FILE: metrics }));
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(9);
      expect(r.stderr).toContain(`the storage box is not mounted at BACKUP_DIR=${local}: it holds neither the identity marker ${IDENTITY_MARKER} nor any backup, but METRICS_FILE=${metrics} records backups`);
    }
    expect(snapshot(local)).toEqual(before);
    // An empty box on purpose: the marker made by hand is accepted.
    writeFileSync(join(local, IDENTITY_MARKER), "");
    expect((await runCli(["backup", "full"], cliEnv(cluster, local, { METRICS_FILE: metrics }))).code).toBe(0);
  });

  it("a readers' check (create: false) leaves a new folder unmarked; a symlink at the marker's name is exit 9", async () => {
    const dir = tempDir();
    const log = silentLogger();
    expect(await assertBackupDirIdentity(dir, { metricsFile: null, log, create: false })).toBe("empty");
    expect(readdirSync(dir)).toEqual([]);
    mkdirSync(join(dir, "full"));
    writeFileSync(join(dir, "full", "20240107_030000_full.sql.bz2"), "x");
    expect(await assertBackupDirIdentity(dir, { metricsFile: null, log, create: false })).toBe("unmarked");
    expect(await assertBackupDirIdentity(dir, { metricsFile: null, log, create: true })).toBe("created");
    expect(await assertBackupDirIdentity(dir, { metricsFile: null, log, create: true })).toBe("present");
    rmSync(join(dir, IDENTITY_MARKER));
    symlinkSync("/etc/hostname", join(dir, IDENTITY_MARKER));
    await expect(assertBackupDirIdentity(dir, { metricsFile: null, log, create: true })).rejects.toMatchObject({ exitCode: 9, message: expect.stringContaining("is not a regular file") });
  });

  it("assertBackupDirMarker (wal-receive at every segment switch): exit 9 once the marker is gone", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, IDENTITY_MARKER), "");
    await assertBackupDirMarker(dir);
    rmSync(join(dir, IDENTITY_MARKER));
    await expect(assertBackupDirMarker(dir)).rejects.toMatchObject({ exitCode: 9, message: expect.stringMatching(/the storage box is not mounted at .*its identity marker .* is gone/) });
  });
});
