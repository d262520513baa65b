import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ExitCode, TaskError } from "../../../lib/core/errors.js";
import { scanCatalog, usable } from "../../../lib/store/catalog.js";
import { testManifest } from "../../manifests.js";

const A = "20231210_030000_full.sql.bz2";
const B = "20231211_030000_full.sql.bz2";

function writeBackup(dir: string, name: string): void {
  writeFileSync(join(dir, name), "x");
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(testManifest(name)));
  writeFileSync(join(dir, `${name}.sha256`), `${"0".repeat(64)}  ${name}\n`);
}

function backupDir(): string {
  const d = mkdtempSync(join(tmpdir(), "pgsb-catalog-"));
  mkdirSync(join(d, "full"));
  writeBackup(join(d, "full"), A);
  return d;
}

describe("scanCatalog on a shared BACKUP_DIR", () => {
  it("refuses a symlinked tier folder by name (exit 4) instead of reading what it points at", async () => {
    const other = backupDir();
    const d = mkdtempSync(join(tmpdir(), "pgsb-catalog-"));
    symlinkSync(join(other, "full"), join(d, "full"));
    const err = await scanCatalog(d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).exitCode).toBe(ExitCode.refused);
    expect((err as TaskError).message).toContain(`BACKUP_DIR=${d}: tier folder ${join(d, "full")} is a symlink; it is not followed`);
  });

  it.each([[""], [".json"], [".sha256"]])("lists a backup whose %s file is a symlink as a problem and does not use it", async (suffix) => {
    const d = backupDir();
    const other = backupDir();
    writeBackup(join(d, "full"), B);
    const victim = join(d, "full", B + suffix);
    rmSync(victim);
    symlinkSync(join(other, "full", A + suffix), victim);
    const entries = await scanCatalog(d);
    expect(entries.map((e) => [e.name, e.problem])).toEqual([
      [A, null],
      [B, `${B}${suffix} is a symlink; backups and sidecars are never read through a symlink. Find out who created it, then remove it`],
    ]);
    expect(entries[1]?.manifest).toBeNull();
    expect(usable(entries).map((e) => e.name)).toEqual([A]);
  });
});
