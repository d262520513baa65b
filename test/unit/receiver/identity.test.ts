import { describe, expect, it } from "vitest";
import { identityPlan } from "../../../lib/receiver/identity.js";

const NONE = { shipSpoolAs: null, setAsideSpool: null, setAsideWal: null };

describe("identityPlan: whose WAL wal/ and the spool hold, before receiving from a server", () => {
  it.each([
    ["first start: no markers", { server: "C", spool: true, spoolMarker: null, walMarker: null }, NONE],
    ["same cluster", { server: "C", spool: true, spoolMarker: "C", walMarker: "C" }, NONE],
    ["same cluster, direct", { server: "C", spool: false, spoolMarker: null, walMarker: "C" }, NONE],
    ["replaced: the spool's last WAL shipped as the old cluster's, then both set aside", { server: "C", spool: true, spoolMarker: "A", walMarker: "A" }, { shipSpoolAs: "A", setAsideSpool: "A", setAsideWal: "A" }],
    ["replaced, wal/ unmarked (an older version wrote it): it is the spool's cluster's", { server: "C", spool: true, spoolMarker: "A", walMarker: null }, { shipSpoolAs: "A", setAsideSpool: "A", setAsideWal: "A" }],
    ["replaced, direct: wal/ set aside", { server: "C", spool: false, spoolMarker: null, walMarker: "A" }, { shipSpoolAs: null, setAsideSpool: null, setAsideWal: "A" }],
    ["wal/ already the server's, the spool another cluster's: its WAL stays in the spool's folder", { server: "C", spool: true, spoolMarker: "A", walMarker: "C" }, { shipSpoolAs: null, setAsideSpool: "A", setAsideWal: null }],
    ["wal/ a third cluster's: each set aside as its own, nothing shipped across", { server: "C", spool: true, spoolMarker: "A", walMarker: "B" }, { shipSpoolAs: null, setAsideSpool: "A", setAsideWal: "B" }],
    ["a new spool volume, wal/ another cluster's", { server: "C", spool: true, spoolMarker: null, walMarker: "A" }, { shipSpoolAs: null, setAsideSpool: null, setAsideWal: "A" }],
    ["the spool marker is ignored without a spool", { server: "C", spool: false, spoolMarker: "A", walMarker: null }, NONE],
  ])("%s", (_what, input, plan) => {
    expect(identityPlan(input)).toEqual(plan);
  });
});
