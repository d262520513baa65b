// A backup committed with a signing key, checked with the stock tools docs/security.md names
// (openssl pkeyutl -rawin, sha256sum -c) and with ours; every tampering is caught by both.
import { execFileSync, spawnSync } from "node:child_process";
import { createPrivateKey, createPublicKey } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { testManifest } from "../../manifests.js";
import { checkSignature, verifyBackupFile } from "../../../lib/store/signature.js";
import { readTrusted } from "../../../lib/store/trust.js";
import { sha256File } from "../../../lib/store/checksum.js";
import { backupSidecars, commitFile } from "../../../lib/store/storage.js";
import { tempDir } from "../../helpers.js";

const NAME = "20260301_030000_full.sql.bz2";
const keys = tempDir("pgsb-sigkeys-");
let signKey: KeyObject;
let verifyKey: KeyObject;
let otherKey: KeyObject;
let dir: string;
let path: string;

beforeAll(() => {
  const openssl = (...args: string[]) => execFileSync("openssl", args, { stdio: "pipe" });
  openssl("genpkey", "-algorithm", "ed25519", "-out", join(keys, "sign.pem"));
  openssl("pkey", "-in", join(keys, "sign.pem"), "-pubout", "-out", join(keys, "verify.pem"));
  openssl("genpkey", "-algorithm", "ed25519", "-out", join(keys, "other.pem"));
  signKey = createPrivateKey(readFileSync(join(keys, "sign.pem")));
  verifyKey = createPublicKey(readFileSync(join(keys, "verify.pem")));
  otherKey = createPrivateKey(readFileSync(join(keys, "other.pem")));
});

/** Commits a small fake backup the way a backup or a mirror download does. */
async function commit(key: KeyObject | null, name = NAME): Promise<void> {
  const partial = join(dir, `${name}.partial`);
  writeFileSync(partial, "SELECT 'a backup';\n");
  const manifest = testManifest(name, { sha256: await sha256File(partial), included: ["app"], databases: ["app"] });
  await commitFile(partial, join(dir, name), backupSidecars(name, manifest, key), 0o640);
}

/** docs/security.md's stock check, run in the tier folder. */
function stockVerify(): { openssl: number | null; sha256sum: number | null; output: string } {
  const o = spawnSync("openssl", ["pkeyutl", "-verify", "-pubin", "-inkey", join(keys, "verify.pem"), "-rawin", "-in", `${NAME}.sha256`, "-sigfile", `${NAME}.sha256.sig`], { cwd: dir, encoding: "utf8" });
  const s = spawnSync("sha256sum", ["-c", `${NAME}.sha256`], { cwd: dir, encoding: "utf8" });
  return { openssl: o.status, sha256sum: s.status, output: o.stdout + o.stderr + s.stdout + s.stderr };
}

function flipLastByte(file: string): void {
  const b = readFileSync(file);
  b[b.length - 2] = (b[b.length - 2] as number) ^ 1;
  writeFileSync(file, b);
}

beforeEach(() => {
  dir = tempDir("pgsb-signed-");
  path = join(dir, NAME);
});

describe("a signed backup", () => {
  it("has a two-line .sha256 and a 64-byte .sig that openssl and sha256sum -c accept", async () => {
    await commit(signKey);
    expect(readFileSync(path + ".sha256", "utf8")).toMatch(new RegExp(`^[0-9a-f]{64}  ${NAME}\\n[0-9a-f]{64}  ${NAME}\\.json\\n$`));
    expect(readFileSync(path + ".sha256.sig")).toHaveLength(64);
    const r = stockVerify();
    expect(r, r.output).toMatchObject({ openssl: 0, sha256sum: 0 });
    expect(r.output).toMatch(/Signature Verified Successfully/);
    expect(r.output).toContain(`${NAME}: OK\n${NAME}.json: OK`);
    expect(await verifyBackupFile(path, undefined, verifyKey)).toMatchObject({ ok: true, manifestCovered: true });
    expect(await readTrusted(path, NAME, verifyKey, true)).toMatchObject({ ok: true, signed: true, expect: { name: NAME, chunks: null } });
  });

  it.each([
    ["the manifest", ".json", /manifest 20260301_030000_full\.sql\.bz2\.json was changed after the backup/],
    ["the data file", "", /checksum mismatch/],
  ])("with a flipped byte in %s fails sha256sum -c and our check; the signature still verifies", async (_label, suffix, problem) => {
    await commit(signKey);
    flipLastByte(path + suffix);
    const r = stockVerify();
    expect(r.openssl).toBe(0);
    expect(r.sha256sum).not.toBe(0);
    expect(await verifyBackupFile(path, undefined, verifyKey)).toEqual({ ok: false, problem: expect.stringMatching(problem) });
  });

  it("whose .sha256 was rewritten to match forged content fails the signature, in openssl and ours", async () => {
    await commit(signKey);
    writeFileSync(path, "COPY x TO PROGRAM 'id';\n");
    const text = readFileSync(path + ".sha256", "utf8").replace(/^[0-9a-f]{64}/, await sha256File(path));
    writeFileSync(path + ".sha256", text);
    const r = stockVerify();
    expect(r.sha256sum).toBe(0);
    expect(r.openssl).not.toBe(0);
    expect(await checkSignature(path, verifyKey)).toEqual({ ok: false, missing: false, problem: expect.stringMatching(/^20260301_030000_full\.sql\.bz2: signature 20260301_030000_full\.sql\.bz2\.sha256\.sig does not match: .*changed after signing, or another key signed it; restore only backups signed with/) });
    expect(await readTrusted(path, NAME, verifyKey, true)).toEqual({ ok: false, problem: expect.stringMatching(/does not match/), untrusted: true });
  });
});

describe("a forged or unsigned backup (valid checksums)", () => {
  it("without a .sig: accepted without a verify key, refused as missing with one", async () => {
    await commit(null);
    expect(existsSync(path + ".sha256.sig")).toBe(false);
    expect(spawnSync("sha256sum", ["-c", `${NAME}.sha256`], { cwd: dir }).status).toBe(0);
    expect(await verifyBackupFile(path, undefined, null)).toMatchObject({ ok: true });
    const v = await verifyBackupFile(path, undefined, verifyKey);
    expect(v).toEqual({ ok: false, problem: expect.stringMatching(/signature 20260301_030000_full\.sql\.bz2\.sha256\.sig is missing: the backup is unsigned \(written without BACKUP_SIGNING_KEY_FILE\) or forged; restore only backups signed/) });
    expect(await checkSignature(path, verifyKey)).toMatchObject({ ok: false, missing: true });
  });

  it("signed with another key: refused as not matching", async () => {
    await commit(otherKey);
    expect(stockVerify().openssl).not.toBe(0);
    expect(await checkSignature(path, verifyKey)).toMatchObject({ ok: false, missing: false });
  });

  it("with a garbage .sig: refused as not matching", async () => {
    await commit(signKey);
    writeFileSync(path + ".sha256.sig", "short");
    expect(await checkSignature(path, verifyKey)).toMatchObject({ ok: false, missing: false });
  });

  it("signed over a one-line .sha256 (the manifest uncovered): refused", async () => {
    await commit(null);
    writeFileSync(path + ".sha256", `${await sha256File(path)}  ${NAME}\n`);
    const { sign } = await import("node:crypto");
    writeFileSync(path + ".sha256.sig", sign(null, readFileSync(path + ".sha256"), signKey));
    expect(await checkSignature(path, verifyKey)).toMatchObject({ ok: false, problem: expect.stringMatching(/does not cover the manifest/) });
  });

  it("an unsigned commit over an old signed one removes the stale .sig", async () => {
    await commit(signKey);
    await commit(null);
    expect(existsSync(path + ".sha256.sig")).toBe(false);
  });
});
