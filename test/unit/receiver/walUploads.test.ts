// What wal-receive's uploader and `mirror` send to the bucket, and which snapshots in the
// bucket are stale (lib/receiver/walUploads.ts).
import { describe, expect, it } from "vitest";
import { parseWalName } from "../../../lib/physical/layout.js";
import type { LocalWal } from "../../../lib/receiver/walUploads.js";
import { fileState, planWalUploads } from "../../../lib/receiver/walUploads.js";
import { walObjectKey, walObjectsIn } from "../../../lib/receiver/walUpload.js";

const T = (s: number) => new Date(Date.UTC(2026, 2, 1, 12, 0, s));

function wal(name: string, size = 100, s = 0, signed = true): LocalWal {
  const file = parseWalName(name);
  if (file === null || file.kind === "backup-label") throw new Error(name);
  return { file, size, mtime: T(s), signed };
}

const remote = (entries: Record<string, number>) => new Map(Object.entries(entries));
const names = (p: ReturnType<typeof planWalUploads>) => p.upload.map((u) => [u.name, u.kind, u.reason]);
const ON = { snapshots: true, lastSnapshot: null };

describe("planWalUploads", () => {
  it("histories first, then completed segments oldest first (timeline, position), then the newest snapshot", () => {
    const local = [wal("000000020000000000000005.gz", 100, 5), wal("000000010000000000000003.gz", 100, 1), wal("00000002.history.gz", 50, 4), wal("000000020000000000000006.gz.partial", 70, 6), wal("000000010000000000000004.gz", 100, 3)];
    expect(names(planWalUploads(local, remote({}), ON))).toEqual([
      ["00000002.history.gz", "history", "not in S3"],
      ["000000010000000000000003.gz", "segment", "not in S3"],
      ["000000010000000000000004.gz", "segment", "not in S3"],
      ["000000020000000000000005.gz", "segment", "not in S3"],
      ["000000020000000000000006.gz.partial", "snapshot", "not in S3"],
    ]);
  });

  it("skips what the bucket holds with the same size and its signature; re-sends a different size or a lost signature", () => {
    const local = [wal("000000010000000000000003.gz.age", 100), wal("000000010000000000000004.gz.age", 120), wal("000000010000000000000005.gz.age", 90), wal("000000010000000000000006", 16, 0, false)];
    const r = remote({ "000000010000000000000003.gz.age": 100, "000000010000000000000003.gz.age.sig": 300, "000000010000000000000004.gz.age": 99, "000000010000000000000004.gz.age.sig": 300, "000000010000000000000005.gz.age": 90, "000000010000000000000006": 16 });
    expect(names(planWalUploads(local, r, ON))).toEqual([
      ["000000010000000000000004.gz.age", "segment", "size in S3 differs (99 bytes, local 120)"],
      ["000000010000000000000005.gz.age", "segment", "signature missing in S3"],
    ]);
  });

  it("only the newest .partial goes up, never one whose segment is complete here or in the bucket, and only when it changed", () => {
    const local = [wal("000000010000000000000003.gz.partial", 10), wal("000000010000000000000007.gz.partial.age", 80, 9), wal("000000010000000000000008.gz.partial", 10)];
    const r = remote({ "000000010000000000000008.gz": 500, "000000010000000000000008.gz.sig": 300, "000000010000000000000003.gz": 400 });
    const plan = planWalUploads(local, r, ON);
    expect(names(plan)).toEqual([["000000010000000000000007.gz.partial.age", "snapshot", "not in S3"]]);
    const same = remote({ ...Object.fromEntries(r), "000000010000000000000007.gz.partial.age": 80, "000000010000000000000007.gz.partial.age.sig": 300 });
    expect(names(planWalUploads(local, same, ON))).toEqual([["000000010000000000000007.gz.partial.age", "snapshot", "changed"]]);
    const uploaded = fileState({ name: "000000010000000000000007.gz.partial.age", size: 80, mtime: T(9) });
    expect(planWalUploads(local, same, { snapshots: true, lastSnapshot: uploaded }).upload).toEqual([]);
    expect(planWalUploads(local, remote({}), { snapshots: false, lastSnapshot: null }).upload.map((u) => u.kind)).toEqual([]);
  });

  it("a snapshot in the bucket is stale once the bucket holds its segment complete, or this plan sends it", () => {
    const local = [wal("000000010000000000000004.gz", 400), wal("000000010000000000000005.gz.partial", 10)];
    const r = remote({
      "000000010000000000000003.gz": 400,
      "000000010000000000000003.gz.partial": 300,
      "000000010000000000000003.gz.partial.sig": 300,
      "000000010000000000000004.gz.partial.age": 300,
      "000000010000000000000005.gz.partial": 5,
      "000000010000000000000009.gz.partial": 5,
    });
    expect(planWalUploads(local, r, ON).staleSnapshots).toEqual(["000000010000000000000003.gz.partial", "000000010000000000000004.gz.partial.age"]);
  });

  it("with BACKUP_DIR lost (nothing local), nothing goes up and only snapshots with a complete segment in the bucket are stale", () => {
    const r = remote({ "000000010000000000000003.gz": 400, "000000010000000000000004.gz.partial": 300 });
    expect(planWalUploads([], r, ON)).toEqual({ upload: [], staleSnapshots: [] });
  });
});

describe("the bucket's WAL folders", () => {
  const s3 = { s3: { prefix: "p" } } as Parameters<typeof walObjectKey>[0];
  it("a completed file goes to wal/, a snapshot to wal-partial/", () => {
    expect(walObjectKey(s3, wal("000000010000000000000003.gz.age").file)).toBe("p/wal/000000010000000000000003.gz.age");
    expect(walObjectKey(s3, wal("00000002.history.gz").file)).toBe("p/wal/00000002.history.gz");
    expect(walObjectKey(s3, wal("000000010000000000000004.gz.partial.age").file)).toBe("p/wal-partial/000000010000000000000004.gz.partial.age");
  });
  it("a listing keeps only WAL files and their signatures in the folder they belong in", () => {
    const at = new Date(0);
    const listed = ["p/wal/000000010000000000000003.gz", "p/wal/000000010000000000000003.gz.sig", "p/wal/000000010000000000000004.gz.partial", "p/wal/README", "p/wal/sub/000000010000000000000005.gz", "p/wal/000000010000000000000003.00000028.backup"].map((key) => ({ key, size: 1, lastModified: at }));
    expect(walObjectsIn("wal", "p/wal/", listed).map((o) => o.name)).toEqual(["000000010000000000000003.gz", "000000010000000000000003.gz.sig"]);
    const partial = ["p/wal-partial/000000010000000000000004.gz.partial", "p/wal-partial/000000010000000000000004.gz.partial.sig", "p/wal-partial/000000010000000000000003.gz"].map((key) => ({ key, size: 1, lastModified: at }));
    expect(walObjectsIn("wal-partial", "p/wal-partial/", partial).map((o) => o.name)).toEqual(["000000010000000000000004.gz.partial", "000000010000000000000004.gz.partial.sig"]);
  });
});
