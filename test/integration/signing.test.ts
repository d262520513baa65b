// Signed backups on real clusters: a backup with BACKUP_SIGNING_KEY_FILE passes the stock
// check (openssl pkeyutl -rawin, sha256sum -c) and restores with BACKUP_VERIFY_KEY_FILE; a
// forged backup — SQL running `COPY … TO PROGRAM` with matching checksums and manifest, but
// no signature or a stale one — is refused by every reader before anything is touched.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run as backup } from "../../tasks/backup.js";
import type { ClusterInfo } from "../cluster.js";
import { StoredHash } from "../../lib/store/chunks.js";
import { ClusterSet, psqlScript, sql } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

const clusters = new ClusterSet();
const keys = tempDir("pgsb-sig-keys-");
const SIGN = join(keys, "sign.pem");
const VERIFY = join(keys, "verify.pem");
const withKey = { BACKUP_VERIFY_KEY_FILE: VERIFY };
let src: ClusterInfo;
let empty: ClusterInfo;
let signedDir: string;
let unsignedDir: string;
let fullName: string;

const sha256 = (b: Buffer | string): string => createHash("sha256").update(b).digest("hex");
const databases = async (c: ClusterInfo) => (await sql(c, "postgres", "SELECT datname FROM pg_database WHERE datname NOT LIKE 'template%' ORDER BY 1")).rows.map((r: { datname: string }) => r.datname);

/**
 * A copy of the signed BACKUP_DIR whose full runs `COPY … TO PROGRAM` first: data, manifest
 * and .sha256 all consistent, as anyone who can write the share could make it. The .sig is
 * removed ("missing") or left as it was ("stale"). The COPY runs as dynamic SQL in a DO block:
 * server-side SQL, which psql's restricted mode has no reason to refuse, which is why only a
 * signature can stop it.
 */
function forged(sig: "missing" | "stale"): { dir: string; marker: string } {
  const dir = tempDir("pgsb-forged-");
  cpSync(signedDir, dir, { recursive: true });
  // Where the server (running as the postgres OS user) can write.
  const marker = join(tmpdir(), `pgsb-pwned-${process.pid}-${sig}`);
  rmSync(marker, { force: true });
  const path = join(dir, "full", fullName);
  const data = Buffer.from(readFileSync(path, "utf8").replace("CREATE TABLE public.items (", () => `DO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch ${marker}'''; END $$;\nCREATE TABLE public.items (`));
  writeFileSync(path, data);
  const manifest = JSON.parse(readFileSync(`${path}.json`, "utf8")) as Record<string, unknown>;
  const hash = new StoredHash();
  hash.update(data);
  Object.assign(manifest, { sha256: sha256(data), chunks: hash.finish().chunks, compressedBytes: data.length, rawBytes: data.length });
  const manifestText = JSON.stringify(manifest, null, 2) + "\n";
  writeFileSync(`${path}.json`, manifestText);
  writeFileSync(`${path}.sha256`, `${sha256(data)}  ${fullName}\n${sha256(manifestText)}  ${fullName}.json\n`);
  if (sig === "missing") rmSync(`${path}.sha256.sig`);
  expect(spawnSync("sha256sum", ["-c", `${fullName}.sha256`], { cwd: join(dir, "full") }).status).toBe(0);
  return { dir, marker };
}

beforeAll(async () => {
  execFileSync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", SIGN]);
  execFileSync("openssl", ["pkey", "-in", SIGN, "-pubout", "-out", VERIFY]);
  src = await clusters.create("sig-src");
  empty = await clusters.create("sig-empty");
  psqlScript(src, "postgres", "CREATE DATABASE shop;");
  psqlScript(src, "shop", "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 50);");
  signedDir = tempDir("pgsb-signed-");
  unsignedDir = tempDir("pgsb-unsigned-");
  const args = { tier: "full" as const, force: false, dryRun: false, allowNewCluster: false };
  const signed = await backup(testConfig(src, signedDir, { BACKUP_COMPRESSION: "none", BACKUP_SIGNING_KEY_FILE: SIGN }), testDeps(), args);
  const unsigned = await backup(testConfig(src, unsignedDir, { BACKUP_COMPRESSION: "none" }), testDeps(), args);
  if (signed.status !== "written" || unsigned.status !== "written") throw new Error("no full backup");
  fullName = signed.name;
});

afterAll(() => clusters.destroyAll());

describe("a backup with BACKUP_SIGNING_KEY_FILE", () => {
  it("writes a .sig that openssl verifies over a .sha256 that sha256sum -c checks, data and manifest", () => {
    const folder = join(signedDir, "full");
    const o = spawnSync("openssl", ["pkeyutl", "-verify", "-pubin", "-inkey", VERIFY, "-rawin", "-in", `${fullName}.sha256`, "-sigfile", `${fullName}.sha256.sig`], { cwd: folder, encoding: "utf8" });
    expect(o.status, o.stderr).toBe(0);
    expect(o.stdout).toContain("Signature Verified Successfully");
    const s = spawnSync("sha256sum", ["-c", `${fullName}.sha256`], { cwd: folder, encoding: "utf8" });
    expect(s.status, s.stderr).toBe(0);
    expect(s.stdout).toBe(`${fullName}: OK\n${fullName}.json: OK\n`);
  });

  it("restores, lists, verifies and cleans up with BACKUP_VERIFY_KEY_FILE", async () => {
    const dst = await clusters.create("sig-dst");
    const r = await runCli(["restore-latest"], cliEnv(dst, signedDir, withKey));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("signatures and checksums verified for 1 file(s) as they were read, each once (1 chunk by chunk, 0 by whole-file hash)");
    expect((await sql(dst, "shop", "SELECT count(*)::int AS n FROM items")).rows).toEqual([{ n: 50 }]);
    expect((await runCli(["list-databases", fullName], cliEnv(dst, signedDir, withKey))).code).toBe(0);
    const v = await runCli(["verify"], cliEnv(src, signedDir, withKey));
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).toMatch(/^PASS {2}signature +- +the 1 file\(s\) of the newest chain are signed/m);
    expect((await runCli(["cleanup", "--dry-run"], cliEnv(src, signedDir, withKey))).code).toBe(0);
  });

  it("with a flipped byte in its manifest fails sha256sum -c, and restore-latest and verify refuse it", async () => {
    const dir = tempDir("pgsb-flipped-");
    cpSync(signedDir, dir, { recursive: true });
    const manifest = join(dir, "full", `${fullName}.json`);
    writeFileSync(manifest, readFileSync(manifest, "utf8").replace('"shop"', '"shoq"'));
    expect(spawnSync("sha256sum", ["-c", `${fullName}.sha256`], { cwd: join(dir, "full") }).status).not.toBe(0);
    const r = await runCli(["restore-latest"], cliEnv(empty, dir, withKey));
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(`${fullName}: manifest ${fullName}.json was changed after the backup`);
    const v = await runCli(["verify"], cliEnv(src, dir));
    expect(v.code).toBe(5);
    expect(v.stdout).toMatch(new RegExp(`^FAIL {2}checksum +${fullName}`, "m"));
  });
});

describe.each(["missing", "stale"] as const)("a forged backup with its signature %s", (sig) => {
  const why = sig === "missing" ? "is missing: the backup is unsigned" : "does not match";
  let f: { dir: string; marker: string };
  beforeAll(() => {
    f = forged(sig);
  });

  it("is refused by restore-latest, restore-full and restore-database (exit 4), nothing touched", async () => {
    for (const args of [["restore-latest"], ["restore-full", fullName], ["restore-database", fullName, "shop"]]) {
      const r = await runCli(args, cliEnv(empty, f.dir, withKey));
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(4);
      expect(r.stderr).toContain(`restore refused, nothing was changed: ${fullName}: signature ${fullName}.sha256.sig ${why}`);
      expect(r.stderr).toContain("restore only backups signed with the key whose public half BACKUP_VERIFY_KEY_FILE holds");
    }
    expect(existsSync(f.marker)).toBe(false);
    expect(await databases(empty)).toEqual(["postgres"]);
  });

  it("is refused by auto-restore on a wiped cluster (exit 4)", async () => {
    const r = await runCli(["auto-restore", "--wait", "5"], cliEnv(empty, f.dir, withKey));
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(`${fullName}: signature ${fullName}.sha256.sig ${why}`);
    expect(existsSync(f.marker)).toBe(false);
    expect(await databases(empty)).toEqual(["postgres"]);
  });

  it("is refused by list-databases (exit 4)", async () => {
    const r = await runCli(["list-databases", fullName], cliEnv(empty, f.dir, withKey));
    expect(r.code).toBe(4);
    expect(r.stderr).toContain(`list-databases refused: ${fullName}: signature ${fullName}.sha256.sig ${why}`);
  });

  it("fails verify (exit 5) with a signature check naming the file, and verify --restore restores nothing", async () => {
    const r = await runCli(["verify", "--restore"], cliEnv(src, f.dir, withKey));
    expect(r.code, r.stderr).toBe(5);
    expect(r.stdout).toMatch(new RegExp(`^FAIL {2}signature +${fullName.replace(/\./g, "\\.")} +${fullName.replace(/\./g, "\\.")}: signature`, "m"));
    expect(r.stdout).toMatch(/^FAIL {2}restore +- +not attempted: the newest chain is not signed/m);
    expect(r.stdout).toMatch(/^PASS {2}checksum /m);
    expect(existsSync(f.marker)).toBe(false);
  });

  it("without BACKUP_VERIFY_KEY_FILE restores, running its COPY … TO PROGRAM as superuser: what signing stops", async () => {
    const victim = await clusters.create(`sig-victim-${sig}`);
    const r = await runCli(["restore-database", fullName, "shop"], cliEnv(victim, f.dir));
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(f.marker)).toBe(true);
    rmSync(f.marker);
  });

  it("makes cleanup refuse while it is the newest backup (exit 4)", async () => {
    const r = await runCli(["cleanup"], cliEnv(src, f.dir, withKey));
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain(`cleanup refused, nothing deleted: the newest backup ${fullName} failed verification (${fullName}: signature ${fullName}.sha256.sig ${why}`);
    expect(existsSync(join(f.dir, "full", fullName))).toBe(true);
  });
});

describe("switching signing on", () => {
  it("makes the next incremental a signed full when only unsigned backups exist, which BACKUP_VERIFY_KEY_FILE then accepts", async () => {
    const dir = tempDir("pgsb-switch-");
    cpSync(unsignedDir, dir, { recursive: true, verbatimSymlinks: true });
    await sql(src, "shop", "INSERT INTO items VALUES (51)");
    const deps = testDeps();
    const r = await backup(testConfig(src, dir, { BACKUP_COMPRESSION: "none", BACKUP_SIGNING_KEY_FILE: SIGN }), deps, { tier: "incremental", force: false, dryRun: false, allowNewCluster: false });
    expect(r).toMatchObject({ status: "written", tier: "full" });
    expect(deps.logs.some((l) => String(l.msg).includes("signed with BACKUP_SIGNING_KEY_FILE's key exists: taking a full instead of a incremental"))).toBe(true);
    const v = await runCli(["verify"], cliEnv(src, dir, withKey));
    expect(v.code, v.stdout).toBe(0);
    await sql(src, "shop", "DELETE FROM items WHERE id = 51");
  });
});

describe("unsigned backups", () => {
  it("are accepted without BACKUP_VERIFY_KEY_FILE, and refused as unsigned with it", async () => {
    const refused = await runCli(["restore-latest"], cliEnv(empty, unsignedDir, withKey));
    expect(refused.code).toBe(4);
    expect(refused.stderr).toContain("is missing: the backup is unsigned (written without BACKUP_SIGNING_KEY_FILE) or forged");
    const dst = await clusters.create("sig-unsigned");
    const r = await runCli(["restore-latest"], cliEnv(dst, unsignedDir));
    expect(r.code, r.stderr).toBe(0);
    expect((await sql(dst, "shop", "SELECT count(*)::int AS n FROM items")).rows).toEqual([{ n: 50 }]);
    expect((await runCli(["verify"], cliEnv(src, unsignedDir))).code).toBe(0);
  });
});
