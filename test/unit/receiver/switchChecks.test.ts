// The checks at every segment switch on real folders: a symlink in wal/ (exit 4, named with its
// target), wal/ or the spool itself a symlink (exit 9); a clean wal/ passes.
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { switchChecks } from "../../../lib/receiver/switchChecks.js";
import { tempDir } from "../../helpers.js";

function backupDir(): string {
  const dir = tempDir("pgsb-switch-");
  mkdirSync(join(dir, "wal"));
  writeFileSync(join(dir, "wal", "000000010000000000000003.gz"), "x");
  return dir;
}

describe("switchChecks", () => {
  it("passes a wal/ of regular files, and a missing one", async () => {
    const dir = backupDir();
    await expect(switchChecks({ backupDir: dir, receiveDir: join(dir, "wal") })).resolves.toBeUndefined();
    await expect(switchChecks({ backupDir: tempDir("pgsb-switch-"), receiveDir: "/nonexistent/wal" })).resolves.toBeUndefined();
  });

  it("refuses a symlink in wal/ (exit 4), naming it and its target", async () => {
    const dir = backupDir();
    symlinkSync("/etc/passwd", join(dir, "wal", "000000010000000000000004.gz.partial"));
    await expect(switchChecks({ backupDir: dir, receiveDir: join(dir, "wal") })).rejects.toMatchObject({
      exitCode: 4,
      message: expect.stringMatching(/wal\/000000010000000000000004\.gz\.partial is a symlink \(-> \/etc\/passwd\); pg_receivewal would write WAL through it/),
    });
  });

  it.each(["wal", "spool"])("refuses %s/ that is a symlink (exit 9)", async (which) => {
    const dir = tempDir("pgsb-switch-");
    const elsewhere = tempDir("pgsb-switch-elsewhere-");
    if (which === "wal") symlinkSync(elsewhere, join(dir, "wal"));
    else symlinkSync(elsewhere, join(dir, "spool"));
    await expect(switchChecks({ backupDir: dir, receiveDir: join(dir, which === "wal" ? "wal" : "spool") })).rejects.toMatchObject({ exitCode: 9, message: expect.stringMatching(/is a symlink/) });
  });
});
