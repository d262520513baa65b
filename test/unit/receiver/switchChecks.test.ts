// The checks at every segment switch on real folders: a symlink in wal/ (exit 4, named with its
// target), wal/ or the spool itself a symlink (exit 9), the identity marker gone (exit 9); a clean wal/ passes.
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { switchChecks } from "../../../lib/receiver/switchChecks.js";
import { IDENTITY_MARKER } from "../../../lib/store/backupDir.js";
import { tempDir } from "../../helpers.js";

/** A BACKUP_DIR as wal-receive finds it on the storage box: its identity marker, and wal/. */
function marked(prefix = "pgsb-switch-"): string {
  const dir = tempDir(prefix);
  writeFileSync(join(dir, IDENTITY_MARKER), "");
  return dir;
}

function backupDir(): string {
  const dir = marked();
  mkdirSync(join(dir, "wal"));
  writeFileSync(join(dir, "wal", "000000010000000000000003.gz"), "x");
  return dir;
}

describe("switchChecks", () => {
  it("passes a wal/ of regular files, and a missing one", async () => {
    const dir = backupDir();
    await expect(switchChecks({ backupDir: dir, receiveDir: join(dir, "wal") })).resolves.toBeUndefined();
    await expect(switchChecks({ backupDir: marked(), receiveDir: "/nonexistent/wal" })).resolves.toBeUndefined();
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
    const dir = marked();
    const elsewhere = tempDir("pgsb-switch-elsewhere-");
    if (which === "wal") symlinkSync(elsewhere, join(dir, "wal"));
    else symlinkSync(elsewhere, join(dir, "spool"));
    await expect(switchChecks({ backupDir: dir, receiveDir: join(dir, which === "wal" ? "wal" : "spool") })).rejects.toMatchObject({ exitCode: 9, message: expect.stringMatching(/is a symlink/) });
  });

  it("stops when BACKUP_DIR lost its identity marker: the storage box was unmounted under the receiver (exit 9)", async () => {
    const dir = backupDir();
    rmSync(join(dir, IDENTITY_MARKER));
    await expect(switchChecks({ backupDir: dir, receiveDir: join(dir, "wal") })).rejects.toMatchObject({ exitCode: 9, message: expect.stringMatching(/the storage box is not mounted at .*identity marker .* is gone/) });
  });
});
