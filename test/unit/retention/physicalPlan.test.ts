import { describe, expect, it } from "vitest";
import type { WalFile } from "../../../lib/physical/layout.js";
import { formatLsn, parseWalName, segmentName, segmentNumber } from "../../../lib/physical/layout.js";
import type { WalStart } from "../../../lib/retention/physicalPlan.js";
import { planBaseRetention, planWalRetention } from "../../../lib/retention/physicalPlan.js";

const SEG = 16 * 1024 * 1024;
const POLICY = { keepAllDays: 14, keepDifferentialDays: 42, minFull: 2 };
const DAY = 24 * 3600 * 1000;

const wal = (...names: string[]): WalFile[] => names.map((n) => parseWalName(n) as WalFile);
const seg = (tl: number, n: number, suffix = "") => segmentName(tl, BigInt(n), SEG) + suffix;
const start = (name: string, tl: number, n: number, size = SEG): WalStart => ({ name, timeline: tl, startLsn: formatLsn(BigInt(n) * BigInt(size) + 40n), walSegmentSize: size });

describe("planBaseRetention", () => {
  const now = new Date("2024-06-01T00:00:00Z");
  const at = (days: number) => new Date(now.getTime() - days * DAY);

  it("applies the fulls' policy with base-backup wording; RETENTION_MIN_FULL counts only good ones", () => {
    const d = planBaseRetention(
      [
        { name: "b100", time: at(100), problem: null },
        { name: "b90", time: at(90), problem: null },
        { name: "b80", time: at(80), problem: "no checksum file" },
        { name: "b3", time: at(3), problem: null },
      ],
      { ...POLICY, keepFullDays: 60 },
      now,
    );
    expect(d.map((x) => [x.name, x.action, x.reason])).toEqual([
      ["b100", "delete", "base backup older than 60 days"],
      ["b90", "keep", "one of the newest 2 valid base backups"],
      ["b80", "delete", "invalid: no checksum file; older than 14 days"],
      ["b3", "keep", "within 14 days"],
    ]);
  });

  it("keeps base backups indefinitely without RETENTION_KEEP_FULL_DAYS, like fulls", () => {
    expect(planBaseRetention([{ name: "old", time: at(400), problem: null }], POLICY, now)[0]?.reason).toBe("base backup: base backups are kept indefinitely");
  });
});

describe("planWalRetention", () => {
  it.each<[string, string[], WalStart[], string[], string | null]>([
    ["nothing kept: nothing deleted", [seg(1, 1), seg(1, 2)], [], [], null],
    ["deletes segments before the oldest kept start", [seg(1, 1), seg(1, 2), seg(1, 3), seg(1, 4)], [start("B", 1, 3)], [seg(1, 1), seg(1, 2)], seg(1, 3)],
    ["the start segment itself is kept, also compressed", [seg(1, 2, ".gz"), seg(1, 3, ".gz")], [start("B", 1, 3)], [seg(1, 2, ".gz")], seg(1, 3)],
    ["old .partial and .backup files go, newer ones stay", [seg(1, 1, ".partial"), `${seg(1, 2)}.00000028.backup`, `${seg(1, 3)}.00000028.backup`, seg(1, 9, ".lz4.partial")], [start("B", 1, 3)], [seg(1, 1, ".partial"), `${seg(1, 2)}.00000028.backup`], seg(1, 3)],
    ["the earliest start counts, not the first listed", [seg(1, 1), seg(1, 5)], [start("new", 1, 6), start("old", 1, 2)], [seg(1, 1)], seg(1, 2)],
    [
      "after a restore to the past a newer timeline starts lower: its start counts",
      [seg(1, 3), seg(1, 4), seg(1, 8), seg(2, 4), seg(2, 5), "00000002.history"],
      [start("tl1", 1, 8), start("tl2", 2, 4)],
      [seg(1, 3)],
      seg(2, 4),
    ],
    ["history files of timelines below every kept base go; the kept ones and later stay", ["00000001.history", "00000002.history", "00000003.history"], [start("B", 2, 3)], ["00000001.history"], seg(2, 3)],
    ["segments on any timeline at or past the start are kept", [seg(1, 7), seg(2, 7), seg(3, 2)], [start("B", 2, 5)], [seg(3, 2)], seg(2, 5)],
  ])("%s", (_what, names, kept, deleted, keepFrom) => {
    const plan = planWalRetention(wal(...names), kept);
    expect(plan.delete.map((d) => d.name)).toEqual(deleted);
    expect(plan.keepFrom).toBe(keepFrom);
  });

  it("deletes nothing when the kept base backups disagree on the segment size", () => {
    const plan = planWalRetention(wal(seg(1, 1)), [start("a", 1, 3), start("b", 1, 3, 1 << 20)]);
    expect(plan.delete).toEqual([]);
    expect(plan.reason).toContain("disagree on wal_segment_size");
  });

  it("names the base backup that sets the limit in each reason", () => {
    expect(planWalRetention(wal(seg(1, 1)), [start("20240106_020000_base.tar.zst", 1, 3)]).delete[0]?.reason).toBe(
      `segment before ${seg(1, 3)}, where the oldest kept base backup 20240106_020000_base.tar.zst starts`,
    );
  });
});

/** Deterministic pseudo-random numbers (mulberry32), so a failure reproduces. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("a simulated year: weekly base backups, continuous WAL, a daily cleanup", () => {
  const PER_DAY = 8;
  const SWITCH_DAY = 200;

  it.each([
    [1, 60],
    [2, 60],
    [3, 21],
    [4, Infinity],
  ])("seed %i, RETENTION_KEEP_FULL_DAYS=%s: every kept good base backup keeps every segment from its start on", (seed, keepFullDays) => {
    const random = rng(seed);
    const t0 = Date.UTC(2024, 0, 1);
    const files = new Set<string>();
    const bases: { name: string; time: Date; problem: string | null; tl: number; seg: number }[] = [];
    let tl = 1;
    let next = 0;
    const switchSeg = SWITCH_DAY * PER_DAY;
    let maxFiles = 0;
    for (let day = 0; day < 365; day++) {
      const dayStart = t0 + day * DAY;
      for (let h = 0; h < PER_DAY; h++) {
        if (day === SWITCH_DAY && h === 0) {
          // A failover: timeline 2 begins in the segment where timeline 1 ended.
          tl = 2;
          files.add("00000002.history");
          files.add(seg(2, next - 1));
        }
        files.add(seg(tl, next++));
      }
      if (day % 7 === 5 && random() > 0.1) {
        const name = `base-${day}`;
        const startSeg = next - 3 + Math.floor(random() * 3);
        bases.push({ name, time: new Date(dayStart + 2 * 3600 * 1000), problem: random() < 0.15 ? "checksum mismatch" : null, tl: startSeg >= switchSeg - 1 && tl === 2 ? 2 : tl, seg: startSeg });
        files.add(`${seg(tl, startSeg)}.00000028.backup`);
      }
      const now = new Date(dayStart + 23 * 3600 * 1000);
      const decisions = planBaseRetention(bases, { ...POLICY, keepFullDays }, now);
      const keep = new Set(decisions.filter((d) => d.action === "keep").map((d) => d.name));
      for (let i = bases.length - 1; i >= 0; i--) if (!keep.has(bases[i]?.name ?? "")) bases.splice(i, 1);
      const good = bases.filter((b) => b.problem === null);
      // Never fewer than two good base backups once two were taken (RETENTION_MIN_FULL).
      const plan = planWalRetention(wal(...files), good.map((b) => start(b.name, b.tl, b.seg)));
      for (const d of plan.delete) {
        const f = parseWalName(d.name);
        const n = f?.kind === "segment" ? Number(segmentNumber(f.segment, SEG)) : -1;
        for (const b of good) {
          const onPath = n >= b.seg && (f?.timeline === 2 || (b.tl === 1 && n < switchSeg));
          if (onPath || (f?.kind === "history" && f.timeline >= b.tl)) throw new Error(`day ${day}: ${d.name} deleted although ${b.name} (timeline ${b.tl}, start ${b.seg}) needs it`);
        }
        files.delete(d.name);
      }
      maxFiles = Math.max(maxFiles, files.size);
      // Every deletion is checked above; the whole path weekly too, which would also catch a file never written.
      if (day % 7 === 6 || day === 364) {
        for (const b of good) {
          for (let n = b.seg; n < next; n++) {
            const onPath = n < switchSeg - 1 || (n === switchSeg - 1 && b.tl === 1) ? seg(1, n) : seg(2, n);
            if (!files.has(onPath)) throw new Error(`day ${day}: ${b.name} (timeline ${b.tl}, start ${b.seg}) lost ${onPath}`);
          }
          if (b.tl === 2 && !files.has("00000002.history")) throw new Error(`day ${day}: the history of timeline 2 was deleted`);
        }
      }
    }
    if (Number.isFinite(keepFullDays)) expect(maxFiles).toBeLessThan((keepFullDays + 30) * PER_DAY);
    else expect(files.size).toBeGreaterThan(360 * PER_DAY);
  });
});
