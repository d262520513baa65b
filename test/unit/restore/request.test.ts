import { describe, expect, it } from "vitest";
import type { CatalogEntry } from "../../../lib/store/catalog.js";
import type { Manifest } from "../../../lib/store/manifest.js";
import { parseBackupName } from "../../../lib/store/naming.js";
import { planRestore } from "../../../lib/restore/plan.js";
import { databaseRequest, latestRequest } from "../../../lib/restore/request.js";
import type { ResolvedFile } from "../../../lib/store/resolveFile.js";

const F = "20240107_030000_full.sql.bz2";
const I = "20240107_040000_incremental.sql.zst";

function manifest(name: string, parent: string | null, databases: string[], included: string[]): Manifest {
  const parsed = parseBackupName(name);
  if (parsed === null) throw new Error(name);
  return {
    name,
    tier: parsed.tier,
    parent,
    startedAt: parsed.time.toISOString(),
    sha256: (name === F ? "a" : "b").repeat(64),
    compression: { codec: parsed.codec, program: "x", level: null },
    databases,
    included,
  } as Manifest;
}

function entry(m: Manifest): CatalogEntry {
  const parsed = parseBackupName(m.name);
  if (parsed === null) throw new Error(m.name);
  return { name: m.name, tier: m.tier, path: `/b/${m.tier}/${m.name}`, time: parsed.time, parent: m.parent, manifest: m, problem: null, bytes: 1, expect: { name: m.name, chunks: null, sha256: m.sha256 } };
}

describe("latestRequest", () => {
  it("takes the globals from the point and each database from the file that holds its newest section", () => {
    const catalog = [entry(manifest(F, null, ["template1", "postgres", "a", "b"], ["template1", "postgres", "a", "b"])), entry(manifest(I, F, ["template1", "postgres", "a", "b"], ["b"]))];
    const req = latestRequest(planRestore(catalog, {}), catalog, true);
    expect(req.globals).toEqual({ file: { name: I, path: `/b/incremental/${I}`, codec: "zstd", encrypted: false, recipients: null, expect: { name: I, chunks: null, sha256: "b".repeat(64) } }, mode: "all" });
    expect(req.files.map((f) => [f.name, f.codec, f.expect.sha256?.[0]])).toEqual([[F, "bzip2", "a"], [I, "zstd", "b"]]);
    expect(req.databases.map((d) => [d.file.name, d.source, d.target])).toEqual([[F, "template1", "template1"], [F, "postgres", "postgres"], [F, "a", "a"], [I, "b", "b"]]);
    expect(req.dropExisting).toBe(true);
  });
});

describe("databaseRequest", () => {
  const file: ResolvedFile = { name: I, path: `/b/incremental/${I}`, codec: "zstd", encrypted: false, manifest: manifest(I, F, ["postgres", "a", "b"], ["b"]), expect: { name: I, chunks: null, sha256: "b".repeat(64) }, trustProblem: null };

  it("creates missing roles only, and restores under --as", () => {
    const req = databaseRequest(file, "b", "b2", false);
    expect(req.globals?.mode).toBe("missingRoles");
    expect(req.databases.map((d) => [d.source, d.target])).toEqual([["b", "b2"]]);
  });

  it.each([
    ["a", undefined, /holds no section for database "a"; it was unchanged .* older backup of the chain/],
    ["zz", undefined, /holds no section for database "zz"; it holds: "b"/],
    ["b", "template0", /cannot restore into a database named "template0"/],
    ["b", "postgres", /--as postgres: template1 and postgres are only restored from their own sections/],
    ["b", "new\nline", /cannot hold a line break/],
  ])("refuses %s --as %s", (db, as, message) => {
    expect(() => databaseRequest(file, db, as, false)).toThrow(message);
  });
});
