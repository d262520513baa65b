import { describe, expect, it } from "vitest";
import { parseLsn, parseWalName } from "../../../lib/physical/layout.js";
import type { SegmentFile } from "../../../lib/wal/archive.js";
import { checkWalContinuity } from "../../../lib/wal/continuity.js";
import type { WalContinuity } from "../../../lib/wal/continuity.js";
import { parseTimelineHistory } from "../../../lib/wal/timelineHistory.js";
import type { TimelineHistory } from "../../../lib/wal/timelineHistory.js";

const MiB16 = 16 * 1024 * 1024;

function segs(...names: string[]): SegmentFile[] {
  return names.map((n) => {
    const f = parseWalName(n);
    if (f?.kind !== "segment") throw new Error(`not a segment: ${n}`);
    return f;
  });
}

function lsn(text: string): bigint {
  const v = parseLsn(text);
  if (v === null) throw new Error(text);
  return v;
}

const H2 = new Map<number, TimelineHistory>([[2, parseTimelineHistory("1\t0/5000A28\tno recovery target specified\n")]]);
const H3 = new Map<number, TimelineHistory>([
  [2, parseTimelineHistory("1\t0/5000A28\tno recovery target specified\n")],
  [3, parseTimelineHistory("1\t0/5000A28\tno recovery target specified\n\n2\t0/7000000\tbefore 2026-11-29 19:00:00+00\n")],
]);
// Timeline 4 branched from 3, which branched from 1: timeline 2 is a sibling, not an ancestor.
const H4 = new Map<number, TimelineHistory>([[4, parseTimelineHistory("1\t0/5000A28\tx\n3\t0/7000000\ty\n")]]);
const NONE = new Map<number, TimelineHistory>();

function check(names: string[], start: string, tli = 1, histories: ReadonlyMap<number, TimelineHistory> = NONE, size = MiB16): WalContinuity {
  return checkWalContinuity(segs(...names), histories, { timeline: tli, lsn: lsn(start) }, size);
}

describe("checkWalContinuity", () => {
  it.each<[string, string[], string, number, ReadonlyMap<number, TimelineHistory>, Partial<WalContinuity>]>([
    ["one timeline, complete", ["000000010000000000000002", "000000010000000000000003", "000000010000000000000004"], "0/2000028", 1, NONE,
      { ok: true, from: "000000010000000000000002", to: "000000010000000000000004", segments: 3, endsPartial: false }],
    ["segments before the start do not matter", ["000000010000000000000001", "000000010000000000000003"], "0/3000028", 1, NONE,
      { ok: true, segments: 1 }],
    ["newest as .partial", ["000000010000000000000002", "000000010000000000000003.partial"], "0/2000028", 1, NONE,
      { ok: true, to: "000000010000000000000003", endsPartial: true }],
    ["compressed names", ["000000010000000000000002.gz", "000000010000000000000003.lz4", "000000010000000000000004.gz.partial"], "0/2000028", 1, NONE,
      { ok: true, segments: 3, endsPartial: true }],
    ["a hole names the first missing", ["000000010000000000000002", "000000010000000000000005", "000000010000000000000006"], "0/2000028", 1, NONE,
      { ok: false, problem: "missing-segment", firstMissing: "000000010000000000000003" }],
    ["a .partial in the middle is a hole", ["000000010000000000000002", "000000010000000000000003.partial", "000000010000000000000004"], "0/2000028", 1, NONE,
      { ok: false, problem: "missing-segment", firstMissing: "000000010000000000000003" }],
    ["the start segment itself missing", ["000000010000000000000003"], "0/2000028", 1, NONE,
      { ok: false, firstMissing: "000000010000000000000002" }],
    ["WAL that ends before the start", ["000000010000000000000001"], "0/2000028", 1, NONE,
      { ok: false, problem: "missing-segment", firstMissing: "000000010000000000000002" }],
    ["empty archive", [], "0/2000028", 1, NONE, { ok: false, problem: "no-wal" }],
    ["log boundary (…000000FF → …0001 00000000)", ["0000000100000000000000FE", "0000000100000000000000FF", "000000010000000100000000"], "0/FE000000", 1, NONE,
      { ok: true, segments: 3, to: "000000010000000100000000" }],
    ["timeline switch: switch segment read on the child", ["000000010000000000000004", "000000010000000000000005.partial", "000000020000000000000005", "000000020000000000000006.partial"], "0/4000028", 1, H2,
      { ok: true, from: "000000010000000000000004", to: "000000020000000000000006", segments: 3, endsPartial: true }],
    ["timeline switch: the child's first segment missing", ["000000010000000000000004", "000000010000000000000005", "000000020000000000000006"], "0/4000028", 1, H2,
      { ok: false, problem: "missing-segment", firstMissing: "000000020000000000000005" }],
    ["timeline switch: history missing", ["000000010000000000000004", "000000020000000000000005"], "0/4000028", 1, NONE,
      { ok: false, problem: "missing-history", firstMissing: "00000002.history" }],
    ["two switches", ["000000010000000000000004", "000000020000000000000005", "000000020000000000000006", "000000030000000000000007", "000000030000000000000008"], "0/4000028", 1, H3,
      { ok: true, segments: 5, to: "000000030000000000000008" }],
    ["start on the middle timeline", ["000000020000000000000006", "000000030000000000000007"], "0/6000028", 2, H3,
      { ok: true, segments: 2 }],
    ["start after the branch point is a foreign timeline", ["000000010000000000000006", "000000020000000000000006"], "0/6000028", 1, H2,
      { ok: false, problem: "foreign-timeline" }],
    ["start on a timeline that is not an ancestor", ["000000020000000000000006", "000000040000000000000007"], "0/6000028", 2, H4,
      { ok: false, problem: "foreign-timeline" }],
  ])("%s", (_label, names, start, tli, histories, expected) => {
    expect(check(names, start, tli, histories)).toMatchObject(expected);
  });

  it("counts segments with a 1 MiB segment size (initdb --wal-segsize=1)", () => {
    const size = 1024 * 1024;
    // 256 segments per log file of 4 GiB at 16 MiB; 4096 at 1 MiB.
    expect(check(["000000010000000000000FFF", "000000010000000100000000"], "0/FFF00028", 1, NONE, size)).toMatchObject({ ok: true, segments: 2 });
  });

  it("names the file and the fix in the message", () => {
    const r = check(["000000010000000000000002", "000000010000000000000004"], "0/2000028");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(/000000010000000000000003 is missing from wal\/.*take a new base backup/);
  });
});

describe("parseTimelineHistory", () => {
  it("reads the file PostgreSQL writes, skipping comments and blank lines", () => {
    expect(parseTimelineHistory("# comment\n1\t0/5000A28\tno recovery target specified\n\n2\t1/7000000\tat restore point\n")).toEqual([
      { parentTimeline: 1, switchLsn: 0x5000a28n, reason: "no recovery target specified" },
      { parentTimeline: 2, switchLsn: 0x107000000n, reason: "at restore point" },
    ]);
  });
  it.each(["1\tnot-an-lsn\tx", "x\t0/1\t", "2\t0/5\tx\n1\t0/6\ty"])("refuses %j", (text) => {
    expect(() => parseTimelineHistory(text)).toThrow(/line/);
  });
});
