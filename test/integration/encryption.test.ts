// Encryption at rest with the real age binary on real clusters: encrypted backups hold no
// plaintext, restore with AGE_IDENTITY_FILE (and with stock tools: age -d | bunzip2 | psql),
// are refused before anything is touched without the right identity or when altered, and mix
// with plain backups in one chain across a key rotation.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, readFileSync, readdirSync, readlinkSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterInfo } from "../cluster.js";
import { StoredHash } from "../../lib/store/chunks.js";
import { ClusterSet, clusterEnv, normalisedDumpall, psqlScript, sql } from "../cluster.js";
import { cliEnv, runCli, snapshot, tempDir } from "../helpers.js";

const clusters = new ClusterSet();
const keys = tempDir("pgsb-age-keys-");
const ID1 = join(keys, "id1.txt");
const ID2 = join(keys, "id2.txt");
const BOTH = join(keys, "both.txt");
const REC1 = join(keys, "rec1.txt");
const REC2 = join(keys, "rec2.txt");
const SECRET_ROW = "card-4111-1111-1111-1111";
let src: ClusterInfo;
let dir: string;
let pub1: string;
let pub2: string;

const sha256 = (b: Buffer | string): string => createHash("sha256").update(b).digest("hex");
const databases = async (c: ClusterInfo) => (await sql(c, "postgres", "SELECT datname FROM pg_database WHERE datname NOT LIKE 'template%' ORDER BY 1")).rows.map((r: { datname: string }) => r.datname);
const files = (tier: string) => readdirSync(join(dir, tier)).filter((f) => /^\d{8}_\d{6}_\w+\.sql(\.(bz2|zst|gz))?(\.age)?$/.test(f)).sort();

async function cli(args: string[], c: ClusterInfo, extra: Record<string, string> = {}) {
  return runCli(args, cliEnv(c, dir, extra));
}

beforeAll(async () => {
  execFileSync("age-keygen", ["-o", ID1], { stdio: "ignore" });
  execFileSync("age-keygen", ["-o", ID2], { stdio: "ignore" });
  pub1 = execFileSync("age-keygen", ["-y", ID1]).toString().trim();
  pub2 = execFileSync("age-keygen", ["-y", ID2]).toString().trim();
  writeFileSync(REC1, `# backups of the shop cluster\n${pub1}\n`);
  writeFileSync(REC2, `${pub2}\n`);
  writeFileSync(BOTH, readFileSync(ID1, "utf8") + readFileSync(ID2, "utf8"));
  src = await clusters.create("age-src");
  psqlScript(
    src,
    "postgres",
    `CREATE ROLE shop_owner LOGIN PASSWORD 'owner-pw-123';
     CREATE DATABASE shop OWNER shop_owner;`,
  );
  psqlScript(src, "shop", `CREATE TABLE secret_items (id int PRIMARY KEY, card text); INSERT INTO secret_items SELECT g, '${SECRET_ROW}-' || g FROM generate_series(1, 200) g;`);
  dir = tempDir("pgsb-age-dir-");
});

afterAll(() => clusters.destroyAll());

describe("a bad AGE_RECIPIENTS_FILE", () => {
  it("fails the backup before any dump starts: exit 2 naming the variable and the line, nothing written", async () => {
    const bad = join(keys, "bad.txt");
    writeFileSync(bad, `${pub1}\n${pub2.slice(0, -1)}${pub2.endsWith("x") ? "y" : "x"}\n`); // one character changed: Bech32 catches it
    const empty = tempDir("pgsb-age-bad-");
    const r = await runCli(["backup", "full"], cliEnv(src, empty, { AGE_RECIPIENTS_FILE: bad }));
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`AGE_RECIPIENTS_FILE=${bad} line 2`);
    expect(r.stderr).toContain("checksum fails");
    expect(readdirSync(empty)).toEqual([]);

    writeFileSync(bad, readFileSync(ID1));
    const priv = await runCli(["backup", "full"], cliEnv(src, empty, { AGE_RECIPIENTS_FILE: bad }));
    expect(priv.code).toBe(2);
    expect(priv.stderr).toContain("is a private identity");
    expect(priv.stderr + priv.stdout).not.toMatch(/AGE-SECRET-KEY-1[0-9A-Z]{10}/);
    expect(readdirSync(empty)).toEqual([]);
  });
});

describe("an encrypted full and incremental", () => {
  let full: string;
  let incr: string;
  let expected: string;

  beforeAll(async () => {
    const f = await cli(["backup", "full"], src, { AGE_RECIPIENTS_FILE: REC1, BACKUP_COMPRESSION: "bzip2" });
    expect(f.code, f.stderr).toBe(0);
    psqlScript(src, "shop", `INSERT INTO secret_items VALUES (1000, '${SECRET_ROW}-late'); CREATE ROLE auditor;`);
    const i = await cli(["backup", "incremental"], src, { AGE_RECIPIENTS_FILE: REC1, BACKUP_COMPRESSION: "none" });
    expect(i.code, i.stderr).toBe(0);
    full = files("full")[0] as string;
    incr = files("incremental")[0] as string;
    expected = normalisedDumpall(src);
  });

  it("are named .age, hold no plaintext SQL, and their manifests no table names or row counts", () => {
    expect(full).toMatch(/^\d{8}_\d{6}_full\.sql\.bz2\.age$/);
    expect(incr).toMatch(/^\d{8}_\d{6}_incremental\.sql\.age$/);
    for (const path of [join(dir, "full", full as string), join(dir, "incremental", incr as string)]) {
      const bytes = readFileSync(path);
      expect(bytes.subarray(0, 21).toString()).toBe("age-encryption.org/v1");
      for (const plain of ["CREATE ROLE", "secret_items", SECRET_ROW, "owner-pw", "SCRAM-SHA-256"]) expect(bytes.includes(plain), `${plain} in ${path}`).toBe(false);
      const manifest = readFileSync(`${path}.json`, "utf8");
      expect(manifest).not.toContain("secret_items");
      const m = JSON.parse(manifest) as { rowCounts: object; included: string[]; encryption: { tool: string; recipients: string[]; sealed: string } };
      expect(m.rowCounts).toEqual({});
      expect(m.included).toContain("shop");
      expect(m.encryption.recipients).toEqual([pub1]);
      expect(m.encryption.sealed).toMatch(/^-----BEGIN AGE ENCRYPTED FILE-----/);
      expect(manifest).not.toContain("AGE-SECRET-KEY");
    }
  });

  it("have a .sha256 over the encrypted bytes (sha256sum -c), and latest pointers of their own", () => {
    const c = spawnSync("sha256sum", ["-c", `${full}.sha256`], { cwd: join(dir, "full"), encoding: "utf8" });
    expect(c.status, c.stdout + c.stderr).toBe(0);
    expect(readlinkSync(join(dir, "full", "latest_full.sql.bz2.age"))).toBe(full);
    expect(existsSync(join(dir, "full", "latest_full.sql.bz2"))).toBe(false);
  });

  it("list and cleanup need no identity: list shows them, cleanup keeps them and their pointer", async () => {
    const l = await cli(["list"], src);
    expect(l.code, l.stderr).toBe(0);
    expect(l.stdout).toContain(full);
    const c = await cli(["cleanup"], src);
    expect(c.code, c.stdout + c.stderr).toBe(0);
    expect(files("full")).toEqual([full]);
    expect(readlinkSync(join(dir, "full", "latest_full.sql.bz2.age"))).toBe(full);
  });

  it("restore-latest with AGE_IDENTITY_FILE reproduces the cluster (pg_dumpall equal)", async () => {
    const target = await clusters.create("age-restore");
    const r = await cli(["restore-latest"], target, { AGE_IDENTITY_FILE: ID1 });
    expect(r.code, r.stderr).toBe(0);
    expect(normalisedDumpall(target)).toBe(expected);
    expect(r.stdout + r.stderr).not.toMatch(/AGE-SECRET-KEY-1[0-9A-Z]{10}/);
  });

  it("the stock pipeline restores the full: age -d -i key | bunzip2 | psql", async () => {
    const target = await clusters.create("age-stock");
    const path = join(dir, "full", full as string);
    const env = { PATH: process.env.PATH, ...clusterEnv(target) };
    execFileSync("sh", ["-c", `age -d -i "$1" "$2" | bunzip2 | psql -X -q -d postgres`, "sh", ID1, path], { env, stdio: ["ignore", "ignore", "pipe"] });
    expect((await sql(target, "shop", "SELECT count(*)::int AS n FROM secret_items")).rows[0]).toEqual({ n: 200 });
  });

  it("list-databases shows the sealed row counts with the identity, and is refused (4) without it", async () => {
    const ok = await cli(["list-databases", full as string], src, { AGE_IDENTITY_FILE: ID1 });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/shop\s+1\s+200/);
    const no = await cli(["list-databases", full as string], src);
    expect(no.code).toBe(4);
    expect(no.stderr).toContain("AGE_IDENTITY_FILE");
  });

  it("verify reads them back with the identity (exit 0), and refuses without it (exit 4, naming AGE_IDENTITY_FILE)", async () => {
    const ok = await cli(["verify"], src, { AGE_IDENTITY_FILE: ID1 });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/PASS\s+stream-row-counts\s+\S+full\.sql\.bz2\.age\s+row counts of \d+ tables match/);
    const restored = await cli(["verify", "--restore"], src, { AGE_IDENTITY_FILE: ID1 });
    expect(restored.code, restored.stdout + restored.stderr).toBe(0);
    expect(restored.stdout).toMatch(/PASS\s+restore\s/);
    const no = await cli(["verify"], src);
    expect(no.code).toBe(4);
    expect(no.stderr).toContain("set AGE_IDENTITY_FILE");
  });

  it("without an identity, or with the wrong one, restore is refused (4) before anything is touched", async () => {
    const target = await clusters.create("age-refuse");
    psqlScript(target, "postgres", "CREATE DATABASE shop; CREATE DATABASE keepme;");
    const before = normalisedDumpall(target);
    const none = await cli(["restore-latest", "--drop-existing"], target);
    expect(none.code).toBe(4);
    expect(none.stderr).toContain(`is encrypted to ${pub1.slice(0, 16)}`);
    expect(none.stderr).toContain("set AGE_IDENTITY_FILE");
    const wrong = await cli(["restore-latest", "--drop-existing"], target, { AGE_IDENTITY_FILE: ID2 });
    expect(wrong.code).toBe(4);
    expect(wrong.stderr).toContain(`AGE_IDENTITY_FILE=${ID2} holds the key of ${pub2.slice(0, 16)}`);
    expect(normalisedDumpall(target)).toBe(before);
    expect(wrong.stderr).not.toMatch(/AGE-SECRET-KEY-1[0-9A-Z]{10}/);
  });

  it("a file without its manifest: age itself says the identity does not fit (4), nothing touched", async () => {
    const loose = join(tempDir("pgsb-age-loose-"), "copy.sql.bz2.age");
    copyFileSync(join(dir, "full", full as string), loose);
    writeFileSync(`${loose}.sha256`, `${sha256(readFileSync(loose))}  copy.sql.bz2.age\n`);
    const target = await clusters.create("age-loose");
    const before = await databases(target);
    const r = await cli(["restore-full", loose], target, { AGE_IDENTITY_FILE: ID2 });
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toContain("cannot be decrypted with AGE_IDENTITY_FILE");
    expect(await databases(target)).toEqual(before);
    const ok = await cli(["restore-full", loose], target, { AGE_IDENTITY_FILE: BOTH });
    expect(ok.code, ok.stderr).toBe(0);
    expect((await sql(target, "shop", "SELECT count(*)::int AS n FROM secret_items")).rows[0]).toEqual({ n: 200 });
  });

  it("a truncated file with matching sidecars fails age's authentication; a flipped byte its checksum: refused, nothing restored", async () => {
    for (const damage of ["truncate", "flip"] as const) {
      const copy = tempDir(`pgsb-age-${damage}-`);
      execFileSync("cp", ["-a", `${dir}/.`, copy]);
      const path = join(copy, "full", full as string);
      if (damage === "truncate") {
        truncateSync(path, statSync(path).size - 100);
        const data = readFileSync(path);
        const m = JSON.parse(readFileSync(`${path}.json`, "utf8")) as Record<string, unknown>;
        const hash = new StoredHash();
        hash.update(data);
        Object.assign(m, { sha256: sha256(data), chunks: hash.finish().chunks, compressedBytes: data.length });
        const text = JSON.stringify(m, null, 2) + "\n";
        writeFileSync(`${path}.json`, text);
        writeFileSync(`${path}.sha256`, `${sha256(data)}  ${full}\n${sha256(text)}  ${full}.json\n`);
      } else {
        const data = readFileSync(path);
        data.writeUInt8((data.readUInt8(data.length >> 1) ^ 0x01) & 0xff, data.length >> 1);
        writeFileSync(path, data);
      }
      const target = await clusters.create(`age-${damage}`);
      const before = snapshot(copy);
      const r = await runCli(["restore-full", full as string], cliEnv(target, copy, { AGE_IDENTITY_FILE: ID1 }));
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toContain(damage === "truncate" ? "age's authentication failed" : "checksum");
      expect(await databases(target)).toEqual(["postgres"]);
      expect(snapshot(copy)).toEqual(before);
    }
  });
});

describe("a mixed chain across a key rotation", () => {
  it("a plain full, an incremental to key 1, one to key 2: restore-latest needs both identities and then equals the source", async () => {
    const mixed = tempDir("pgsb-age-mixed-");
    const env = (extra: Record<string, string>) => cliEnv(src, mixed, extra);
    expect((await runCli(["backup", "full"], env({}))).code).toBe(0);
    psqlScript(src, "shop", "INSERT INTO secret_items VALUES (2000, 'after-key-1');");
    expect((await runCli(["backup", "incremental"], env({ AGE_RECIPIENTS_FILE: REC1 }))).code).toBe(0);
    psqlScript(src, "postgres", "CREATE DATABASE rotated;");
    psqlScript(src, "rotated", "CREATE TABLE t AS SELECT 1 AS x;");
    const third = await runCli(["backup", "incremental"], env({ AGE_RECIPIENTS_FILE: REC2 }));
    expect(third.code, third.stderr).toBe(0);
    const names = [...readdirSync(join(mixed, "full")), ...readdirSync(join(mixed, "incremental"))].filter((f) => /\.sql[.a-z0-9]*$/.test(f) && !f.startsWith("latest_"));
    expect(names.filter((n) => n.endsWith(".age"))).toHaveLength(2);
    const expected = normalisedDumpall(src);

    const t1 = await clusters.create("age-mixed-1");
    const onlyOld = await runCli(["restore-latest"], cliEnv(t1, mixed, { AGE_IDENTITY_FILE: ID1 }));
    expect(onlyOld.code).toBe(4);
    expect(onlyOld.stderr).toMatch(/incremental\.sql\.bz2\.age is encrypted to age1/);
    expect(await databases(t1)).toEqual(["postgres"]);

    const r = await runCli(["restore-latest"], cliEnv(t1, mixed, { AGE_IDENTITY_FILE: BOTH }));
    expect(r.code, r.stderr).toBe(0);
    expect(normalisedDumpall(t1)).toBe(expected);
    psqlScript(src, "postgres", "DROP DATABASE rotated;");
  });
});
