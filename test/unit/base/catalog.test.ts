import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ExitCode, TaskError } from "../../../lib/core/errors.js";
import { scanBaseCatalog, usableBases } from "../../../lib/base/catalog.js";
import { testBaseManifest } from "../../baseManifests.js";

const A = "20240106_020000_base.tar.zst";
const B = "20240113_020000_base.tar.zst";
const dirs: string[] = [];

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function writeBase(dir: string, name: string): void {
  writeFileSync(join(dir, name), "x");
  writeFileSync(join(dir, `${name}.json`), JSON.stringify(testBaseManifest(name)));
  writeFileSync(join(dir, `${name}.sha256`), `${"0".repeat(64)}  ${name}\n`);
}

function backupDir(...names: string[]): string {
  const d = mkdtempSync(join(tmpdir(), "pgsb-basecat-"));
  dirs.push(d);
  mkdirSync(join(d, "base"));
  for (const n of names) writeBase(join(d, "base"), n);
  return d;
}

describe("scanBaseCatalog", () => {
  it("lists base backups oldest first and ignores partials, sidecars and foreign names", async () => {
    const d = backupDir(B, A);
    writeFileSync(join(d, "base", `${A}.Xy12.partial`), "half");
    writeFileSync(join(d, "base", "notes.txt"), "");
    const entries = await scanBaseCatalog(d);
    expect(entries.map((e) => [e.name, e.problem, e.bytes])).toEqual([
      [A, null, 1],
      [B, null, 1],
    ]);
    expect(entries[0]?.time.toISOString()).toBe("2024-01-06T02:00:00.000Z");
    expect(usableBases(entries).map((e) => e.manifest.startLsn)).toEqual(["0/2000028", "0/2000028"]);
  });

  it("reads a missing base folder as empty", async () => {
    const d = mkdtempSync(join(tmpdir(), "pgsb-basecat-"));
    dirs.push(d);
    expect(await scanBaseCatalog(d)).toEqual([]);
  });

  it("refuses a symlinked base folder (exit 4)", async () => {
    const other = backupDir(A);
    const d = mkdtempSync(join(tmpdir(), "pgsb-basecat-"));
    dirs.push(d);
    symlinkSync(join(other, "base"), join(d, "base"));
    const err = await scanBaseCatalog(d).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).exitCode).toBe(ExitCode.refused);
    expect((err as TaskError).message).toContain(`base backup folder ${join(d, "base")} is a symlink`);
  });

  it.each([[""], [".json"], [".sha256"]])("lists a base backup whose %s file is a symlink as a problem", async (suffix) => {
    const d = backupDir(A, B);
    const other = backupDir(A);
    const victim = join(d, "base", B + suffix);
    rmSync(victim);
    symlinkSync(join(other, "base", A + suffix), victim);
    const entries = await scanBaseCatalog(d);
    expect(entries[1]?.problem).toBe(`${B}${suffix} is a symlink; backups and sidecars are never read through a symlink. Find out who created it, then remove it`);
    expect(entries[1]?.manifest).toBeNull();
    expect(usableBases(entries).map((e) => e.name)).toEqual([A]);
  });

  it("names manifest and sidecar problems per entry", async () => {
    const d = backupDir(A, B);
    writeFileSync(join(d, "base", `${A}.json`), JSON.stringify({ ...testBaseManifest(A), stopLsn: "nope" }));
    rmSync(join(d, "base", `${B}.sha256`));
    const entries = await scanBaseCatalog(d);
    expect(entries.map((e) => e.problem)).toEqual([`invalid manifest: stopLsn: "nope" is not an LSN such as 0/2000028`, `no checksum file ${B}.sha256`]);
    expect(usableBases(entries)).toEqual([]);
  });

  it("names a missing manifest", async () => {
    const d = backupDir(A);
    rmSync(join(d, "base", `${A}.json`));
    expect((await scanBaseCatalog(d))[0]?.problem).toBe(`no manifest ${A}.json`);
  });
});
