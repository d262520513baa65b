import { describe, expect, it } from "vitest";
import type { CatalogEntry } from "../../../lib/store/catalog.js";
import type { Manifest } from "../../../lib/store/manifest.js";
import { parseBackupName } from "../../../lib/store/naming.js";
import type { SectionsResult } from "../../../lib/sql/splitter.js";
import type { StreamScan } from "../../../lib/verify/checks.js";
import {
  ageFindings,
  chainFindings,
  entryProblem,
  manifestFindings,
  parseQualifiedName,
  restoredRowFindings,
  resultsByName,
  rowCountDiffs,
  streamFindings,
} from "../../../lib/verify/checks.js";
import { formatReport } from "../../../tasks/verify.js";
import { testManifest } from "../../manifests.js";

// A fixed reference time keeps the age checks deterministic.
const NOW = new Date("2024-01-10T12:00:00Z");
const F = "20240107_030000_full.sql.bz2";
const D = "20240109_030000_differential.sql.bz2";
const I = "20240110_020000_incremental.sql.bz2";

function entry(name: string, over: Partial<Manifest> = {}, extra: Partial<CatalogEntry> = {}): CatalogEntry {
  const parsed = parseBackupName(name);
  if (parsed === null) throw new Error(name);
  const manifest = testManifest(name, {
    rawBytes: 1000,
    compressedBytes: 100,
    databases: ["template1", "postgres", "app"],
    included: ["template1", "postgres", "app"],
    rowCounts: { template1: {}, postgres: {}, app: { "public.items": 3 } },
    ...over,
  });
  return { name, tier: parsed.tier, path: `/b/${parsed.tier}/${name}`, time: parsed.time, parent: manifest.parent, manifest, problem: null, bytes: 100, ...extra };
}

const chain = (): CatalogEntry[] => [entry(F), entry(D, { parent: F }), entry(I, { parent: D, included: ["app"], rowCounts: { app: {} } })];

describe("entryProblem", () => {
  it.each<[string, CatalogEntry, RegExp | null]>([
    ["a good entry", entry(F), null],
    ["a catalog problem", entry(F, {}, { problem: "no checksum file x.sha256" }), /no checksum file/],
    ["a size mismatch", entry(F, {}, { bytes: 99 }), /99 bytes but its manifest records 100: it was truncated/],
    ["included outside databases", entry(F, { included: ["gone"] , rowCounts: {} }), /includes \["gone"\]/],
    ["row counts for a database not included", entry(F, { rowCounts: { other: {} } }), /row counts for \["other"\]/],
    ["a full with a parent", entry(F, { parent: D }), /must not record a parent/],
  ])("%s", (_label, e, expected) => {
    const problem = entryProblem(e);
    if (expected === null) expect(problem).toBeNull();
    else expect(problem).toMatch(expected);
  });

  it("reports one failing check per bad file, or one passing check", () => {
    expect(manifestFindings(chain())).toEqual([expect.objectContaining({ name: "manifest", ok: true, figures: { files: 3 } })]);
    const bad = manifestFindings([entry(F, {}, { bytes: 1 }), entry(D, { parent: F }, { bytes: 2 })]);
    expect(bad.map((f) => [f.ok, f.file])).toEqual([[false, F], [false, D]]);
  });
});

describe("chainFindings", () => {
  it("passes when every dependent backup reaches a full", () => {
    expect(chainFindings(chain())).toEqual([expect.objectContaining({ ok: true, figures: { files: 2 } })]);
  });

  it.each<[string, CatalogEntry[], string, RegExp]>([
    ["a missing full", chain().slice(1), D, new RegExp(`parent ${F} of ${D} is missing`)],
    ["an unusable parent", [entry(F, {}, { problem: "no manifest" , manifest: null }), ...chain().slice(1)], D, /is unusable \(no manifest\)/],
    ["no parent recorded", [entry(F), entry(I, { parent: null, included: ["app"], rowCounts: { app: {} } })], I, /records no parent/],
    ["a parent that is not older", [entry(F), entry(D, { parent: I }), entry(I, { parent: D, included: [], rowCounts: {} })], D, /is not older than it/],
  ])("names the broken file for %s", (_label, entries, file, message) => {
    const failing = chainFindings(entries).filter((f) => !f.ok);
    expect(failing.map((f) => f.file)).toContain(file);
    expect(failing.find((f) => f.file === file)?.message).toMatch(message);
  });
});

describe("ageFindings", () => {
  const hoursAfter = (h: number) => new Date(parseBackupName(I)!.time.getTime() + h * 3_600_000);

  it("passes fresh backups and reports ages in hours", () => {
    const [newest, full] = ageFindings(chain(), hoursAfter(10));
    expect(newest).toMatchObject({ name: "newest-age", ok: true, file: I, figures: { ageHours: 10, maxAgeHours: 26 } });
    expect(full).toMatchObject({ name: "full-age", ok: true, file: F, figures: { maxAgeHours: 192 } });
  });

  it("fails a newest backup older than 26 h and a full older than 8 days", () => {
    const [newest, full] = ageFindings(chain(), hoursAfter(27));
    expect(newest).toMatchObject({ ok: false, file: I });
    expect(newest?.message).toMatch(/27 h old, older than the 26 h limit: backups have stopped/);
    expect(full?.ok).toBe(true);
    expect(ageFindings(chain(), hoursAfter(24 * 7 + 1))[1]).toMatchObject({ ok: false, file: F });
  });

  it("takes --max-age for the newest backup and never makes the full limit stricter", () => {
    expect(ageFindings(chain(), NOW, 0)[0]?.ok).toBe(false);
    expect(ageFindings(chain(), hoursAfter(300), 400).map((f) => f.ok)).toEqual([true, true]);
  });

  it("ignores unusable backups and fails without any full", () => {
    const entries = [entry(I, { parent: D }, { problem: "bad manifest" })];
    const [newest, full] = ageFindings(entries, NOW);
    expect(newest?.message).toMatch(/no usable backup/);
    expect(full?.message).toMatch(/no usable full backup/);
  });
});

describe("rowCountDiffs and parseQualifiedName", () => {
  it("lists tables whose counts differ or that one side lacks", () => {
    expect(rowCountDiffs({ "public.a": 1, "public.b": 2, "public.c": 0 }, { "public.a": 1, "public.b": 3, "public.d": 4 })).toEqual([
      { table: "public.b", expected: 2, actual: 3 },
      { table: "public.c", expected: 0, actual: null },
      { table: "public.d", expected: null, actual: 4 },
    ]);
  });

  it.each<[string, [string, string] | null]>([
    ["public.items", ["public", "items"]],
    ['public."Mixed Case"', ["public", "Mixed Case"]],
    ['"we""ird.schema"."t.a""b"', ['we"ird.schema', 't.a"b']],
    ['public."ü"', ["public", "ü"]],
    ["items", null],
    ['public."open', null],
    ["a.b.c", null],
    ["public. items", null],
  ])("parses %s", (printed, expected) => {
    expect(parseQualifiedName(printed)).toEqual(expected);
  });
});

describe("streamFindings", () => {
  const sections = (names: string[], over: Partial<SectionsResult> = {}): SectionsResult => ({
    databases: names,
    sections: names.map((name) => ({ name, bytes: 10, complete: true })),
    globalsBytes: 10,
    bytes: 1000,
    clusterTrailer: true,
    ...over,
  });
  const scan = (over: Partial<StreamScan> = {}): StreamScan => ({
    error: null,
    integrity: false,
    rawBytes: 1000,
    sections: sections(["template1", "postgres", "app"]),
    rowCounts: new Map([["app", { "public.items": 3 }]]),
    ...over,
  });
  const byName = (e: CatalogEntry, s: StreamScan) => Object.fromEntries(streamFindings(e, s).map((f) => [f.name, f]));

  it("passes a stream that matches its manifest", () => {
    expect(streamFindings(entry(F), scan()).map((f) => [f.name, f.ok])).toEqual([
      ["decompress", true],
      ["sections", true],
      ["stream-row-counts", true],
    ]);
  });

  it.each<[string, Partial<StreamScan>, RegExp]>([
    ["a decompressor failure", { error: "lbzip2 exited with 1: data error" }, /decompression failed after 1000 bytes: lbzip2 exited with 1/],
    ["a missing cluster trailer", { sections: sections(["template1", "postgres", "app"], { clusterTrailer: false }) }, /without pg_dumpall's "cluster dump complete" trailer/],
    [
      "a cut section",
      { sections: { ...sections(["template1"]), sections: [{ name: "template1", bytes: 1, complete: false }] } },
      /\["template1"\] end without pg_dump's "dump complete" trailer/,
    ],
    ["a raw size mismatch", { rawBytes: 999 }, /decompresses to 999 bytes but its manifest records 1000/],
  ])("fails decompress only, for %s", (_label, over, message) => {
    const findings = streamFindings(entry(F), scan(over));
    expect(findings).toHaveLength(1);
    expect(findings[0]).toMatchObject({ name: "decompress", ok: false, file: F });
    expect(findings[0]?.message).toMatch(message);
  });

  it("compares sections by their printed names", () => {
    const e = entry(F, { databases: ["a\nb"], included: ["a\nb"], rowCounts: { "a\nb": {} } });
    expect(byName(e, scan({ sections: sections(["a b"]), rowCounts: new Map() })).sections?.ok).toBe(true);
    const missing = byName(entry(F), scan({ sections: sections(["template1", "app", "extra"]) })).sections;
    expect(missing?.message).toMatch(/missing \["postgres"\], unexpected \["extra"\]/);
  });

  it("fails stream-row-counts naming database, table and both counts", () => {
    const f = byName(entry(F), scan({ rowCounts: new Map([["app", { "public.items": 2 }]]) }))["stream-row-counts"];
    expect(f).toMatchObject({ ok: false, file: F });
    expect(f?.message).toMatch(/"app" public\.items: 2 rows in the stream, manifest says 3/);
  });
});

describe("restoredRowFindings, resultsByName and the report", () => {
  it("fails per database with the provider file, passes with totals", () => {
    const good = { database: "app", provider: F, diffs: [], tables: 2, rows: 5 };
    expect(restoredRowFindings([good])).toEqual([expect.objectContaining({ ok: true, figures: { databases: 1, tables: 2, rows: 5 } })]);
    const bad = restoredRowFindings([good, { database: "b", provider: I, diffs: [{ table: "public.t", expected: 11, actual: 10 }], tables: 1, rows: 10 }]);
    expect(bad).toEqual([expect.objectContaining({ ok: false, file: I })]);
    expect(bad[0]?.message).toMatch(/"b" public\.t: 10 rows in the restored table, manifest says 11/);
  });

  it("folds checks of one name for metrics", () => {
    const c = (name: string, ok: boolean) => ({ name, ok, message: "", figures: {} });
    expect(resultsByName([c("checksum", true), c("decompress", true), c("decompress", false)])).toEqual({ checksum: true, decompress: false });
  });

  it("prints one line per check and names the failing checks and files", () => {
    const text = formatReport({
      ok: false,
      durationMs: 1500,
      checks: [
        { name: "checksum", ok: true, message: "3 files match", figures: { files: 3 }, durationMs: 5 },
        { name: "decompress", ok: false, file: F, message: "decompression failed:\nline two", figures: { rawBytes: 7 }, durationMs: 9 },
      ],
    });
    expect(text.split("\n")).toEqual([
      "PASS  checksum    -  3 files match  (files=3)",
      `FAIL  decompress  ${F}  decompression failed: | line two  (rawBytes=7)`,
      `verify: FAILED, 1 of 2 checks failed in 1.5 s: decompress (${F})`,
      "",
    ]);
  });
});
