import { describe, expect, it } from "vitest";
import type { CatalogEntry } from "../../../lib/store/catalog.js";
import { planBackup } from "../../../lib/backup/plan.js";
import type { BackupPlanInput } from "../../../lib/backup/plan.js";
import { detectChanges } from "../../../lib/backup/fingerprint.js";
import type { Fingerprint, Manifest } from "../../../lib/store/manifest.js";
import type { Tier } from "../../../lib/store/naming.js";

const fp = (dbs: Record<string, [number, string]>, globals = "g1", statsEpoch = "e1"): Fingerprint => ({
  globals,
  statsEpoch,
  databases: Object.fromEntries(Object.entries(dbs).map(([n, [oid, hash]]) => [n, { oid, hash }])),
});

const BASE = fp({ template1: [1, "t"], postgres: [5, "p"], app: [16384, "a"], crm: [16385, "c"] });

function entry(name: string, tier: Tier, time: string, fingerprint: Fingerprint, sysid = "111", parent: string | null = null): CatalogEntry {
  const manifest = { name, tier, parent, startedAt: time, systemIdentifier: sysid, fingerprint, databases: Object.keys(fingerprint.databases), included: [] } as unknown as Manifest;
  return { name, tier, path: `/b/${tier}/${name}`, time: new Date(time), parent, manifest, problem: null, bytes: 1 };
}

const FULL = entry("20261122_020000_full.sql.bz2", "full", "2026-11-22T02:00:00Z", BASE);
const input = (over: Partial<BackupPlanInput>): BackupPlanInput => ({
  requested: "incremental",
  catalog: [FULL],
  systemIdentifier: "111",
  fingerprint: BASE,
  databasesWithObjects: ["app", "crm"],
  force: false,
  allowNewCluster: false,
  ...over,
});

describe("detectChanges", () => {
  it.each([
    ["nothing", BASE, [], false],
    ["a written database", fp({ template1: [1, "t"], postgres: [5, "p"], app: [16384, "A"], crm: [16385, "c"] }), ["app:written"], false],
    ["a new database", fp({ ...{ template1: [1, "t"], postgres: [5, "p"], app: [16384, "a"], crm: [16385, "c"] }, new: [16390, "n"] }), ["new:new database"], false],
    ["a recreated database", fp({ template1: [1, "t"], postgres: [5, "p"], app: [16400, "a"], crm: [16385, "c"] }), ["app:recreated (new oid)"], false],
    ["roles only", fp({ template1: [1, "t"], postgres: [5, "p"], app: [16384, "a"], crm: [16385, "c"] }, "g2"), [], true],
    ["a crash (stats epoch moved)", fp({ template1: [1, "t"], postgres: [5, "p"], app: [16384, "a"], crm: [16385, "c"] }, "g1", "e2"), ["template1", "postgres", "app", "crm"].map((n) => `${n}:statistics lost (crash restart or reset)`), false],
  ] as const)("%s", (_label, current, changed, globals) => {
    const r = detectChanges(BASE, current);
    expect(r.changed.map((c) => `${c.name}:${c.reason}`)).toEqual(changed);
    expect(r.globalsChanged).toBe(globals);
  });

  it("reports dropped databases", () => {
    const r = detectChanges(BASE, fp({ template1: [1, "t"], postgres: [5, "p"], app: [16384, "a"] }));
    expect(r.dropped).toEqual(["crm"]);
    expect(r.changed).toEqual([]);
  });
});

describe("planBackup", () => {
  it("skips when nothing changed since the reference", () => {
    expect(planBackup(input({}))).toMatchObject({ action: "skip", reference: FULL.name });
  });

  it("--force backs up every database anyway", () => {
    const p = planBackup(input({ force: true }));
    expect(p.action === "backup" && p.databases.map((d) => d.name)).toEqual(["template1", "postgres", "app", "crm"]);
  });

  it("an incremental holds only what changed since the newest backup of any tier", () => {
    const changedApp = fp({ template1: [1, "t"], postgres: [5, "p"], app: [16384, "A2"], crm: [16385, "c"] });
    const incr = entry("20261122_030000_incremental.sql.bz2", "incremental", "2026-11-22T03:00:00Z", fp({ template1: [1, "t"], postgres: [5, "p"], app: [16384, "A1"], crm: [16385, "c"] }), "111", FULL.name);
    const p = planBackup(input({ catalog: [FULL, incr], fingerprint: changedApp }));
    expect(p).toMatchObject({ action: "backup", tier: "incremental", parent: incr.name, reference: incr.name });
    expect(p.action === "backup" && p.databases).toEqual([{ name: "app", reason: "written" }]);
  });

  it("a differential compares with the newest full, not with incrementals", () => {
    const changedApp = fp({ template1: [1, "t"], postgres: [5, "p"], app: [16384, "A2"], crm: [16385, "c"] });
    const incr = entry("20261122_030000_incremental.sql.bz2", "incremental", "2026-11-22T03:00:00Z", changedApp, "111", FULL.name);
    const p = planBackup(input({ requested: "differential", catalog: [FULL, incr], fingerprint: changedApp }));
    expect(p).toMatchObject({ action: "backup", tier: "differential", parent: FULL.name });
  });

  it.each(["differential", "incremental"] as const)("a %s without a full falls back to a full and says so", (tier) => {
    const p = planBackup(input({ requested: tier, catalog: [] }));
    expect(p).toMatchObject({ action: "backup", tier: "full", parent: null });
    expect(p.action === "backup" && p.notes.join()).toMatch(/no valid full backup of this cluster exists/);
  });

  it("refuses an empty cluster whose system_identifier is not the newest backup's", () => {
    const p = planBackup(input({ systemIdentifier: "999", databasesWithObjects: [] }));
    expect(p.action).toBe("refuse");
    expect(p.action === "refuse" && p.reason).toMatch(/wiped data volume.*auto-restore.*--allow-new-cluster/s);
  });

  it("refuses a new cluster whose only database beside the templates is empty (the postgres image's POSTGRES_DB)", () => {
    const fresh = fp({ template1: [1, "t"], postgres: [5, "p"], app: [16384, "a"] });
    const p = planBackup(input({ systemIdentifier: "999", fingerprint: fresh, databasesWithObjects: [] }));
    expect(p.action === "refuse" && p.reason).toMatch(/POSTGRES_DB does not count/);
  });

  it("backs up a new empty cluster when the newest backup held no user object either (nothing to lose)", () => {
    const empty = entry("20261122_020000_full.sql.bz2", "full", "2026-11-22T02:00:00Z", fp({ template1: [1, "t"], postgres: [5, "p"] }));
    (empty.manifest as unknown as { rowCounts: object }).rowCounts = { template1: {}, postgres: {} };
    const p = planBackup(input({ systemIdentifier: "999", catalog: [empty], databasesWithObjects: [] }));
    expect(p).toMatchObject({ action: "backup", tier: "full" });
  });

  it("starts a new chain with a full on a non-empty new cluster, or an empty one with --allow-new-cluster", () => {
    for (const over of [{ databasesWithObjects: ["app"] }, { databasesWithObjects: [], allowNewCluster: true }]) {
      const p = planBackup(input({ systemIdentifier: "999", ...over }));
      expect(p).toMatchObject({ action: "backup", tier: "full", parent: null });
    }
  });

  describe("with a signing key, only backups signed with it are references and parents", () => {
    const same = fp({ template1: [1, "t"], postgres: [5, "p"], app: [16384, "A1"], crm: [16385, "c"] });
    const forged = entry("20261122_030000_incremental.sql.bz2", "incremental", "2026-11-22T03:00:00Z", same, "111", FULL.name);

    it("an unsigned newest backup whose fingerprint matches cannot make the run skip, nor become the parent", () => {
      expect(planBackup(input({ catalog: [FULL, forged], fingerprint: same }))).toMatchObject({ action: "skip", reference: forged.name });
      const p = planBackup(input({ catalog: [FULL, forged], fingerprint: same, signed: new Set([FULL.name]) }));
      expect(p).toMatchObject({ action: "backup", tier: "incremental", parent: FULL.name, reference: FULL.name });
    });

    it.each(["differential", "incremental"] as const)("a %s when no full is signed yet (signing just switched on) is a full", (tier) => {
      const p = planBackup(input({ requested: tier, catalog: [FULL, forged], signed: new Set() }));
      expect(p).toMatchObject({ action: "backup", tier: "full", parent: null });
      expect(p.action === "backup" && p.notes.join()).toMatch(/no valid full backup of this cluster signed with BACKUP_SIGNING_KEY_FILE's key exists/);
    });

    it("still refuses a wiped cluster by the newest backup of any signature (the check that protects the unsigned history)", () => {
      expect(planBackup(input({ systemIdentifier: "999", databasesWithObjects: [], signed: new Set() })).action).toBe("refuse");
    });
  });

  it("refuses a database name with a line break (pg_dump cannot dump it)", () => {
    const p = planBackup(input({ fingerprint: fp({ "a\nb": [1, "x"] }), force: true }));
    expect(p.action).toBe("refuse");
  });
});
