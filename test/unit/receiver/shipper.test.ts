// WalShipper on real folders with real age and a real Ed25519 key: what a round ships from the
// spool into wal/ (history files, completed segments, a snapshot of the segment being
// received), what it leaves in the spool (the newest complete segment, pg_receivewal's resume
// point), what it removes from wal/ (snapshots of a segment that shipped complete), and that a
// snapshot is refreshed only when the segment grew; a resume point after a fork is never shipped.
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { appendFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { isResumePoint, writeResumePoint } from "../../../lib/receiver/resumePoint.js";
import { WalShipper } from "../../../lib/receiver/shipper.js";
import { bytesProblem, checkWalSignature } from "../../../lib/wal/signature.js";
import { tempDir } from "../../helpers.js";

const SYSID = "7312345678901234567";
const log = pino({ level: "silent" });
const { privateKey, publicKey } = generateKeyPairSync("ed25519");

function folders(): { spool: string; archive: string } {
  const dir = tempDir("pgsb-shipper-");
  const spool = join(dir, "spool");
  const archive = join(dir, "wal");
  mkdirSync(spool);
  mkdirSync(archive);
  return { spool, archive };
}

function ageKey(): { identity: string; recipient: string } {
  const identity = join(tempDir("pgsb-shipper-key-"), "id.txt");
  execFileSync("age-keygen", ["-o", identity], { stdio: "ignore" });
  return { identity, recipient: execFileSync("age-keygen", ["-y", identity]).toString().trim() };
}

function signedBy(archive: string, name: string): Buffer {
  const data = readFileSync(join(archive, name));
  const v = checkWalSignature(readFileSync(join(archive, `${name}.sig`), "utf8"), publicKey, name, SYSID);
  if (!v.ok) throw new Error(v.problem);
  expect(bytesProblem(v.statement, data)).toBeNull();
  return data;
}

describe("WalShipper", () => {
  it("ships history files, completed segments and a snapshot, encrypted and signed; keeps the newest complete segment in the spool", async () => {
    const { spool, archive } = folders();
    const key = ageKey();
    const files: Record<string, Buffer> = {
      "00000002.history.gz": gzipSync("1\t0/3000000\tno recovery target specified\n"),
      "000000020000000000000003.gz": gzipSync(Buffer.alloc(4096, 3)),
      "000000020000000000000004.gz": gzipSync(Buffer.alloc(4096, 4)),
      "000000020000000000000005.gz.partial": gzipSync(Buffer.alloc(100, 5)).subarray(0, -8),
    };
    for (const [n, b] of Object.entries(files)) writeFileSync(join(spool, n), b);
    // What direct mode left behind: the plain .partial of a segment that now ships complete, and a killed write's temp file.
    writeFileSync(join(archive, "000000020000000000000004.gz.partial"), "plaintext");
    writeFileSync(join(archive, "000000020000000000000004.gz.age.0123456789abcdef.tmp"), "half");
    const shipper = new WalShipper({ spool, archive, recipients: [key.recipient], signingKey: privateKey, fileMode: 0o640, env: process.env, log });
    await shipper.removeStaleTemps();
    const round = await shipper.ship(SYSID);
    expect(round).toEqual({
      shipped: ["00000002.history.gz.age", "000000020000000000000003.gz.age", "000000020000000000000004.gz.age"],
      snapshots: ["000000020000000000000005.gz.partial.age"],
    });
    expect(readdirSync(archive).sort()).toEqual([...round.shipped, ...round.snapshots].flatMap((n) => [n, `${n}.sig`]).sort());
    for (const stored of [...round.shipped, ...round.snapshots]) {
      const plain = execFileSync("age", ["-d", "-i", key.identity], { input: signedBy(archive, stored) });
      expect(plain.equals(files[stored.replace(/\.age$/, "")] as Buffer)).toBe(true);
    }
    expect(readdirSync(spool).sort()).toEqual(["000000020000000000000004.gz", "000000020000000000000005.gz.partial"]);

    expect(await shipper.ship(SYSID)).toEqual({ shipped: [], snapshots: [] });
    appendFileSync(join(spool, "000000020000000000000005.gz.partial"), "more");
    expect(await shipper.ship(SYSID)).toEqual({ shipped: [], snapshots: ["000000020000000000000005.gz.partial.age"] });
  });

  it("signs plain files under pg_receivewal's own names when it only signs", async () => {
    const { spool, archive } = folders();
    writeFileSync(join(spool, "000000010000000000000003"), Buffer.alloc(8192, 1));
    const shipper = new WalShipper({ spool, archive, recipients: null, signingKey: privateKey, fileMode: 0o640, env: process.env, log });
    expect((await shipper.ship(SYSID)).shipped).toEqual(["000000010000000000000003"]);
    expect(signedBy(archive, "000000010000000000000003").equals(Buffer.alloc(8192, 1))).toBe(true);
  });

  it("ships (and signs) nothing before it knows the cluster the spool's WAL is of", async () => {
    const { spool, archive } = folders();
    writeFileSync(join(spool, "000000010000000000000003"), Buffer.alloc(10, 1));
    const shipper = new WalShipper({ spool, archive, recipients: null, signingKey: privateKey, fileMode: 0o640, env: process.env, log });
    expect(await shipper.ship(null)).toEqual({ shipped: [], snapshots: [] });
    expect(readdirSync(archive)).toEqual([]);
    expect(readdirSync(spool)).toEqual(["000000010000000000000003"]);
  });
});

describe("resume points", () => {
  it.each(["gzip", "lz4", "none"] as const)("a %s resume point is recognised and never shipped; a real segment is not one", async (compression) => {
    const { spool, archive } = folders();
    const name = await writeResumePoint(spool, 1, 4n, 1 << 20, compression);
    expect(name).toBe(`000000010000000000000004${{ gzip: ".gz", lz4: ".lz4", none: "" }[compression]}`);
    expect(await isResumePoint(readFileSync(join(spool, name)), compression)).toBe(true);
    const real = Buffer.concat([Buffer.from([0x10, 0xd1, 2, 0]), Buffer.alloc(8188, 1)]);
    expect(await isResumePoint(compression === "gzip" ? gzipSync(real) : compression === "lz4" ? execFileSync("lz4", ["-c"], { input: real }) : real, compression)).toBe(false);
    const shipper = new WalShipper({ spool, archive, recipients: null, signingKey: privateKey, fileMode: 0o640, env: process.env, log });
    expect(await shipper.ship(SYSID)).toEqual({ shipped: [], snapshots: [] });
    expect(readdirSync(spool)).toEqual([name]);
    expect(readdirSync(archive)).toEqual([]);
  });
});
