import { describe, expect, it } from "vitest";
import type { BackupFacts } from "../../../lib/postgres/wipedCluster.js";
import { backupHadData, judgeCluster, wipedClusterRefusal } from "../../../lib/postgres/wipedCluster.js";

describe("backupHadData", () => {
  it.each([
    ["recorded user objects in one database", { fingerprint: { databases: { a: { userObjects: 0 }, b: { userObjects: 4 } } }, rowCounts: {} }, true],
    ["recorded, none anywhere (an empty POSTGRES_DB)", { fingerprint: { databases: { postgres: { userObjects: 0 }, app: { userObjects: 0 } } }, rowCounts: {} }, false],
    ["no record, a table in the row counts", { fingerprint: { databases: { a: {} } }, rowCounts: { a: { "public.t": 0 } } }, true],
    ["no record, no table", { fingerprint: { databases: { a: {} } }, rowCounts: { a: {}, postgres: {} } }, false],
    ["no record, encrypted (row counts sealed)", { fingerprint: { databases: { a: {} } }, rowCounts: {}, encryption: {} }, true],
    ["nothing known", {}, true],
  ])("%s", (_what, manifest, had) => {
    expect(backupHadData(manifest)).toBe(had);
  });
});

describe("judgeCluster and the backup guard's refusal (logical and base backups alike)", () => {
  const b = (name: string, systemIdentifier: string | null, hadData = true): BackupFacts => ({ name, systemIdentifier, hadData });
  const cluster = { systemIdentifier: "7", databasesWithObjects: [] as string[] };
  it.each<[string, BackupFacts[], Partial<typeof cluster>, string]>([
    ["no backups yet", [], {}, "new"],
    ["the newest backup is of this cluster", [b("b", "7")], {}, "known"],
    ["an older backup is of this cluster", [b("n", "1"), b("o", "7")], {}, "known"],
    ["another cluster's newest backup, fresh cluster", [b("b", "1")], {}, "wiped"],
    ["a newest backup of unknown origin, fresh cluster", [b("b", null)], {}, "wiped"],
    ["another cluster's newest backup that held nothing", [b("b", "1", false)], {}, "new"],
    ["another cluster's, but a database here holds objects", [b("b", "1")], { databasesWithObjects: ["app"] }, "live"],
  ])("%s: %s", (_what, backups, over, kind) => {
    const v = judgeCluster({ ...cluster, ...over }, backups, backups[0]);
    expect(v.kind).toBe(kind);
    const r = wipedClusterRefusal(v, { systemIdentifier: "7", allowNewCluster: false });
    expect(r !== null).toBe(kind === "wiped");
    if (r !== null) expect(r).toContain("Run `pg-swarm-backup auto-restore` to restore it, or pass --allow-new-cluster");
    expect(wipedClusterRefusal(v, { systemIdentifier: "7", allowNewCluster: true })).toBeNull();
  });
});
