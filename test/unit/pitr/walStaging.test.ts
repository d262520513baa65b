// stageWal on real files: each segment read once and acted on from those bytes. History files
// are staged from the bytes their planning read decoded, under the plain name recovery asks
// for; a segment is decompressed (a .partial as far as it goes, padded to the segment size),
// checked against its signature with a verify key (unsigned, altered, renamed and foreign ones
// refused by name), decrypted with the identity (none or a wrong one refused naming
// AGE_IDENTITY_FILE), and a symlink planted under its name is not followed.
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { ExitCode } from "../../../lib/core/errors.js";
import { parseIdentity } from "../../../lib/keys/ageIdentity.js";
import type { StageTrust } from "../../../lib/pitr/walStaging.js";
import { STAGED_WAL_DIR, localWalSource, stageWal } from "../../../lib/pitr/walStaging.js";
import { signWalStatement, walStatement } from "../../../lib/wal/signature.js";
import { tempDir } from "../../helpers.js";

const HISTORY = "1\t0/3000000\tno recovery target specified\n";
const SEG = 1 << 20; // a small segment size keeps the files small; stageWal takes it as given
const SYSID = "7312345678901234567";
const log = pino({ level: "silent" });
const env = { PATH: process.env.PATH };
const { privateKey, publicKey } = generateKeyPairSync("ed25519");
const plain: StageTrust = { verifyKey: null, identity: null, env, systemIdentifier: SYSID };
const signedTrust: StageTrust = { ...plain, verifyKey: publicKey };

function setup(): { backupDir: string; dataDir: string; wal: string } {
  const backupDir = tempDir("pgsb-staging-");
  const dataDir = join(backupDir, "data");
  mkdirSync(join(backupDir, "wal"));
  mkdirSync(dataDir);
  return { backupDir, dataDir, wal: join(backupDir, "wal") };
}

/** A segment's raw bytes: a recognisable pattern, not zeros. */
const raw = (seed: number) => Buffer.alloc(SEG, seed);
const staged = (dataDir: string, name: string) => readFileSync(join(dataDir, STAGED_WAL_DIR, name));

function writeSigned(wal: string, name: string, data: Buffer, sysid = SYSID): void {
  writeFileSync(join(wal, name), data);
  writeFileSync(join(wal, `${name}.sig`), signWalStatement(walStatement(name, data, sysid), privateKey));
}

const seg = (source: string) => ({ source, target: source.slice(0, 24), compression: source.includes(".gz") ? ("gzip" as const) : ("none" as const) });

async function refusal(p: Promise<unknown>): Promise<{ exitCode: number; message: string }> {
  try {
    await p;
  } catch (err) {
    return err as { exitCode: number; message: string };
  }
  throw new Error("not refused");
}

describe("stageWal", () => {
  it("stages history files from the decoded bytes under the plain name", async () => {
    const { backupDir, dataDir } = setup();
    await stageWal(localWalSource(backupDir), dataDir, [], [{ name: "00000002.history.gz.age", text: Buffer.from(HISTORY) }], SEG, plain, log);
    expect(staged(dataDir, "00000002.history").toString()).toBe(HISTORY);
  });

  it("decompresses a complete segment, pads a .partial, and refuses a complete one of the wrong size", async () => {
    const { backupDir, dataDir, wal } = setup();
    writeFileSync(join(wal, "000000010000000000000003.gz"), gzipSync(raw(3)));
    // pg_receivewal's segment in progress: a gzip stream without its end.
    writeFileSync(join(wal, "000000010000000000000004.gz.partial"), gzipSync(raw(4).subarray(0, 4096)).subarray(0, -8));
    await stageWal(localWalSource(backupDir), dataDir, [seg("000000010000000000000003.gz"), seg("000000010000000000000004.gz.partial")], [], SEG, plain, log);
    expect(staged(dataDir, "000000010000000000000003").equals(raw(3))).toBe(true);
    const partial = staged(dataDir, "000000010000000000000004");
    expect(partial.length).toBe(SEG);
    expect(partial.subarray(0, 4096).equals(raw(4).subarray(0, 4096))).toBe(true);
    writeFileSync(join(wal, "000000010000000000000005.gz"), gzipSync(raw(5).subarray(0, 1000)));
    mkdirSync(join(backupDir, "other"));
    await expect(stageWal(localWalSource(backupDir), join(backupDir, "other"), [seg("000000010000000000000005.gz")], [], SEG, plain, log).catch((e: Error) => e.message)).resolves.toMatch(
      /000000010000000000000005\.gz .*holds 1000 bytes after decompression, not the segment size/,
    );
  });

  it("does not follow a symlink planted under a segment's name", async () => {
    const { backupDir, dataDir, wal } = setup();
    writeFileSync(join(backupDir, "secret"), raw(9));
    symlinkSync(join(backupDir, "secret"), join(wal, "000000010000000000000003"));
    await expect(stageWal(localWalSource(backupDir), dataDir, [seg("000000010000000000000003")], [], SEG, plain, log)).rejects.toThrow(/cannot be read \(ELOOP\)/);
  });

  it("with a verify key: stages signed segments, refuses unsigned, altered, renamed and foreign ones by name (exit 4)", async () => {
    const { backupDir, dataDir, wal } = setup();
    writeSigned(wal, "000000010000000000000003.gz", gzipSync(raw(3)));
    await stageWal(localWalSource(backupDir), dataDir, [seg("000000010000000000000003.gz")], [], SEG, signedTrust, log);
    expect(staged(dataDir, "000000010000000000000003").equals(raw(3))).toBe(true);

    const cases: [string, () => void, RegExp][] = [
      ["unsigned", () => writeFileSync(join(wal, "000000010000000000000004.gz"), gzipSync(raw(4))), /000000010000000000000004\.gz\.sig is missing: the file is unsigned/],
      [
        "altered after signing",
        () => {
          writeSigned(wal, "000000010000000000000004.gz", gzipSync(raw(4)));
          writeFileSync(join(wal, "000000010000000000000004.gz"), gzipSync(raw(7)));
        },
        /000000010000000000000004\.gz does not match the sha256 its signature covers/,
      ],
      [
        "a genuine segment renamed to another position",
        () => {
          writeSigned(wal, "000000010000000000000009.gz", gzipSync(raw(4)));
          renameSync(join(wal, "000000010000000000000009.gz"), join(wal, "000000010000000000000004.gz"));
          renameSync(join(wal, "000000010000000000000009.gz.sig"), join(wal, "000000010000000000000004.gz.sig"));
        },
        /000000010000000000000004\.gz\.sig is the signature of 000000010000000000000009\.gz, not of 000000010000000000000004\.gz/,
      ],
      ["signed for another cluster", () => writeSigned(wal, "000000010000000000000004.gz", gzipSync(raw(4)), "7000000000000000001"), /signed for the cluster with system identifier 7000000000000000001, not 7312345678901234567/],
    ];
    for (const [what, plant, message] of cases) {
      plant();
      const into = join(backupDir, `data-${what.replace(/\W+/g, "-")}`);
      mkdirSync(into);
      const err = await refusal(stageWal(localWalSource(backupDir), into, [seg("000000010000000000000004.gz")], [], SEG, signedTrust, log));
      expect([what, err.exitCode]).toEqual([what, ExitCode.refused]);
      expect(err.message).toMatch(message);
    }
  });

  it("decrypts an encrypted segment with the identity; none or a wrong one is refused naming AGE_IDENTITY_FILE", async () => {
    const { backupDir, dataDir, wal } = setup();
    const keys = tempDir("pgsb-staging-keys-");
    for (const k of ["a", "b"]) execFileSync("age-keygen", ["-o", join(keys, k)], { stdio: "ignore" });
    const identity = (k: string) => parseIdentity(readFileSync(join(keys, k), "utf8"), join(keys, k));
    const encrypted = execFileSync("age", ["-e", "-r", identity("a").recipients[0] as string], { input: gzipSync(raw(3)) });
    writeSigned(wal, "000000010000000000000003.gz.age", encrypted);
    const s = [seg("000000010000000000000003.gz.age")];
    await stageWal(localWalSource(backupDir), dataDir, s, [], SEG, { ...signedTrust, identity: identity("a") }, log);
    expect(staged(dataDir, "000000010000000000000003").equals(raw(3))).toBe(true);
    expect(statSync(join(dataDir, STAGED_WAL_DIR, "000000010000000000000003")).mode & 0o777).toBe(0o600);
    for (const [id, message] of [
      [null, /000000010000000000000003\.gz\.age is encrypted and AGE_IDENTITY_FILE is not set/],
      [identity("b"), /cannot be decrypted with AGE_IDENTITY_FILE=.*none of its identities is a recipient/],
    ] as const) {
      const into = join(backupDir, `data-${id === null ? "none" : "wrong"}`);
      mkdirSync(into);
      const err = await refusal(stageWal(localWalSource(backupDir), into, s, [], SEG, { ...signedTrust, identity: id }, log));
      expect(err.exitCode).toBe(ExitCode.refused);
      expect(err.message).toMatch(message);
    }
  });
});
