// Backups and sidecars hold every role's SCRAM hash: whatever the umask the task runs
// under, what it creates is 0640 (folders 0750), or BACKUP_FILE_MODE / BACKUP_DIR_MODE.
// METRICS_FILE stays 0644 for node_exporter; existing files keep their mode.
import { chmodSync, existsSync, lstatSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { cliEnv, tempDir } from "../helpers.js";
import { runCliUmask } from "../umaskCli.js";

const cluster = inject("cluster");
const modeOf = (p: string) => "0" + (statSync(p).mode & 0o7777).toString(8);

/** The mode of every file the backup wrote in the full folder, by kind. */
function fullFolderModes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of readdirSync(join(dir, "full"))) {
    if (lstatSync(join(dir, "full", name)).isSymbolicLink()) continue;
    out[name.replace(/^\d{8}_\d{6}_/, "")] = modeOf(join(dir, "full", name));
  }
  return out;
}

describe("modes of what a backup creates", () => {
  it.each([["000"], ["022"], ["077"]])("under umask %s: files 0640, folders 0750, backup.log 0640, metrics 0644", async (umask) => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    const r = await runCliUmask(["backup", "full", "--force"], cliEnv(cluster, dir, { METRICS_FILE: join(dir, "metrics.prom") }), { umask });
    expect([r.code, r.stderr.split("\n").filter((l) => l.includes('"error"'))]).toEqual([0, []]);
    expect(modeOf(join(dir, "full"))).toBe("0750");
    expect(fullFolderModes(dir)).toEqual({ "full.sql.bz2": "0640", "full.sql.bz2.sha256": "0640", "full.sql.bz2.json": "0640" });
    expect(modeOf(join(dir, "backup.log"))).toBe("0640");
    expect([modeOf(join(dir, "metrics.prom")), modeOf(join(dir, "metrics.prom.json"))]).toEqual(["0644", "0644"]);
    expect(modeOf(dir)).toBe("0755");
  });

  it("honours BACKUP_FILE_MODE and BACKUP_DIR_MODE, and leaves existing files' modes alone", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "backup.log"), "");
    chmodSync(join(dir, "backup.log"), 0o644);
    const r = await runCliUmask(["backup", "full", "--force"], cliEnv(cluster, dir, { BACKUP_FILE_MODE: "0600", BACKUP_DIR_MODE: "0700" }), { umask: "000" });
    expect(r.code).toBe(0);
    expect(modeOf(join(dir, "full"))).toBe("0700");
    expect(fullFolderModes(dir)).toEqual({ "full.sql.bz2": "0600", "full.sql.bz2.sha256": "0600", "full.sql.bz2.json": "0600" });
    expect(modeOf(join(dir, "backup.log"))).toBe("0644");
    expect(statSync(join(dir, "backup.log")).size).toBeGreaterThan(0);
  });

  it.each([
    ["BACKUP_FILE_MODE", "0644x", "is not an octal mode"],
    ["BACKUP_FILE_MODE", "0440", "does not give the owner read and write permission"],
    ["BACKUP_FILE_MODE", "4640", "sets setuid, setgid or sticky bits"],
    ["BACKUP_DIR_MODE", "0650", "does not give the owner read, write and search permission"],
    ["BACKUP_DIR_MODE", "rwxr-x---", "is not an octal mode"],
  ])("%s=%s fails at start with exit 2 and creates nothing", async (name, value, why) => {
    const dir = tempDir();
    const r = await runCliUmask(["backup", "full"], cliEnv(cluster, dir, { [name]: value }));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`pg-swarm-backup backup full: ${name}=${/^\d+$/.test(value) ? value : JSON.stringify(value)} ${why}`);
    expect(r.stderr).toMatch(/use an octal mode such as 0[67][45]0 \(the default\)/);
    expect(existsSync(join(dir, "full"))).toBe(false);
  });
});
