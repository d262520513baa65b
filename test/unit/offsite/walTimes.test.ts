// Which WAL objects' times restore-pitr --source s3 asks the bucket for (lib/offsite/walTimes.ts):
// LastModified is an upper bound of a file's time; a HEAD gives the exact one.
import { describe, expect, it } from "vitest";
import type { TimedSegment } from "../../../lib/offsite/walTimes.js";
import { timeOf, timesToAsk } from "../../../lib/offsite/walTimes.js";

const T = (s: number) => new Date(Date.UTC(2026, 2, 1, 12, 0, 0) + s * 1000);

function seg(n: number, upper: number, opts: { tl?: number; exact?: number; onPath?: boolean } = {}): TimedSegment {
  return { key: `k${opts.tl ?? 1}-${n}`, timeline: opts.tl ?? 1, n: BigInt(n), upper: T(upper), exact: opts.exact === undefined ? null : T(opts.exact), onPath: opts.onPath ?? true };
}

/** Answers every question with `truth` (the file's real time, by key) until nothing is asked; returns the keys asked, in order. */
function settle(segments: TimedSegment[], target: Date | null, truth: Record<string, number>): string[] {
  const asked: string[] = [];
  for (let keys = timesToAsk(segments, target); keys.length > 0; keys = timesToAsk(segments, target)) {
    for (const k of keys) {
      const s = segments.find((x) => x.key === k) as TimedSegment;
      s.exact = T(Math.min(truth[k] ?? 0, (s.upper.getTime() - T(0).getTime()) / 1000));
      asked.push(k);
    }
  }
  return asked;
}

describe("timesToAsk", () => {
  it("without a target: one HEAD, of the newest segment by position; no other is taken as newer, however late it was uploaded", () => {
    const s = [seg(1, 10), seg(2, 103), seg(3, 30), seg(4, 41)];
    expect(settle(s, null, { "k1-2": 20, "k1-4": 40 })).toEqual(["k1-4"]);
    expect(s.map((x) => timeOf(x, s))).toEqual([T(10), T(40), T(30), T(40)]);
    const caughtUp = [seg(1, 100), seg(2, 101), seg(3, 102), seg(4, 103), { ...seg(4, 104), key: "p", partial: true }];
    expect(settle(caughtUp, null, { p: 45 })).toEqual(["p"]);
    expect(Math.max(...caughtUp.map((x) => timeOf(x, caughtUp).getTime()))).toBe(T(45).getTime());
  });

  it("with a target: segments uploaded before it are never asked; the first uploaded at or after it is", () => {
    const s = [seg(1, 10), seg(2, 20), seg(3, 30), seg(4, 40)];
    expect(settle(s, T(25), { "k1-3": 29, "k1-4": 39 })).toEqual(["k1-3", "k1-4"]);
  });

  it("with a target: a run of segments uploaded late is asked in order until one was written at or after the target", () => {
    const s = [seg(1, 10), seg(2, 100), seg(3, 100), seg(4, 100), seg(5, 100), seg(6, 101)];
    const asked = settle(s, T(35), { "k1-2": 20, "k1-3": 30, "k1-4": 40, "k1-5": 50, "k1-6": 60 });
    expect(asked.slice(0, 5)).toEqual(["k1-2", "k1-3", "k1-4", "k1-5", "k1-6"]);
    const covering = s.filter((x) => x.onPath).find((x) => timeOf(x, s) >= T(35));
    expect(covering?.key).toBe("k1-4");
  });

  it("with a target: every file at the covering position is settled (two timelines at one position); off the path only the newest segment", () => {
    const s = [seg(1, 10, { onPath: false }), seg(2, 50, { onPath: false }), seg(3, 30), seg(3, 31, { tl: 2 }), seg(4, 45, { tl: 2 })];
    const asked = settle(s, T(25), { "k1-2": 12, "k1-3": 29, "k2-3": 31, "k2-4": 44 });
    expect(asked).toContain("k1-3");
    expect(asked).toContain("k2-3");
    expect(asked).toContain("k2-4");
    expect(asked).not.toContain("k1-1");
    expect(asked).not.toContain("k1-2");
  });

  it("asks nothing when every exact time is known, and never more than a batch at once", () => {
    expect(timesToAsk([seg(1, 10, { exact: 9 }), seg(2, 20, { exact: 19 })], T(15))).toEqual([]);
    const many = Array.from({ length: 30 }, (_, i) => seg(i, 100));
    expect(timesToAsk(many, T(50)).length).toBeLessThanOrEqual(9);
  });
});

describe("historiesToFetch", () => {
  it("only the history files of the base backup's timeline and later ones, never their signatures or segments", async () => {
    const { historiesToFetch } = await import("../../../lib/offsite/pitrSource.js");
    const names = ["00000002.history.gz", "00000002.history.gz.sig", "00000003.history.gz.age", "00000004.history", "000000030000000000000005.gz", "00000003.history.gz.age.sig"];
    expect(historiesToFetch(names.map((name) => ({ name })), 3).map((o) => o.name)).toEqual(["00000003.history.gz.age", "00000004.history"]);
  });
});
