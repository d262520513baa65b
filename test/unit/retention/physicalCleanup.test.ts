import { describe, expect, it } from "vitest";
import { orphanBaseSidecars, orphanWalSignatures } from "../../../lib/retention/physicalCleanup.js";

const CLOCK = new Date("2024-01-10T12:00:00Z");
const OLD = "20240106_020000_base.tar.zst";
const NEW = "20240110_020000_base.tar.zst";

describe("orphanBaseSidecars", () => {
  it.each<[string, string[], string[]]>([
    ["sidecars of a tar that is gone, older than a day", [`${OLD}.json`, `${OLD}.sha256`, `${OLD}.sha256.sig`], [`${OLD}.json`, `${OLD}.sha256`, `${OLD}.sha256.sig`]],
    ["sidecars of a present tar", [OLD, `${OLD}.json`, `${OLD}.sha256`], []],
    ["sidecars of a tar being committed (.partial)", [`${OLD}.aB3x.partial`, `${OLD}.json`], []],
    ["younger than a day by the name's stamp", [`${NEW}.json`], []],
    ["names that are not base backups", ["20240106_020000_full.sql.bz2.json", "notes.json", `${OLD}.txt`], []],
  ])("%s", (_what, names, orphans) => {
    expect(orphanBaseSidecars(names, CLOCK)).toEqual(orphans);
  });
});

describe("orphanWalSignatures", () => {
  it("names the signatures whose WAL file is gone, never another file", () => {
    const names = new Set([
      "000000010000000000000003.gz.age",
      "000000010000000000000003.gz.age.sig",
      "000000010000000000000002.gz.age.sig",
      "00000002.history.gz.sig",
      "000000010000000000000004.gz.partial.sig",
      "notes.sig",
      "000000010000000000000003.00000028.backup.sig",
    ]);
    expect(orphanWalSignatures(names)).toEqual(["000000010000000000000002.gz.age.sig", "000000010000000000000004.gz.partial.sig", "00000002.history.gz.sig"]);
  });
});
