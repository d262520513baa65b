import { describe, expect, it } from "vitest";
import { baseManifestProblem, parseBaseManifest } from "../../../lib/base/manifest.js";
import { ManifestInvalid } from "../../../lib/store/manifest.js";
import { testBaseManifest, testBaseManifestV1 } from "../../baseManifests.js";

const NAME = "20240110_020000_base.tar.zst";

describe("baseManifestProblem", () => {
  it("accepts the manifest backup base writes, an encrypted one, and one written before chunk lists (format 1)", () => {
    expect(baseManifestProblem(testBaseManifest(NAME), NAME)).toBeNull();
    expect(baseManifestProblem(testBaseManifest(`${NAME}.age`), `${NAME}.age`)).toBeNull();
    expect(baseManifestProblem(testBaseManifestV1(NAME), NAME)).toBeNull();
  });

  it.each<[string, Record<string, unknown>, string]>([
    ["format", { format: 3 }, "format: 3 is not a base manifest format"],
    ["chunk list", { chunks: { size: 8 * 1024 * 1024, sha256: [] } }, "chunks: "],
    ["chunk count", { compressedBytes: 9 * 1024 * 1024 }, "but a file of 9437184 bytes in chunks of 8388608 has 2"],
    ["missing chunks", { chunks: undefined }, "chunks: missing is not an object"],
    ["encryption without .age", { encryption: { tool: "age", recipients: ["age1x"] } }, "encryption: "],
    ["kind", { kind: "full" }, 'kind: "full" is not "base"'],
    ["name", { name: "20240110_020000_full.sql.zst" }, "name: \"20240110_020000_full.sql.zst\" is not a base backup name"],
    ["startedAt moved", { startedAt: "2024-01-11T02:00:00.000Z" }, "startedAt: \"2024-01-11T02:00:00.000Z\" does not match the time in the name"],
    ["finishedAt", { finishedAt: "2024-01-10T01:00:00.000Z" }, "is before startedAt"],
    ["startLsn", { startLsn: "x" }, 'startLsn: "x" is not an LSN such as 0/2000028'],
    ["stopLsn before start", { stopLsn: "0/1000000" }, 'stopLsn: "0/1000000" is before startLsn (0/2000028)'],
    ["timeline 0", { timeline: 0 }, "timeline: 0 is not an integer >= 1"],
    ["segment size", { walSegmentSize: 3 * 1024 * 1024 }, "walSegmentSize: 3145728 is not a power of two"],
    ["segment size huge", { walSegmentSize: 2 ** 31 }, "is not a power of two between 1 MiB and 1 GiB"],
    ["system identifier", { systemIdentifier: 7 }, "systemIdentifier: 7 is not a system identifier"],
    ["codec", { compression: { codec: "gzip", program: "gzip", level: null } }, "does not match the file name's extension (zstd)"],
    ["sha256", { sha256: "ABC" }, 'sha256: "ABC" is not a sha256'],
    ["backup_manifest sha", { backupManifestSha256: "x" }, 'backupManifestSha256: "x" is not a sha256'],
    ["bytes", { rawBytes: -1 }, "rawBytes: -1 is not an integer >= 0"],
  ])("refuses a bad %s with the field and the problem", (_what, over, problem) => {
    expect(baseManifestProblem({ ...testBaseManifest(NAME), ...over }, NAME)).toContain(problem);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ["null rawBytes", { rawBytes: null }, "rawBytes: null is not an integer >= 0"],
    ["null backup_manifest sha", { backupManifestSha256: null }, "backupManifestSha256: null is not a sha256"],
    ["chunks", { chunks: { size: 8 * 1024 * 1024, sha256: ["0".repeat(64)] } }, "chunks: "],
  ])("format 1 refuses %s", (_what, over, problem) => {
    expect(baseManifestProblem({ ...testBaseManifestV1(NAME), ...over }, NAME)).toContain(problem);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ["no encryption field", { encryption: undefined }, "encryption: missing is missing, but the name ends in .age"],
    ["another tool", { encryption: { tool: "gpg", recipients: ["k"] } }, 'encryption.tool: "gpg" is not "age"'],
    ["no recipients", { encryption: { tool: "age", recipients: [] } }, "encryption.recipients: [] is not a list of 1 to 64 public keys"],
  ])("a .age base backup's manifest: refuses %s", (_what, over, problem) => {
    expect(baseManifestProblem({ ...testBaseManifest(`${NAME}.age`), ...over }, `${NAME}.age`)).toContain(problem);
  });

  it("refuses a manifest that names another file", () => {
    expect(baseManifestProblem(testBaseManifest(NAME), "20240111_020000_base.tar.zst")).toContain("does not match the file name 20240111_020000_base.tar.zst");
  });

  it("refuses what is not an object", () => {
    expect(baseManifestProblem([], NAME)).toBe("manifest: [] is not an object");
  });
});

describe("parseBaseManifest", () => {
  it("throws ManifestInvalid with the reason for bad JSON", () => {
    expect(() => parseBaseManifest("{", "where.json")).toThrow(ManifestInvalid);
    expect(() => parseBaseManifest("{", "where.json")).toThrow(/where\.json: not valid JSON/);
  });

  it("returns the manifest when it passes", () => {
    expect(parseBaseManifest(JSON.stringify(testBaseManifest(NAME)), "w", NAME).stopLsn).toBe("0/2000100");
  });
});
