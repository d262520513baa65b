import { describe, expect, it } from "vitest";
import { backupName, latestPointerName, parseBackupName, utcStamp } from "../../../lib/store/naming.js";

describe("backup names", () => {
  it.each([
    ["2023-12-15T03:00:00Z", "full", "bzip2", "20231215_030000_full.sql.bz2"],
    ["2026-03-29T01:30:00+01:00", "incremental", "zstd", "20260329_003000_incremental.sql.zst"],
    ["2026-10-25T02:30:00+02:00", "differential", "gzip", "20261025_003000_differential.sql.gz"],
    ["2026-10-25T02:30:00+01:00", "differential", "none", "20261025_013000_differential.sql"],
  ] as const)("%s %s %s -> %s (UTC, so the two 02:30 of a DST change differ)", (iso, tier, codec, name) => {
    expect(backupName(tier, new Date(iso), codec)).toBe(name);
    const parsed = parseBackupName(name);
    expect(parsed?.tier).toBe(tier);
    expect(parsed?.codec).toBe(codec);
    expect(parsed?.time.toISOString()).toBe(new Date(iso).toISOString().replace(/\.\d+Z$/, ".000Z"));
  });

  it("sorts in time order as plain strings", () => {
    const times = ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "2026-02-01T10:00:00Z", "2027-01-01T00:00:00Z"].map((t) => new Date(t));
    const names = times.map((t) => backupName("full", t, "bzip2"));
    expect([...names].reverse().sort()).toEqual(names);
    expect(utcStamp(times[0] as Date)).toBe("20260101_000000");
  });

  it.each([
    "20231215_030000_full.sql.bz2.partial",
    "20231215_030000_full.sql.bz2.sha256",
    "20231215_030000_weekly.sql.bz2",
    "20231315_030000_full.sql.bz2",
    "latest_full.sql.bz2",
    "20231215_030000_full.sql.xz",
    "20231215_030000_full.sql.bz2.age.sha256",
    "20231215_030000_full.sql.age.bz2",
  ])("ignores %s", (name) => {
    expect(parseBackupName(name)).toBeNull();
  });

  it("names the latest pointer per tier and codec", () => {
    expect(latestPointerName("full", "bzip2")).toBe("latest_full.sql.bz2");
    expect(latestPointerName("incremental", "zstd")).toBe("latest_incremental.sql.zst");
    expect(latestPointerName("full", "bzip2", true)).toBe("latest_full.sql.bz2.age");
  });

  it.each([
    ["bzip2", "20231215_030000_full.sql.bz2.age"],
    ["none", "20231215_030000_full.sql.age"],
  ] as const)("an encrypted %s backup is named %s, the codec's extension then .age", (codec, name) => {
    expect(backupName("full", new Date("2023-12-15T03:00:00Z"), codec, true)).toBe(name);
    expect(parseBackupName(name)).toMatchObject({ codec, encrypted: true, tier: "full" });
    expect(parseBackupName(name.slice(0, -4))).toMatchObject({ codec, encrypted: false });
  });
});
