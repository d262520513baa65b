// The WAL signature format: what a signature binds (name, size, sha256, cluster) and every way
// a signature file can fail to vouch for a file, table-tested with a real Ed25519 pair.
import { generateKeyPairSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import { bytesProblem, checkWalSignature, signWalStatement, walStatement } from "../../../lib/wal/signature.js";

const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const other = generateKeyPairSync("ed25519");
const NAME = "000000010000000000000003.gz.age";
const SYSID = "7312345678901234567";
const DATA = Buffer.from("the stored bytes of one WAL file");
const SIG = signWalStatement(walStatement(NAME, DATA, SYSID), privateKey);

describe("WAL signatures", () => {
  it("round-trips: the statement names the file, the cluster, the size and the sha256", () => {
    expect(SIG.split("\n").slice(0, 5)).toEqual([
      "pg-swarm-backup WAL signature 1",
      `file ${NAME}`,
      `system-identifier ${SYSID}`,
      `bytes ${DATA.length}`,
      expect.stringMatching(/^sha256 [0-9a-f]{64}$/),
    ]);
    const v = checkWalSignature(SIG, publicKey, NAME, SYSID);
    expect(v.ok).toBe(true);
    if (v.ok) expect(bytesProblem(v.statement, DATA)).toBeNull();
    // The cluster is checked once it is known (a history file read before the plan chose its base).
    expect(checkWalSignature(SIG, publicKey, NAME, null).ok).toBe(true);
  });

  it.each([
    ["another key signed it", () => checkWalSignature(signWalStatement(walStatement(NAME, DATA, SYSID), other.privateKey), publicKey, NAME, SYSID), /does not match: .*another key/],
    ["a line was changed", () => checkWalSignature(SIG.replace(`bytes ${DATA.length}`, "bytes 1"), publicKey, NAME, SYSID), /does not match/],
    ["the signature of another file", () => checkWalSignature(SIG, publicKey, "000000010000000000000004.gz.age", SYSID), /is the signature of 000000010000000000000003\.gz\.age, not of 000000010000000000000004\.gz\.age/],
    ["another cluster", () => checkWalSignature(SIG, publicKey, NAME, "7000000000000000001"), /signed for the cluster with system identifier 7312345678901234567, not 7000000000000000001/],
    ["not a signature file", () => checkWalSignature("hello\n", publicKey, NAME, SYSID), /not a WAL signature file/],
    ["an extra line", () => checkWalSignature(SIG + "more\n", publicKey, NAME, SYSID), /not a WAL signature file/],
    ["a bad signature line", () => checkWalSignature(SIG.replace(/^ed25519 .*$/m, "ed25519 xyz"), publicKey, NAME, SYSID), /holds no Ed25519 signature/],
    ["a name with a slash", () => checkWalSignature(SIG.replace(`file ${NAME}`, "file ../x"), publicKey, NAME, SYSID), /line 2/],
  ])("refuses %s", (_what, check, message) => {
    const v = check();
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.problem).toMatch(message);
  });

  it.each([
    ["one byte changed", Buffer.from("the stored bytes of one WAL filf"), /does not match the sha256/],
    ["cut short", DATA.subarray(0, 10), /holds 10 bytes, but its signature covers 32/],
    ["grown", Buffer.concat([DATA, Buffer.from("x")]), /holds 33 bytes/],
  ])("a file %s is not the one signed", (_what, data, message) => {
    expect(bytesProblem(walStatement(NAME, DATA, SYSID), data)).toMatch(message);
  });
});
