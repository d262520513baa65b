// The pure half of the mirror: grouping listed keys into remote backups, deciding what to
// upload, and merging local and remote catalogs for restore.
import { describe, expect, it } from "vitest";
import type { CatalogEntry } from "../../../lib/store/catalog.js";
import type { Manifest } from "../../../lib/store/manifest.js";
import type { Tier } from "../../../lib/store/naming.js";
import { backupName } from "../../../lib/store/naming.js";
import type { RemoteBackup } from "../../../lib/s3/remoteCatalog.js";
import { groupRemote, mergeCatalogs, planMirror } from "../../../lib/s3/remoteCatalog.js";

const T0 = Date.parse("2026-03-01T03:00:00Z");
const HOUR = 3600_000;

function entry(tier: Tier, hours: number, bytes = 100, problem: string | null = null): CatalogEntry {
  const time = new Date(T0 + hours * HOUR);
  const name = backupName(tier, time, "bzip2");
  const manifest = problem === null ? ({ name, tier, sha256: "a".repeat(64), startedAt: time.toISOString() } as Manifest) : null;
  return { name, tier, path: `/b/${tier}/${name}`, time, parent: null, manifest, problem, bytes };
}

function remote(e: CatalogEntry, over: Partial<RemoteBackup> = {}): RemoteBackup {
  return { name: e.name, tier: e.tier, key: `p/${e.tier}/${e.name}`, time: e.time, bytes: e.bytes, hasChecksum: true, hasSignature: false, hasManifest: true, problem: null, ...over };
}

describe("groupRemote", () => {
  it("groups data and sidecars by name, ignores foreign keys, and names what is incomplete", () => {
    const full = "20260301_030000_full.sql.bz2";
    const incr = "20260301_040000_incremental.sql.zst";
    const got = groupRemote("p/", [
      { Key: `p/full/${full}`, Size: 1234 },
      { Key: `p/full/${full}.sha256`, Size: 90 },
      { Key: `p/full/${full}.sha256.sig`, Size: 64 },
      { Key: `p/full/${full}.json`, Size: 900 },
      { Key: `p/incremental/${incr}`, Size: 10 },
      { Key: `p/incremental/${incr}.sha256`, Size: 90 },
      { Key: "p/differential/20260302_030000_differential.sql.bz2.json", Size: 5 },
      { Key: `p/differential/${full}`, Size: 1 }, // a full in the wrong folder
      { Key: "p/full/latest_full.sql.bz2", Size: 1 },
      { Key: "p/backup.log", Size: 1 },
      { Key: `other/full/${full}`, Size: 1 },
      { Key: `p/full/nested/${full}`, Size: 1 },
    ]);
    expect(got.map((r) => [r.name, r.tier, r.key, r.bytes, r.hasSignature, r.problem])).toEqual([
      [full, "full", `p/full/${full}`, 1234, true, null],
      [incr, "incremental", `p/incremental/${incr}`, 10, false, `no manifest ${incr}.json`],
      ["20260302_030000_differential.sql.bz2", "differential", "p/differential/20260302_030000_differential.sql.bz2", null, false, "data object missing"],
    ]);
  });

  it("works without a prefix", () => {
    expect(groupRemote("", [{ Key: "full/20260301_030000_full.sql", Size: 3 }])[0]?.problem).toBe("no manifest 20260301_030000_full.sql.json");
  });
});

describe("planMirror", () => {
  const a = entry("full", 0);
  it.each<[string, RemoteBackup[], string | null, string[]?]>([
    ["absent in S3", [], "not in S3"],
    ["only sidecars in S3", [remote(a, { bytes: null })], "data object missing in S3"],
    ["a different size (an interrupted or older upload)", [remote(a, { bytes: 99 })], "size in S3 differs (99 bytes, local 100)"],
    ["no manifest in S3", [remote(a, { hasManifest: false })], "sidecars missing in S3"],
    ["no checksum in S3", [remote(a, { hasChecksum: false })], "sidecars missing in S3"],
    ["complete in S3", [remote(a)], null],
    ["signed locally, signature missing in S3", [remote(a)], "signature missing in S3", [a.name]],
    ["signed locally and in S3", [remote(a, { hasSignature: true })], null, [a.name]],
    ["unsigned locally, a signature in S3", [remote(a, { hasSignature: true })], null],
  ])("%s", (_label, rem, reason, signed = []) => {
    const plan = planMirror([a], rem, new Set(signed));
    expect(plan.upload.map((u) => u.reason)).toEqual(reason === null ? [] : [reason]);
    expect(plan.inSync.map((e) => e.name)).toEqual(reason === null ? [a.name] : []);
  });

  it("never uploads a backup that is unusable locally, and ignores backups only S3 has", () => {
    const broken = entry("incremental", 1, 5, "no manifest x.json");
    const onlyRemote = entry("full", -24);
    const plan = planMirror([broken], [remote(onlyRemote)]);
    expect(plan).toEqual({ upload: [], inSync: [], skipped: [{ name: broken.name, reason: "no manifest x.json" }] });
  });
});

describe("mergeCatalogs", () => {
  it("unions by name, oldest first; the local copy wins unless only the remote one is usable", () => {
    const full = entry("full", 0);
    const diff = entry("differential", 24);
    const incrLocalBroken = entry("incremental", 25, 7, "no checksum file");
    const incrRemote = { ...entry("incremental", 25), path: "/remote" };
    const fullRemote = { ...full, path: "/remote" };
    const merged = mergeCatalogs([incrLocalBroken, full], [fullRemote, diff, incrRemote]);
    expect(merged.map((e) => [e.name, e.path])).toEqual([
      [full.name, full.path],
      [diff.name, diff.path],
      [incrRemote.name, "/remote"],
    ]);
  });
});
