import { describe, expect, it } from "vitest";
import { objectsToMove } from "../../../lib/receiver/bucketReplaced.js";

const STAMP = Date.parse("2026-12-07T12:00:00Z");
const at = (minutes: number) => new Date(STAMP + minutes * 60_000);
const job = { oldId: "111", stamp: STAMP };
const obj = (key: string, size: number, minutes: number) => ({ key, size, lastModified: at(minutes) });

describe("objectsToMove: the old cluster's objects leave wal/ and wal-partial/", () => {
  it.each([
    ["an old segment", obj("p/wal/000000010000000000000003.gz", 100, -60), new Map(), ["p/wal-replaced/111-" + STAMP + "/wal/000000010000000000000003.gz"]],
    ["its signature", obj("p/wal/000000010000000000000003.gz.sig", 300, -60), new Map(), ["p/wal-replaced/111-" + STAMP + "/wal/000000010000000000000003.gz.sig"]],
    ["a snapshot", obj("p/wal-partial/000000010000000000000004.gz.partial", 50, -1), new Map(), ["p/wal-replaced/111-" + STAMP + "/wal-partial/000000010000000000000004.gz.partial"]],
    ["same name and size as a file in wal/, uploaded after the replacement: the new cluster's, kept", obj("p/wal/000000010000000000000001.gz", 100, 1), new Map([["000000010000000000000001.gz", 100]]), []],
    ["same name and size, uploaded just before it (clocks differ): kept", obj("p/wal/000000010000000000000001.gz", 100, -4), new Map([["000000010000000000000001.gz", 100]]), []],
    ["same name and size, uploaded long before: the old cluster's", obj("p/wal/000000010000000000000001.gz", 100, -30), new Map([["000000010000000000000001.gz", 100]]), ["p/wal-replaced/111-" + STAMP + "/wal/000000010000000000000001.gz"]],
    ["same name, another size: the old cluster's", obj("p/wal/000000010000000000000001.gz", 99, 1), new Map([["000000010000000000000001.gz", 100]]), ["p/wal-replaced/111-" + STAMP + "/wal/000000010000000000000001.gz"]],
    ["another prefix's object: untouched", obj("q/wal/000000010000000000000003.gz", 100, -60), new Map(), []],
    ["a base backup: untouched", obj("p/base/20261207_030000_base.tar.zst", 100, -60), new Map(), []],
    ["an earlier move: untouched", obj("p/wal-replaced/9-1/wal/000000010000000000000003.gz", 100, -60), new Map(), []],
    ["a deeper key under wal/: untouched", obj("p/wal/x/000000010000000000000003.gz", 100, -60), new Map(), []],
  ])("%s", (_what, o, local, to) => {
    expect(objectsToMove([o], local as Map<string, number>, job, "p/").map((m) => m.to)).toEqual(to);
  });

  it("keeps the key below the destination, so a move back is a rename of the prefix", () => {
    expect(objectsToMove([obj("wal/000000010000000000000003.gz", 1, -60)], new Map(), job, "")).toEqual([{ from: "wal/000000010000000000000003.gz", to: `wal-replaced/111-${STAMP}/wal/000000010000000000000003.gz` }]);
  });
});
