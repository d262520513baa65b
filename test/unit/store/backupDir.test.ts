import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { assertBackupDir, isStorageErrno } from "../../../lib/store/backupDir.js";
import { ExitCode } from "../../../lib/core/errors.js";

const dir = mkdtempSync(join(tmpdir(), "pgsb-backupdir-"));
const file = join(dir, "a-file");
writeFileSync(file, "");

describe("assertBackupDir", () => {
  it("accepts a folder", async () => {
    await expect(assertBackupDir(dir, "nothing was done")).resolves.toBeUndefined();
  });

  it.each<[string, string, RegExp]>([
    ["missing", join(dir, "missing"), /does not exist; nothing was done\. Mount the storage box there/],
    ["a file", file, /is not a folder; nothing was done\. Mount the storage box there/],
    ["below a file", join(file, "backups"), /is not a folder \(a file is in its path\); nothing was done/],
  ])("refuses a BACKUP_DIR that is %s with exit 9 naming it", async (_what, path, message) => {
    const err = await assertBackupDir(path, "nothing was done").catch((e: unknown) => e);
    expect(err).toMatchObject({ exitCode: ExitCode.storage, message: expect.stringContaining(`BACKUP_DIR=${path} `) as unknown });
    expect((err as Error).message).toMatch(message);
  });
});

describe("isStorageErrno", () => {
  it.each<[string, boolean]>([
    ["ENOSPC", true],
    ["EDQUOT", true],
    ["EROFS", true],
    ["EIO", true],
    ["ECONNRESET", false],
    ["ERR_STREAM_PREMATURE_CLOSE", false],
  ])("%s -> %s", (code, storage) => {
    expect(isStorageErrno(Object.assign(new Error(code), { code }))).toBe(storage);
  });
});
