import { describe, expect, it } from "vitest";
import { parseLsn, parseWalName } from "../../../lib/physical/layout.js";
import type { SegmentFile } from "../../../lib/wal/archive.js";
import { abandonedSegments, parseFork } from "../../../lib/receiver/fork.js";

const SEG = 16 * 1024 * 1024;
const segs = (...names: string[]) => names.map((n) => parseWalName(n) as SegmentFile);

describe("parseFork", () => {
  it("reads the server's DETAIL line", () => {
    const stderr =
      'pg_receivewal: error: could not send replication command "START_REPLICATION": ERROR:  requested starting point 0/8000000 on timeline 2 is not in this server\'s history\nDETAIL:  This server\'s history forked from timeline 2 at 0/50000A0.\npg_receivewal: error: disconnected';
    expect(parseFork(stderr)).toEqual({ timeline: 2, lsn: parseLsn("0/50000A0") });
  });
  it("is null without one", () => {
    expect(parseFork("ERROR:  requested starting point 0/9000000 is ahead of the WAL flush position of this server 0/7000000")).toBeNull();
  });
});

describe("abandonedSegments", () => {
  const all = segs("000000020000000000000004.gz", "000000020000000000000005.gz", "000000020000000000000006.gz", "000000020000000000000007.gz.partial", "000000010000000000000006", "000000030000000000000005.partial");
  it.each([
    ["inside a segment: from the fork's segment on, on the fork's timeline only", "0/50000A0", ["000000020000000000000005.gz", "000000020000000000000006.gz", "000000020000000000000007.gz.partial"]],
    ["at a segment boundary: from that segment on", "0/5000000", ["000000020000000000000005.gz", "000000020000000000000006.gz", "000000020000000000000007.gz.partial"]],
    ["past the newest segment: nothing", "0/8000028", []],
  ])("%s", (_label, lsn, expected) => {
    expect(abandonedSegments(all, { timeline: 2, lsn: parseLsn(lsn) as bigint }, SEG).map((f) => f.name)).toEqual(expected);
  });
});
