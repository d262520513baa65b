// Which WAL a restore with a verify key may use (signedWalProblem): every planned segment and
// staged history file signed for the base backup's cluster, and every replayed timeline in the
// signed record (its history file signed).
import { describe, expect, it } from "vitest";
import type { SignedWalInput } from "../../../lib/wal/signedRecord.js";
import { encryptedAmong, signedWalProblem } from "../../../lib/wal/signedRecord.js";
import type { WalStatement } from "../../../lib/wal/signature.js";

const SYSID = "7312345678901234567";
const st = (file: string, sysid = SYSID): WalStatement => ({ file, systemIdentifier: sysid, bytes: 1, sha256: "0".repeat(64) });
const seg = (name: string, statement: WalStatement | null = st(name), problem: string | null = null) => ({ name, statement, problem });
const hist = (name: string, statement: WalStatement | null = st(name)) => ({ name, statement });

const input = (over: Partial<SignedWalInput>): SignedWalInput => ({ baseTimeline: 1, systemIdentifier: SYSID, segments: [], histories: [], ...over });

describe("signedWalProblem", () => {
  it.each<[string, Partial<SignedWalInput>, RegExp | null]>([
    ["all signed on the base's timeline", { segments: [seg("000000010000000000000003.gz"), seg("000000010000000000000004.gz.partial")] }, null],
    ["a later timeline with its signed history", { segments: [seg("000000010000000000000003.gz"), seg("000000020000000000000004.gz")], histories: [hist("00000002.history.gz")] }, null],
    ["a later timeline without a signed history", { segments: [seg("000000010000000000000003.gz"), seg("000000020000000000000004.gz")] }, /000000020000000000000004\.gz is on timeline 2, which the signed record does not contain \(no signed 00000002\.history\)/],
    ["an unsigned history file", { segments: [seg("000000010000000000000003.gz")], histories: [hist("00000002.history", null)] }, /timeline history file 00000002\.history is not signed/],
    ["a history signed for another cluster", { histories: [hist("00000002.history", st("00000002.history", "1"))] }, /00000002\.history was signed for the cluster with system identifier 1, not 7312345678901234567/],
    ["a segment whose signature failed", { segments: [seg("000000010000000000000003.gz"), seg("000000010000000000000004.gz", null, "WAL file 000000010000000000000004.gz: its signature is missing")] }, /000000010000000000000004\.gz: its signature is missing/],
    ["a segment without a statement", { segments: [seg("000000010000000000000004.gz", null)] }, /000000010000000000000004\.gz is not signed/],
    ["the base on timeline 2 needs no history for it", { baseTimeline: 2, segments: [seg("000000020000000000000004.gz")] }, null],
  ])("%s", (_what, over, expected) => {
    const problem = signedWalProblem(input(over));
    if (expected === null) expect(problem).toBeNull();
    else expect(problem).toMatch(expected);
  });
});

describe("encryptedAmong", () => {
  it("names the encrypted segments and history files by their stem", () => {
    expect(encryptedAmong(["000000010000000000000003.gz", "000000010000000000000004.gz.age", "00000002.history.gz.age", "000000010000000000000005.gz.partial.age", "junk.age"])).toEqual([
      "000000010000000000000004",
      "00000002.history",
      "000000010000000000000005",
    ]);
  });
});
