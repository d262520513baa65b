// What `mirror` and `cleanup` delete of the physical tier in the bucket (lib/offsite/prunePlan.ts):
// cleanup's plan over what the bucket holds, never deleting what cleanup keeps in BACKUP_DIR.
import { describe, expect, it } from "vitest";
import type { PruneBase } from "../../../lib/offsite/prunePlan.js";
import { planBucketPrune } from "../../../lib/offsite/prunePlan.js";
import type { WalFile } from "../../../lib/physical/layout.js";
import { parseWalName } from "../../../lib/physical/layout.js";

const DAY = 86_400_000;
const NOW = new Date("2026-06-01T00:00:00Z");
const POLICY = { keepAllDays: 14, keepDifferentialDays: 42, minFull: 2, keepFullDays: 60 };

/** A base backup `days` old starting in segment `seg` (16 MiB segments, timeline 1). */
function base(days: number, seg: number, problem: string | null = null): PruneBase {
  const time = new Date(NOW.getTime() - days * DAY);
  const stamp = time.toISOString().replace(/[-:]/g, "").replace("T", "_").slice(0, 15);
  return { name: `${stamp}_base.tar.zst`, time, problem, start: problem === null ? { timeline: 1, startLsn: `0/${(seg * 0x1000000 + 0x28).toString(16).toUpperCase()}`, walSegmentSize: 16 << 20 } : null };
}

const wal = (from: number, to: number): WalFile[] => Array.from({ length: to - from + 1 }, (_, i) => parseWalName(`00000001000000000000${(from + i).toString(16).toUpperCase().padStart(4, "0")}.gz`) as WalFile);
const names = (p: ReturnType<typeof planBucketPrune>) => ({ bases: p.bases.map((b) => b.name), wal: p.wal.map((w) => w.name) });

const old1 = base(90, 0x10);
const old2 = base(70, 0x20);
const mid = base(20, 0x30);
const young = base(3, 0x40);

describe("planBucketPrune", () => {
  it("the bucket a mirror of BACKUP_DIR: deletes what cleanup deletes — base backups past the windows and WAL before the oldest kept start", () => {
    const all = [old1, old2, mid, young];
    const p = planBucketPrune({ local: all, remote: all, remoteWal: wal(0x10, 0x45), policy: POLICY, now: NOW });
    expect(names(p).bases).toEqual([old2.name, old1.name]);
    expect(names(p).wal).toEqual(wal(0x10, 0x2f).map((f) => f.name));
    expect(p.walReason).toMatch(/kept from 000000010000000000000030: the start of .*_base\.tar\.zst/);
  });

  it("base backups only the bucket still holds (cleanup ran while S3 was down) go by the same plan, marked", () => {
    const p = planBucketPrune({ local: [mid, young], remote: [old1, old2, mid, young], remoteWal: wal(0x10, 0x45), policy: POLICY, now: NOW });
    expect(p.bases.map((b) => [b.name, b.reason])).toEqual([
      [old2.name, expect.stringMatching(/older than 60 days \(only in S3\)$/)],
      [old1.name, expect.stringMatching(/\(only in S3\)$/)],
    ]);
    expect(names(p).wal).toEqual(wal(0x10, 0x2f).map((f) => f.name));
  });

  it("never deletes what cleanup keeps locally: with newer base backups only in the bucket, BACKUP_DIR's newest stays, and its WAL", () => {
    const newer = [base(2, 0x50), base(1, 0x60)];
    const policy = { ...POLICY, keepAllDays: 0, keepDifferentialDays: 0, keepFullDays: 0, minFull: 2 };
    const p = planBucketPrune({ local: [old1, old2], remote: [old1, old2, ...newer], remoteWal: wal(0x10, 0x65), policy, now: NOW });
    // Alone, the bucket's plan keeps only the two newest; cleanup keeps old1 and old2 in BACKUP_DIR (its two newest).
    expect(names(p).bases).toEqual([]);
    expect(names(p).wal).toEqual([]);
    const one = planBucketPrune({ local: [old1, old2], remote: [old1, old2, ...newer], remoteWal: wal(0x10, 0x65), policy: { ...policy, minFull: 1 }, now: NOW });
    // The newer of the two only in the bucket is no longer needed either (cleanup would delete it, had BACKUP_DIR it).
    expect(names(one).bases).toEqual([newer[0]?.name, old1.name]);
    expect(names(one).wal).toEqual(wal(0x10, 0x1f).map((f) => f.name));
    expect(one.walReason).toMatch(/^kept from 000000010000000000000020: the start of .* in BACKUP_DIR, which the bucket keeps too \(by its own base backups alone, from 000000010000000000000060\)$/);
  });

  it("with BACKUP_DIR lost (no local base backup), no WAL is deleted from the bucket", () => {
    const p = planBucketPrune({ local: [], remote: [old1, old2, mid, young], remoteWal: wal(0x10, 0x45), policy: POLICY, now: NOW });
    expect(names(p).wal).toEqual([]);
    expect(p.walReason).toMatch(/^BACKUP_DIR keeps every WAL file \(no good base backup is kept/);
  });

  it("a base backup in the bucket that is incomplete or does not verify counts for nothing: kept while young, deleted when old", () => {
    const bad = [base(2, 0x41, "not signed"), base(80, 0x11, "no manifest 20260313_000000_base.tar.zst.json")];
    const p = planBucketPrune({ local: [mid, young], remote: [...bad, mid, young], remoteWal: wal(0x30, 0x45), policy: POLICY, now: NOW });
    expect(names(p).bases).toEqual([bad[1]?.name]);
    expect(p.bases[0]?.reason).toMatch(/^invalid: no manifest/);
    expect(names(p).wal).toEqual([]);
  });
});
