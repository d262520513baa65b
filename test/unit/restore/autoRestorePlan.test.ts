import { describe, expect, it } from "vitest";
import { decideAutoRestore } from "../../../lib/restore/autoRestorePlan.js";
import type { CatalogEntry } from "../../../lib/store/catalog.js";
import type { Manifest } from "../../../lib/store/manifest.js";

function entry(name: string, systemIdentifier: string, problem: string | null = null): CatalogEntry {
  const manifest = { name, systemIdentifier } as Manifest;
  return { name, tier: "full", path: `/b/full/${name}`, time: new Date(0), parent: null, manifest: problem === null ? manifest : null, problem, bytes: 1 };
}

const OLD = "7000000000000000001";
const NEW = "7000000000000000002";

describe("decideAutoRestore", () => {
  it.each([
    ["a cluster with user databases", ["app"], NEW, [entry("f1", OLD)], "skip"],
    ["the cluster the backups come from, even when empty", [], OLD, [entry("f1", OLD)], "skip"],
    ["a new cluster and no backups at all", [], NEW, [], "liftGate"],
    ["a new cluster and only unusable backups", [], NEW, [entry("f1", OLD, "no manifest f1.json")], "fail"],
    ["a new, empty cluster with backups of another", [], NEW, [entry("f1", OLD)], "restore"],
    ["a cluster whose older backups are of it but the newest of another", [], NEW, [entry("f0", NEW), entry("f1", OLD)], "skip"],
  ] as const)("%s: %s", (_what, users, sysid, catalog, action) => {
    expect(decideAutoRestore({ userDatabases: users, systemIdentifier: sysid, catalog }).action).toBe(action);
  });

  it("says why it skips", () => {
    const d = decideAutoRestore({ userDatabases: ["a", "b", "c", "d", "e", "f"], systemIdentifier: NEW, catalog: [] });
    expect(d.reason).toBe('the cluster has user databases ("a", "b", "c", "d", "e", …): it is not a wiped cluster');
  });
});
