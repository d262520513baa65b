import { describe, expect, it } from "vitest";
import { ExitCode, TaskError } from "../../../lib/core/errors.js";
import type { BaseManifest } from "../../../lib/physical/layout.js";
import { parseWalName } from "../../../lib/physical/layout.js";
import type { BaseCandidate, WalInput } from "../../../lib/pitr/plan.js";
import { formatPitrPlan, planPitr } from "../../../lib/pitr/plan.js";
import { parseTimelineHistory } from "../../../lib/wal/timelineHistory.js";
import type { TimelineHistory } from "../../../lib/wal/timelineHistory.js";

const MiB16 = 16 * 1024 * 1024;
const B1 = "20240107_030000_base.tar.zst";
const B2 = "20240110_030000_base.tar.zst";

function base(name: string, startLsn: string, stopLsn: string, finishedAt: string, extra: Partial<BaseCandidate> = {}): BaseCandidate {
  const manifest: BaseManifest = {
    format: 1,
    kind: "base",
    tool: { name: "pg-swarm-backup", version: "test" },
    name,
    startedAt: finishedAt,
    finishedAt,
    startLsn,
    stopLsn,
    timeline: 1,
    walSegmentSize: MiB16,
    systemIdentifier: "7000000000000000001",
    serverVersion: "15.8",
    pgBasebackupVersion: "15.8",
    compression: { codec: "zstd", program: "zstd", level: 1 },
    rawBytes: 1,
    compressedBytes: 1,
    sha256: "0".repeat(64),
    backupManifestSha256: "0".repeat(64),
  };
  return { name, manifest, problem: null, ...extra };
}

/** WAL files by name with their mtime; a history file's text is made up from its timeline. */
function wal(...files: [string, string][]): WalInput {
  const out: WalInput & { segments: WalInput["segments"][number][]; historyNames: string[]; histories: Map<number, TimelineHistory> } = { segments: [], historyNames: [], histories: new Map() };
  for (const [name, mtime] of files) {
    const file = parseWalName(name);
    if (file?.kind === "segment") out.segments.push({ file, mtime: new Date(mtime) });
    else if (file?.kind === "history") {
      out.historyNames.push(name);
      out.histories.set(file.timeline, parseTimelineHistory(`${file.timeline - 1}\t0/6000000\tno recovery target specified\n`));
    } else if (file === null) throw new Error(`bad WAL name ${name}`);
  }
  return out;
}

const without = (w: WalInput, name: string): WalInput => ({ ...w, segments: w.segments.filter((s) => s.file.name !== name) });

// Segments 2..6 of timeline 1 in 16 MiB segments; base 1 starts in 2, base 2 in 5.
const BASES = [base(B1, "0/2000028", "0/2000100", "2024-01-07T03:00:05Z"), base(B2, "0/5000028", "0/5000100", "2024-01-10T03:00:05Z")];
const WAL = wal(
  ["000000010000000000000002.gz", "2024-01-07T03:00:05Z"],
  ["000000010000000000000003.gz", "2024-01-08T00:00:00Z"],
  ["000000010000000000000004.gz", "2024-01-09T00:00:00Z"],
  ["000000010000000000000005.gz", "2024-01-10T03:00:05Z"],
  ["000000010000000000000006.gz.partial", "2024-01-11T00:00:00Z"],
  ["00000002.history", "2024-01-06T00:00:00Z"],
);

function refusal(fn: () => unknown): TaskError {
  try {
    fn();
  } catch (err) {
    if (err instanceof TaskError) return err;
    throw err;
  }
  throw new Error("not refused");
}

describe("planPitr", () => {
  it.each([
    ["no target: the newest base to the end of the WAL", null, B2, "000000010000000000000005", "000000010000000000000006", 2],
    ["a target after base 2 ends", "2024-01-10T12:00:00Z", B2, "000000010000000000000005", "000000010000000000000006", 2],
    ["a target between the bases: base 1, WAL up to the first segment written after it", "2024-01-08T12:00:00Z", B1, "000000010000000000000002", "000000010000000000000004", 3],
    ["a target exactly at the end of base 2 takes base 1", "2024-01-10T03:00:05Z", B1, "000000010000000000000002", "000000010000000000000005", 4],
  ])("%s", (_what, at, chosen, first, last, count) => {
    const p = planPitr(BASES, WAL, at === null ? null : new Date(at));
    expect(p.base).toBe(chosen);
    expect([p.firstSegment, p.lastSegment, p.segments.length]).toEqual([first, last, count]);
    expect(p.history).toEqual(["00000002.history"]);
    expect(p.walEnd?.toISOString()).toBe("2024-01-11T00:00:00.000Z");
  });

  it("stages the newest .partial under its full name and drops compression extensions", () => {
    const p = planPitr(BASES, WAL, null);
    expect(p.segments).toEqual([
      { source: "000000010000000000000005.gz", target: "000000010000000000000005", compression: "gzip" },
      { source: "000000010000000000000006.gz.partial", target: "000000010000000000000006", compression: "gzip" },
    ]);
    expect(formatPitrPlan(p)).toContain("000000010000000000000006.gz.partial as its full name");
  });

  it("prefers a complete segment to its .partial twin, and ignores older .partial files", () => {
    const w = wal(
      ["000000010000000000000005", "2024-01-10T03:00:05Z"],
      ["000000010000000000000005.partial", "2024-01-10T03:00:04Z"],
      ["000000010000000000000006.partial", "2024-01-10T04:00:00Z"],
      ["000000020000000000000006", "2024-01-10T05:00:00Z"],
      ["000000020000000000000007.partial", "2024-01-10T06:00:00Z"],
      ["00000002.history", "2024-01-10T05:00:00Z"],
    );
    const p = planPitr(BASES, w, null);
    expect(p.segments.map((s) => s.source)).toEqual(["000000010000000000000005", "000000020000000000000006", "000000020000000000000007.partial"]);
  });

  it("takes one file per segment: complete before .partial, of two alike the one written last; history files once per timeline", () => {
    const w = wal(
      ["000000010000000000000005.gz", "2024-01-10T03:00:05Z"],
      ["000000010000000000000005.gz.age", "2024-01-10T03:00:06Z"],
      ["000000010000000000000006.gz.partial", "2024-01-10T04:00:00Z"],
      ["000000010000000000000006.gz.partial.age", "2024-01-10T04:00:01Z"],
      ["00000002.history.gz", "2024-01-10T03:00:00Z"],
      ["00000002.history.gz.age", "2024-01-10T03:00:00Z"],
    );
    const p = planPitr(BASES, w, null);
    expect(p.segments).toEqual([
      { source: "000000010000000000000005.gz.age", target: "000000010000000000000005", compression: "gzip" },
      { source: "000000010000000000000006.gz.partial.age", target: "000000010000000000000006", compression: "gzip" },
    ]);
    expect(p.history).toEqual(["00000002.history.gz.age"]);
  });

  it("stages the history files of the base backup's timeline and later ones only: recovery reads no older one", () => {
    const onTl3 = { ...base(B2, "0/5000028", "0/5000100", "2024-01-10T03:00:05Z"), manifest: { ...(base(B2, "0/5000028", "0/5000100", "2024-01-10T03:00:05Z").manifest as BaseManifest), timeline: 3 } };
    const w = wal(["000000030000000000000005", "2024-01-10T03:00:05Z"], ["00000002.history", "2024-01-01T00:00:00Z"], ["00000003.history.gz", "2024-01-02T00:00:00Z"], ["00000004.history", "2024-01-11T00:00:00Z"]);
    expect(planPitr([onTl3], w, null).history).toEqual(["00000003.history.gz", "00000004.history"]);
  });

  it("uncompressed basic_archive segments are staged as they are", () => {
    const w = wal(["000000010000000000000005", "2024-01-10T03:00:05Z"], ["000000010000000000000006", "2024-01-10T04:00:00Z"], ["000000010000000000000005.00000028.backup", "2024-01-10T03:00:05Z"]);
    const p = planPitr(BASES, w, null);
    expect(p.segments).toEqual([
      { source: "000000010000000000000005", target: "000000010000000000000005", compression: "none" },
      { source: "000000010000000000000006", target: "000000010000000000000006", compression: "none" },
    ]);
  });

  it.each([
    ["before the oldest base backup's end", "2024-01-07T03:00:00Z", /before the end of the oldest base backup.*restorable range: 2024-01-07T03:00:05Z/],
    ["after the newest WAL", "2024-01-11T00:00:01Z", /after the newest archived WAL.*to 2024-01-11T00:00:00.000Z \(newest WAL\)/],
  ])("refuses a target %s, naming the range", (_what, at, message) => {
    const err = refusal(() => planPitr(BASES, WAL, new Date(at)));
    expect(err.exitCode).toBe(ExitCode.refused);
    expect(err.message).toMatch(message);
  });

  it("refuses a gap between the base's start and what the target needs, naming the first missing segment", () => {
    const holed = without(WAL, "000000010000000000000003.gz");
    const err = refusal(() => planPitr(BASES, holed, new Date("2024-01-09T12:00:00Z")));
    expect(err.exitCode).toBe(ExitCode.refused);
    expect(err.message).toContain("segment 000000010000000000000003 is missing");
    // A target inside the segment before the gap needs nothing past it.
    const later = { ...holed, segments: holed.segments.map((w) => (w.file.name === "000000010000000000000002.gz" ? { ...w, mtime: new Date("2024-01-07T06:00:00Z") } : w)) };
    expect(planPitr(BASES, later, new Date("2024-01-07T05:00:00Z")).lastSegment).toBe("000000010000000000000002");
    // The newest base starts after the gap.
    expect(planPitr(BASES, holed, null).base).toBe(B2);
  });

  it("refuses when the base's own segments are missing", () => {
    const err = refusal(() => planPitr([BASES[1] as BaseCandidate], wal(["000000010000000000000006", "2024-01-11T00:00:00Z"]), null));
    expect(err.message).toContain("segment 000000010000000000000005 is missing");
    const long = base(B2, "0/5000028", "0/6000100", "2024-01-10T03:00:05Z");
    const cut = refusal(() => planPitr([long], wal(["000000010000000000000005", "2024-01-10T03:00:05Z"]), null));
    expect(cut.message).toContain("000000010000000000000006 is missing");
    expect(cut.message).toContain("cannot be restored without it");
    expect(refusal(() => planPitr([BASES[1] as BaseCandidate], wal(), null)).message).toContain("000000010000000000000005 is missing from wal/, which holds no WAL");
  });

  it("refuses without a usable base backup", () => {
    expect(refusal(() => planPitr([], WAL, null)).message).toMatch(/needs a base backup.*there is none/);
    const bad = [base(B1, "0/2000028", "0/2000100", "2024-01-07T03:00:05Z", { problem: "checksum file missing" })];
    expect(refusal(() => planPitr(bad, WAL, null)).message).toContain(`${B1}: checksum file missing`);
  });

  it("skips unusable base backups", () => {
    const bases = [BASES[0] as BaseCandidate, { ...(BASES[1] as BaseCandidate), manifest: null }];
    expect(planPitr(bases, WAL, null).base).toBe(B1);
  });
});
