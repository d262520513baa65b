// Secrets never meet unsigned SQL. verify --restore runs a backup's SQL as a superuser in a
// scratch cluster inside the task, where `COPY … TO PROGRAM` runs any command as the server's
// OS user. A forged, unsigned backup that cats the age identity is refused there while the
// server could read the identity (a Docker secret's default mode 0444), runs only where it
// cannot (the server runs as another user and the file is 0600), and a signed chain runs.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, cpSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StoredHash } from "../../lib/store/chunks.js";
import { run as backup } from "../../tasks/backup.js";
import type { ClusterInfo } from "../cluster.js";
import { ClusterSet, psqlScript } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

const clusters = new ClusterSet();
const keys = tempDir("pgsb-secrets-keys-");
const IDENTITY = join(keys, "identity.txt");
const SIGN = join(keys, "sign.pem");
const VERIFY = join(keys, "verify.pem");
const stolen = join(tmpdir(), `pgsb-stolen-${process.pid}`);
let src: ClusterInfo;
let forgedDir: string;
let signedDir: string;

const sha256 = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

beforeAll(async () => {
  execFileSync("age-keygen", ["-o", IDENTITY], { stdio: "ignore" });
  execFileSync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", SIGN]);
  execFileSync("openssl", ["pkey", "-in", SIGN, "-pubout", "-out", VERIFY]);
  src = await clusters.create("secrets-src");
  psqlScript(src, "postgres", "CREATE DATABASE shop;");
  psqlScript(src, "shop", "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 10);");
  signedDir = tempDir("pgsb-secrets-signed-");
  const args = { tier: "full" as const, force: false, dryRun: false, allowNewCluster: false };
  const signed = await backup(testConfig(src, signedDir, { BACKUP_COMPRESSION: "none", BACKUP_SIGNING_KEY_FILE: SIGN }), testDeps(), args);
  if (signed.status !== "written") throw new Error("no backup");
  // The forgery: the same backup, unsigned, whose shop section copies the identity out with COPY … TO PROGRAM.
  forgedDir = tempDir("pgsb-secrets-forged-");
  cpSync(signedDir, forgedDir, { recursive: true });
  const path = join(forgedDir, "full", signed.name);
  const data = Buffer.from(readFileSync(path, "utf8").replace("CREATE TABLE public.items (", () => `DO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''cat ${IDENTITY} > ${stolen}'''; END $$;\nCREATE TABLE public.items (`));
  writeFileSync(path, data);
  const hash = new StoredHash();
  hash.update(data);
  const manifest = JSON.parse(readFileSync(`${path}.json`, "utf8")) as Record<string, unknown>;
  const text = JSON.stringify({ ...manifest, sha256: sha256(data), chunks: hash.finish().chunks, compressedBytes: data.length, rawBytes: data.length }, null, 2) + "\n";
  writeFileSync(`${path}.json`, text);
  writeFileSync(`${path}.sha256`, `${sha256(data)}  ${signed.name}\n${sha256(text)}  ${signed.name}.json\n`);
  rmSync(`${path}.sha256.sig`);
});

afterAll(() => {
  clusters.destroyAll();
  rmSync(stolen, { force: true });
});

type Report = { checks: { name: string; ok: boolean; message: string }[] };
const restoreCheck = (stdout: string) => (JSON.parse(stdout) as Report).checks.find((c) => c.name === "restore");

describe("verify --restore of an unsigned chain", () => {
  it("is not attempted while the scratch server could read the age identity (mode 0444), naming it", async () => {
    chmodSync(IDENTITY, 0o444);
    const r = await runCli(["verify", "--restore", "--json"], cliEnv(src, forgedDir, { AGE_IDENTITY_FILE: IDENTITY }));
    expect(r.code, r.stderr).toBe(5);
    expect(restoreCheck(r.stdout)?.message).toMatch(new RegExp(`not attempted: the newest chain is unsigned .*AGE_IDENTITY_FILE=${IDENTITY.replace(/\./g, "\\.")}.*Unsigned SQL never runs beside a secret`));
    expect(existsSync(stolen)).toBe(false);
  });

  it("runs where the server cannot read it (0600, another OS user): its COPY … TO PROGRAM gets nothing", async () => {
    chmodSync(IDENTITY, 0o600);
    const r = await runCli(["verify", "--restore", "--json"], cliEnv(src, forgedDir, { AGE_IDENTITY_FILE: IDENTITY }));
    expect(restoreCheck(r.stdout)).toBeDefined();
    expect(restoreCheck(r.stdout)?.message).not.toMatch(/not attempted/);
    const got = existsSync(stolen) ? readFileSync(stolen, "utf8") : "";
    expect(got).not.toContain("AGE-SECRET-KEY");
    rmSync(stolen, { force: true });
  });
});

describe("verify --restore of a signed chain", () => {
  it("runs beside the identity, whatever its mode", async () => {
    chmodSync(IDENTITY, 0o444);
    const r = await runCli(["verify", "--restore", "--json"], cliEnv(src, signedDir, { AGE_IDENTITY_FILE: IDENTITY, BACKUP_VERIFY_KEY_FILE: VERIFY }));
    expect(restoreCheck(r.stdout)).toMatchObject({ ok: true });
  });
});
