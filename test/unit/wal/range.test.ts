import { describe, expect, it } from "vitest";
import { parseWalName } from "../../../lib/physical/layout.js";
import type { SegmentFile, WalEntry } from "../../../lib/wal/archive.js";
import { walRange } from "../../../lib/wal/range.js";
import { resolveWalFile } from "../../../lib/wal/resolveFile.js";

const T0 = Date.parse("2026-11-29T10:00:00Z");

function entry(name: string, minutes: number): WalEntry {
  const file = parseWalName(name);
  if (file === null) throw new Error(name);
  return { file, path: `/b/wal/${name}`, size: 1, mtime: new Date(T0 + minutes * 60_000) };
}

const seg = (name: string, minutes: number) => entry(name, minutes) as WalEntry<SegmentFile>;

describe("walRange", () => {
  it("is null without segments", () => {
    expect(walRange({ segments: [] })).toBeNull();
  });
  it("spans the oldest segment to the newest partial on the newest timeline", () => {
    const r = walRange({
      segments: [
        seg("000000010000000000000003", 1),
        seg("000000010000000000000004.gz", 2),
        seg("000000010000000000000005.partial", 3),
        seg("000000020000000000000005", 4),
        seg("000000020000000000000006.gz.partial", 9),
      ],
    });
    expect(r?.oldest.file.name).toBe("000000010000000000000003");
    expect(r?.newest.file.name).toBe("000000020000000000000006.gz.partial");
    expect(r?.oldestTime.toISOString()).toBe("2026-11-29T10:01:00.000Z");
    expect(r?.newestTime.toISOString()).toBe("2026-11-29T10:09:00.000Z");
  });
  it("takes the later mtime when a segment exists both complete and partial", () => {
    const r = walRange({ segments: [seg("000000010000000000000003", 5), seg("000000010000000000000003.partial", 2)] });
    expect(r?.newestTime.toISOString()).toBe("2026-11-29T10:05:00.000Z");
  });
});

describe("resolveWalFile", () => {
  const entries = [
    entry("000000010000000000000003.partial", 1),
    entry("000000010000000000000003.gz", 1),
    entry("000000010000000000000004.lz4", 1),
    entry("000000010000000000000004", 1),
    entry("000000010000000000000005.gz.partial", 1),
    entry("00000002.history", 1),
    entry("00000003.history.gz", 1),
    entry("000000010000000000000002.00000028.backup", 1),
    entry("000000010000000000000007.gz.age", 1),
    entry("000000010000000000000007.gz.partial", 1),
    entry("000000010000000000000008.gz.partial.age", 1),
    entry("000000010000000000000009.gz.age", 1),
    entry("000000010000000000000009.gz", 1),
    entry("00000005.history.gz.age", 1),
  ];
  it.each([
    ["000000010000000000000003", "000000010000000000000003.gz"],
    ["000000010000000000000004", "000000010000000000000004"],
    ["000000010000000000000005", "000000010000000000000005.gz.partial"],
    ["00000002.history", "00000002.history"],
    ["000000010000000000000006", null],
    ["00000003.history", "00000003.history.gz"],
    ["00000004.history", null],
    ["000000010000000000000007", "000000010000000000000007.gz.age"],
    ["000000010000000000000008", "000000010000000000000008.gz.partial.age"],
    ["000000010000000000000009", "000000010000000000000009.gz"],
    ["00000005.history", "00000005.history.gz.age"],
    ["000000010000000000000002.00000028.backup", null],
  ])("%s → %s", (wanted, got) => {
    expect(resolveWalFile(entries, wanted)?.file.name ?? null).toBe(got);
  });
});
