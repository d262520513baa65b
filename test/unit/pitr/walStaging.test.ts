// History files as pg_receivewal stores them (gzip-compressed) are staged under the plain
// name recovery asks restore_command for; a symlink planted under such a name is not followed.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { STAGED_WAL_DIR, stageWal } from "../../../lib/pitr/walStaging.js";
import { tempDir } from "../../helpers.js";

const HISTORY = "1\t0/3000000\tno recovery target specified\n";
const log = pino({ level: "silent" });

function setup(): { backupDir: string; dataDir: string } {
  const backupDir = tempDir("pgsb-staging-");
  const dataDir = join(backupDir, "data");
  mkdirSync(join(backupDir, "wal"));
  mkdirSync(dataDir);
  return { backupDir, dataDir };
}

describe("stageWal: history files", () => {
  it("decompresses 00000002.history.gz to 00000002.history and copies a plain one as it is", async () => {
    const { backupDir, dataDir } = setup();
    writeFileSync(join(backupDir, "wal", "00000002.history"), HISTORY);
    execFileSync("sh", ["-c", `printf '%s' "$1" | gzip -c > 00000003.history.gz`, "sh", HISTORY.replace("1\t", "2\t")], { cwd: join(backupDir, "wal") });
    await stageWal(backupDir, dataDir, [], ["00000002.history", "00000003.history.gz"], 16 << 20, { PATH: process.env.PATH }, log);
    expect(readFileSync(join(dataDir, STAGED_WAL_DIR, "00000002.history"), "utf8")).toBe(HISTORY);
    expect(readFileSync(join(dataDir, STAGED_WAL_DIR, "00000003.history"), "utf8")).toBe(HISTORY.replace("1\t", "2\t"));
  });

  it("refuses a history name that is a symlink instead of copying what it points at", async () => {
    const { backupDir, dataDir } = setup();
    writeFileSync(join(backupDir, "secret"), "not WAL");
    symlinkSync(join(backupDir, "secret"), join(backupDir, "wal", "00000002.history"));
    await expect(stageWal(backupDir, dataDir, [], ["00000002.history"], 16 << 20, { PATH: process.env.PATH }, log)).rejects.toThrow();
  });
});
