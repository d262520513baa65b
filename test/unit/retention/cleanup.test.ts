import { describe, expect, it } from "vitest";
import type { PointerInput, PointerState } from "../../../lib/retention/cleanup.js";
import type { CleanupReport } from "../../../lib/retention/cleanup.js";
import { backupDirProblem, formatCleanupReport, isPartialName, orphanSidecars, parseNowOption, planPointers, withMirrorOnly } from "../../../lib/retention/cleanup.js";
import { ExitCode } from "../../../lib/core/errors.js";
import type { Codec } from "../../../lib/core/codec.js";
import type { Tier } from "../../../lib/store/naming.js";
import { CODECS } from "../../../lib/core/codec.js";
import { TIERS, backupName } from "../../../lib/store/naming.js";
import { planRetention } from "../../../lib/retention/plan.js";

describe("parseNowOption", () => {
  it("returns null when --now is absent", () => {
    expect(parseNowOption(undefined)).toBeNull();
  });

  it.each([
    ["2027-01-01", "2027-01-01T00:00:00.000Z"],
    ["2027-01-01T03:00Z", "2027-01-01T03:00:00.000Z"],
    ["2027-01-01T03:00:00+01:00", "2027-01-01T02:00:00.000Z"],
    ["2027-03-28T02:30:00-05:30", "2027-03-28T08:00:00.000Z"],
    ["2027-01-01t03:00:00.250z", "2027-01-01T03:00:00.250Z"],
    ["2028-02-29T12:00:00Z", "2028-02-29T12:00:00.000Z"],
    [" 2027-01-01 ", "2027-01-01T00:00:00.000Z"],
  ])("reads %j as %s", (raw, iso) => {
    expect(parseNowOption(raw)?.toISOString()).toBe(iso);
  });

  it.each([
    ["", "not an ISO date"],
    ["next month", "not an ISO date"],
    ["1735689600", "not an ISO date"],
    ["2027-01-01T03:00:00", "not an ISO date"],
    ["2027-01-01 03:00:00Z", "not an ISO date"],
    ["2027-02-29", "not a real calendar time"],
    ["2027-13-01", "not a real calendar time"],
    ["2027-01-01T24:00:00Z", "not a real calendar time"],
    ["2027-01-01T03:00:00+25:00", "cannot be read"],
  ])("refuses %j as a usage error naming --now", (raw, why) => {
    let caught: unknown;
    try {
      parseNowOption(raw);
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ exitCode: ExitCode.usage });
    expect((caught as Error).message).toMatch(/^--now /);
    expect((caught as Error).message).toContain(why);
    expect((caught as Error).message).toContain("needs Z or an offset");
  });
});

describe("backupDirProblem", () => {
  const of = (...tiers: Tier[]) => tiers.map((tier) => ({ tier }));

  it.each<[string, Tier[], number, RegExp | null]>([
    ["an empty folder", [], 0, null],
    ["only fulls", ["full", "full"], 0, null],
    ["a full with its differential and incrementals", ["full", "differential", "incremental"], 0, null],
    ["fulls with orphaned sidecars beside them", ["full"], 3, null],
    ["differentials and incrementals without any full", ["differential", "incremental", "incremental"], 0, /3 differential\/incremental backup\(s\) but no full/],
    ["a lone incremental", ["incremental"], 0, /no full backup at all/],
    ["sidecars without a single data file", [], 2, /2 \.json\/\.sha256 sidecar file\(s\) but no backup data file/],
  ])("%s", (_label, tiers, orphans, expected) => {
    const problem = backupDirProblem(of(...tiers), orphans);
    if (expected === null) expect(problem).toBeNull();
    else expect(problem).toMatch(expected);
  });
});

describe("orphanSidecars", () => {
  const data = "20261101_030000_full.sql.bz2";
  const other = "20261102_030000_incremental.sql.zst";

  it("finds sidecars whose data file is gone, with the data file's name stamp", () => {
    const names = [data, `${data}.json`, `${data}.sha256`, `${data}.sha256.sig`, `${other}.json`, `${other}.sha256`, `${other}.sha256.sig`, "latest_full.sql.bz2"];
    expect(orphanSidecars(names)).toEqual([
      { name: `${other}.json`, dataName: other, time: new Date("2026-11-02T03:00:00Z") },
      { name: `${other}.sha256`, dataName: other, time: new Date("2026-11-02T03:00:00Z") },
      { name: `${other}.sha256.sig`, dataName: other, time: new Date("2026-11-02T03:00:00Z") },
    ]);
  });

  it("leaves the sidecars of an in-flight or crashed backup (its .partial) to the partial rule", () => {
    expect(orphanSidecars([`${data}.partial`, `${data}.json`, `${data}.sha256`, `${data}.sha256.sig`])).toEqual([]);
  });

  it("ignores files that are not sidecars of a backup name", () => {
    expect(orphanSidecars(["notes.json", "backup.log", "latest_full.sql.bz2.txt", "x.sha256", "x.sha256.sig", `${data}.json.tmp-42`, `${data}.sha256.sig.tmp-42`])).toEqual([]);
  });

  it("recognises partials by suffix only", () => {
    expect(isPartialName(`${data}.partial`)).toBe(true);
    expect(isPartialName(data)).toBe(false);
  });
});

describe("planPointers", () => {
  const t = (iso: string) => new Date(iso);
  const b = (tier: Tier, iso: string, codec: Codec = "bzip2", valid = true, encrypted = false): PointerInput => ({ name: backupName(tier, t(iso), codec, encrypted), tier, time: t(iso), valid });
  const none = (): PointerState[] => TIERS.flatMap((tier) => CODECS.flatMap((codec) => [false, true].map((encrypted) => ({ tier, codec, encrypted, current: null }))));
  const withCurrent = (set: Partial<Record<string, string>>): PointerState[] =>
    none().map((s) => ({ ...s, current: set[`${s.tier}/${s.codec}${s.encrypted ? ".age" : ""}`] ?? null }));

  it("changes nothing when every pointer already names the newest valid backup", () => {
    const full = b("full", "2026-11-01T03:00:00Z");
    const incr = b("incremental", "2026-11-02T03:00:00Z");
    expect(planPointers([full, incr], withCurrent({ "full/bzip2": full.name, "incremental/bzip2": incr.name }))).toEqual([]);
  });

  it("moves a pointer off a deleted backup to the newest remaining one", () => {
    const older = b("incremental", "2026-11-02T03:00:00Z");
    const newer = b("incremental", "2026-11-03T03:00:00Z");
    const deleted = backupName("incremental", t("2026-11-04T03:00:00Z"), "bzip2");
    expect(planPointers([newer, older], withCurrent({ "incremental/bzip2": deleted }))).toEqual([
      { tier: "incremental", codec: "bzip2", encrypted: false, from: deleted, to: newer.name },
    ]);
  });

  it("removes a pointer when no valid backup of its tier remains, skipping invalid ones", () => {
    const invalid = b("differential", "2026-11-05T03:00:00Z", "bzip2", false);
    expect(planPointers([invalid], withCurrent({ "differential/bzip2": invalid.name }))).toEqual([
      { tier: "differential", codec: "bzip2", encrypted: false, from: invalid.name, to: null },
    ]);
  });

  it("creates a missing pointer, per codec, so latest_full.sql.bz2 never names a .zst file", () => {
    const bz = b("full", "2026-11-01T03:00:00Z", "bzip2");
    const zst = b("full", "2026-11-08T03:00:00Z", "zstd");
    expect(planPointers([bz, zst], withCurrent({ "full/bzip2": zst.name }))).toEqual([
      { tier: "full", codec: "bzip2", encrypted: false, from: zst.name, to: bz.name },
      { tier: "full", codec: "zstd", encrypted: false, from: null, to: zst.name },
    ]);
  });

  it("keeps encrypted backups on their own pointer, so latest_full.sql.bz2 never names an .age file", () => {
    const plain = b("full", "2026-11-01T03:00:00Z", "bzip2");
    const sealed = b("full", "2026-11-08T03:00:00Z", "bzip2", true, true);
    expect(sealed.name).toBe("20261108_030000_full.sql.bz2.age");
    expect(planPointers([plain, sealed], withCurrent({ "full/bzip2": sealed.name }))).toEqual([
      { tier: "full", codec: "bzip2", encrypted: false, from: sealed.name, to: plain.name },
      { tier: "full", codec: "bzip2", encrypted: true, from: null, to: sealed.name },
    ]);
  });
});

describe("withMirrorOnly", () => {
  const at = (iso: string) => new Date(iso);
  const entry = (tier: Tier, iso: string, parent: string | null = null, problem: string | null = null) => ({ name: backupName(tier, at(iso), "zstd"), tier, time: at(iso), parent, problem });

  it("adds the backups only S3 holds, oldest first; a name in both stays local even when only the remote copy is usable", () => {
    const full = entry("full", "2026-03-01T03:00:00Z");
    const diff = entry("differential", "2026-03-02T03:00:00Z", full.name);
    const brokenLocal = entry("incremental", "2026-03-03T03:00:00Z", diff.name, "checksum mismatch");
    const located = withMirrorOnly([brokenLocal], [full, diff, { ...brokenLocal, problem: null }]);
    expect(located.map((l) => [l.entry.name, l.location, l.entry.problem])).toEqual([
      [full.name, "s3", null],
      [diff.name, "s3", null],
      [brokenLocal.name, "local", "checksum mismatch"],
    ]);
    expect(withMirrorOnly([full], [])).toEqual([{ entry: full, location: "local" }]);
  });

  it("an S3-only parent of a kept local backup is kept in S3; an old S3-only differential nobody needs is deleted", () => {
    const full = entry("full", "2026-01-01T03:00:00Z");
    const oldDiff = entry("differential", "2026-01-02T03:00:00Z", full.name);
    const diff = entry("differential", "2026-03-20T03:00:00Z", full.name);
    const inc = entry("incremental", "2026-03-31T12:00:00Z", diff.name);
    const located = withMirrorOnly([full, inc], [oldDiff, diff]);
    const plan = planRetention(
      located.map(({ entry: e }) => ({ ...e, valid: e.problem === null })),
      { keepAllDays: 1, keepDifferentialDays: 2, minFull: 1 },
      at("2026-04-01T00:00:00Z"),
    );
    expect(plan.map((d) => [d.name, d.action, d.reason])).toEqual([
      [full.name, "keep", "full: fulls are kept indefinitely"],
      [oldDiff.name, "delete", "differential older than 2 days"],
      [diff.name, "keep", `needed by ${inc.name}`],
      [inc.name, "keep", "within 1 days"],
    ]);
  });
});

describe("formatCleanupReport", () => {
  const report = (decisions: CleanupReport["decisions"]): CleanupReport => ({
    now: "2026-04-01T00:00:00.000Z",
    dryRun: true,
    policy: { keepAllDays: 14, keepDifferentialDays: 42, minFull: 2, keepFullDays: null },
    decisions,
    freedBytes: 0,
    removedPartials: [],
    removedOrphans: [],
    pointers: [],
  });
  const d = { tier: "differential" as const, time: "2026-01-01T03:00:00.000Z", action: "delete" as const, reason: "differential older than 42 days", bytes: 2048 };

  it("shows a WHERE column and counts S3-only deletions only when the mirror holds backups BACKUP_DIR lacks", () => {
    const local = formatCleanupReport(report([{ ...d, name: "a" }]), "UTC", null);
    expect(local).not.toContain("WHERE");
    expect(local).toContain("keep 0, delete 1, 0 B would be freed");
    const mixed = formatCleanupReport(report([{ ...d, name: "a" }, { ...d, name: "b", location: "s3" }]), "UTC", null);
    expect(mixed).toMatch(/^ACTION\s+WHERE\s+TIER\s+TIME \(UTC\)\s+SIZE\s+NAME\s+REASON$/m);
    expect(mixed).toMatch(/^delete\s+local\s+differential\s.*\sa\s/m);
    expect(mixed).toMatch(/^delete\s+S3 only\s+differential\s.*\sb\s/m);
    expect(mixed).toContain("keep 0, delete 2 (1 only in S3), 0 B would be freed");
  });
});
