// Which base backups `mirror` and `backup base` upload (lib/offsite/uploadPlan.ts), and how the
// bucket's listing of base/ is read (lib/offsite/remoteBases.ts).
import { describe, expect, it } from "vitest";
import { groupRemoteBases } from "../../../lib/offsite/remoteBases.js";
import { planBaseUploads } from "../../../lib/offsite/uploadPlan.js";

const A = "20260301_030000_base.tar.zst";
const B = "20260308_030000_base.tar.zst.age";
const C = "20260315_030000_base.tar.gz";

describe("groupRemoteBases", () => {
  it("groups data and sidecars by name, oldest first, and ignores other names and prefixes", () => {
    const got = groupRemoteBases("p/base/", [
      { key: `p/base/${B}`, size: 200 },
      { key: `p/base/${B}.json`, size: 9 },
      { key: `p/base/${A}`, size: 100 },
      { key: `p/base/${A}.sha256`, size: 9 },
      { key: `p/base/${A}.sha256.sig`, size: 9 },
      { key: `p/base/${A}.json`, size: 9 },
      { key: "p/base/README", size: 1 },
      { key: `p/base/${A}.partial`, size: 1 },
      { key: `q/base/${C}`, size: 1 },
      { key: `p/base/sub/${C}`, size: 1 },
    ]);
    expect(got.map((b) => [b.name, b.bytes, b.hasChecksum, b.hasSignature, b.hasManifest])).toEqual([
      [A, 100, true, true, true],
      [B, 200, false, false, true],
    ]);
  });
});

describe("planBaseUploads", () => {
  const remote = groupRemoteBases("p/", [
    { key: `p/${A}`, size: 100 },
    { key: `p/${A}.sha256`, size: 9 },
    { key: `p/${A}.json`, size: 9 },
    { key: `p/${B}`, size: 199 },
    { key: `p/${B}.sha256`, size: 9 },
    { key: `p/${B}.json`, size: 9 },
  ]);
  it("newest first: what S3 lacks, holds at another size, or holds without its signature; a base backup with a problem is skipped", () => {
    const plan = planBaseUploads(
      [
        { name: A, bytes: 100, problem: null, signed: true },
        { name: B, bytes: 200, problem: null, signed: false },
        { name: C, bytes: 300, problem: null, signed: false },
        { name: "20260322_030000_base.tar.zst", bytes: 1, problem: "no manifest", signed: false },
      ],
      remote,
    );
    expect(plan.upload).toEqual([
      { name: C, reason: "not in S3" },
      { name: B, reason: "size in S3 differs (199 bytes, local 200)" },
      { name: A, reason: "signature missing in S3" },
    ]);
    expect(plan.skipped).toEqual([{ name: "20260322_030000_base.tar.zst", reason: "no manifest" }]);
    expect(planBaseUploads([{ name: A, bytes: 100, problem: null, signed: false }], remote)).toEqual({ upload: [], inSync: [A], skipped: [] });
  });
});
