import { describe, expect, it } from "vitest";
import { decideAutoRestore } from "../../../lib/restore/autoRestorePlan.js";
import type { CatalogEntry } from "../../../lib/store/catalog.js";
import type { Manifest } from "../../../lib/store/manifest.js";

/** A full; `tables`: whether its manifest lists a table (the cluster it came from had data); `untrusted`: a trusted scan found its sidecars do not verify. */
function entry(name: string, systemIdentifier: string, problem: string | null = null, tables = true, time = 0, untrusted = false): CatalogEntry {
  const manifest = { name, systemIdentifier, rowCounts: { app: tables ? { "public.t": 3 } : {} }, fingerprint: { databases: {} } } as unknown as Manifest;
  return { name, tier: "full", path: `/b/full/${name}`, time: new Date(time), parent: null, manifest: problem === null ? manifest : null, problem, bytes: 1, ...(untrusted ? { untrusted } : {}) };
}

const OLD = "7000000000000000001";
const NEW = "7000000000000000002";

describe("decideAutoRestore", () => {
  it.each([
    ["a cluster with a database holding objects", ["app"], NEW, [entry("f1", OLD)], "skip"],
    ["the cluster the backups come from, even when empty", [], OLD, [entry("f1", OLD)], "skip"],
    ["a new cluster and no backups at all", [], NEW, [], "liftGate"],
    ["a new cluster and only unusable backups", [], NEW, [entry("f1", OLD, "no manifest f1.json")], "fail"],
    ["a new cluster (POSTGRES_DB empty: no objects) with backups of another that had data", [], NEW, [entry("f1", OLD)], "restore"],
    ["a new cluster whose newest backup held no object either", [], NEW, [entry("f1", OLD, null, false)], "liftGate"],
    ["a cluster whose older backups are of it but the newest of another", [], NEW, [entry("f0", NEW), entry("f1", OLD)], "skip"],
    ["a new cluster whose newest backup's signature is missing", [], NEW, [entry("f0", OLD), entry("f1", OLD, "f1: signature f1.sha256.sig is missing", true, 1000, true)], "refuse"],
    ["a new cluster whose only backup's signature does not match", [], NEW, [entry("f1", OLD, "f1: signature f1.sha256.sig does not match", true, 0, true)], "refuse"],
    ["a new cluster with an unsigned backup older than a signed one", [], NEW, [entry("f0", OLD, "signature missing", true, 0, true), entry("f1", OLD, null, true, 1000)], "restore"],
  ] as const)("%s: %s", (_what, withObjects, sysid, catalog, action) => {
    expect(decideAutoRestore({ databasesWithObjects: withObjects, systemIdentifier: sysid, catalog }).action).toBe(action);
  });

  it("says why it skips", () => {
    const d = decideAutoRestore({ databasesWithObjects: ["a", "b", "c", "d", "e", "f"], systemIdentifier: NEW, catalog: [] });
    expect(d.reason).toBe('the cluster has user data ("a", "b", "c", "d", "e", …): it is not a wiped cluster');
  });
});
