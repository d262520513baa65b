// backup base against a real cluster: the file is a tar that stock tools extract and
// pg_verifybackup accepts; replication refusals are clear and leave nothing behind.
import { execFileSync } from "node:child_process";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run as baseBackup } from "../../tasks/baseBackup.js";
import { findServerBinary } from "../../lib/core/bin.js";
import { ExitCode, TaskError } from "../../lib/core/errors.js";
import { scanBaseCatalog, usableBases } from "../../lib/base/catalog.js";
import { parseLsn } from "../../lib/physical/layout.js";
import type { ClusterInfo } from "../cluster.js";
import { TEST_PASSWORD, createCluster, destroyCluster, sql } from "../cluster.js";
import { CLI, cliEnv, runCli, snapshot, tempDir, testConfig, testDeps } from "../helpers.js";
import { testBaseManifest } from "../baseManifests.js";

const BASE_ENV = { BACKUP_COMPRESSION: "zstd", BASE_BACKUP_CHECKPOINT: "fast" };
let c: ClusterInfo;
const dirs: string[] = [];

function dir(): string {
  const d = tempDir("pgsb-base-");
  dirs.push(d);
  return d;
}

function reload(): void {
  execFileSync("runuser", ["-u", "postgres", "--", join(c.bindir, "pg_ctl"), "-D", c.dataDir, "reload"], { stdio: "ignore" });
}

beforeAll(async () => {
  c = await createCluster({ name: "base" });
});

afterAll(() => {
  destroyCluster(c);
  for (const d of dirs) execFileSync("rm", ["-rf", d]);
});

describe("backup base", () => {
  it("refuses a fresh cluster when the newest backup is of another cluster (wiped volume), exit 4", async () => {
    const d = dir();
    const planted = "20240106_020000_base.tar.zst";
    mkdirSync(join(d, "base"));
    writeFileSync(join(d, "base", planted), "x");
    writeFileSync(join(d, "base", `${planted}.json`), JSON.stringify(testBaseManifest(planted, { systemIdentifier: "1" })));
    writeFileSync(join(d, "base", `${planted}.sha256`), `${"0".repeat(64)}  ${planted}\n`);
    const err = await baseBackup(testConfig(c, d, BASE_ENV), testDeps(), { dryRun: false, allowNewCluster: false }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TaskError);
    expect((err as TaskError).exitCode).toBe(ExitCode.refused);
    expect((err as Error).message).toContain(`the newest backup ${planted} is of another cluster (1)`);
    expect(readdirSync(join(d, "base")).sort()).toEqual([planted, `${planted}.json`, `${planted}.sha256`]);
  });

  it("writes a tar that tar -x and pg_verifybackup accept, with a manifest the catalog trusts", async () => {
    await sql(c, "postgres", "CREATE DATABASE app");
    await sql(c, "app", "CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 50000) g");
    const d = dir();
    const deps = testDeps();
    const r = await baseBackup(testConfig(c, d, BASE_ENV), deps, { dryRun: false, allowNewCluster: false });
    expect(r.status).toBe("written");
    if (r.status !== "written") return;
    expect(r.name).toMatch(/^\d{8}_\d{6}_base\.tar\.zst$/);
    expect(readdirSync(join(d, "base")).sort()).toEqual([r.name, `${r.name}.json`, `${r.name}.sha256`]);
    execFileSync("sha256sum", ["-c", `${r.name}.sha256`], { cwd: join(d, "base") });
    const [entry] = usableBases(await scanBaseCatalog(d));
    expect(entry?.name).toBe(r.name);
    const m = r.manifest;
    expect(entry?.manifest).toEqual(m);
    expect(m.timeline).toBe(1);
    expect(m.walSegmentSize).toBe(16 * 1024 * 1024);
    expect(parseLsn(m.stopLsn)! >= parseLsn(m.startLsn)!).toBe(true);
    const [sysid] = (await sql(c, "postgres", "SELECT system_identifier::text AS s FROM pg_control_system()")).rows as { s: string }[];
    expect(m.systemIdentifier).toBe(sysid?.s);
    // Format 2: the tar goes from pg_basebackup straight into zstd; the stored file's chunks are hashed.
    expect(m.format).toBe(2);
    expect(m.rawBytes).toBeNull();
    expect(m.backupManifestSha256).toBeNull();
    const stored = readFileSync(r.path);
    const pieces = Array.from({ length: Math.ceil(stored.length / (8 << 20)) }, (_, i) => createHash("sha256").update(stored.subarray(i * (8 << 20), (i + 1) * (8 << 20))).digest("hex"));
    expect(m.chunks).toEqual({ size: 8 << 20, sha256: pieces });

    const out = join(dir(), "pgdata");
    mkdirSync(out);
    execFileSync("sh", ["-c", 'zstd -dc "$1" | tar -xf - -C "$2"', "sh", r.path, out]);
    // The WAL range pg_basebackup reported is the one its backup_manifest lists.
    const ranges = (JSON.parse(readFileSync(join(out, "backup_manifest"), "utf8")) as { "WAL-Ranges": { Timeline: number; "Start-LSN": string; "End-LSN": string }[] })["WAL-Ranges"];
    expect(ranges.map((x) => [x.Timeline, x["Start-LSN"], x["End-LSN"]])).toEqual([[m.timeline, m.startLsn, m.stopLsn]]);
    expect(readdirSync(join(out, "pg_wal")).some((f) => /^[0-9A-F]{24}$/.test(f))).toBe(true);
    const verify = findServerBinary("pg_verifybackup");
    expect(verify).not.toBeNull();
    expect(execFileSync(verify as string, [out]).toString()).toContain("backup successfully verified");
    expect(deps.logs.some((l) => String(l.msg).startsWith("base backup written"))).toBe(true);

    const listed = await runCli(["list"], cliEnv(c, d, BASE_ENV));
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`base .* ${m.startLsn.replace("/", "\\/")} +${m.stopLsn.replace("/", "\\/")} +1 +ok +${r.name}`));
    const json = JSON.parse((await runCli(["list", "--json", "--tier", "base"], cliEnv(c, d, BASE_ENV))).stdout) as { backups: unknown[]; bases: { name: string; startLsn: string }[] };
    expect(json.backups).toEqual([]);
    expect(json.bases).toEqual([expect.objectContaining({ name: r.name, startLsn: m.startLsn, problem: null })]);
  });

  it("uncompressed and signed: a plain tar, and a .sig that openssl verifies over the .sha256", async () => {
    const d = dir();
    const keys = dir();
    const [sign, verify] = [join(keys, "sign.pem"), join(keys, "verify.pem")];
    execFileSync("openssl", ["genpkey", "-algorithm", "ed25519", "-out", sign]);
    execFileSync("openssl", ["pkey", "-in", sign, "-pubout", "-out", verify]);
    const r = await baseBackup(testConfig(c, d, { BACKUP_COMPRESSION: "none", BASE_BACKUP_CHECKPOINT: "fast", BACKUP_SIGNING_KEY_FILE: sign }), testDeps(), { dryRun: false, allowNewCluster: false });
    if (r.status !== "written") throw new Error("no base backup");
    expect(r.name).toMatch(/_base\.tar$/);
    expect(r.manifest.compressedBytes).toBe(statSync(r.path).size);
    // Several chunks: a cluster's plain tar is well over 8 MiB.
    expect(r.manifest.chunks?.sha256.length).toBe(Math.ceil(r.manifest.compressedBytes / (8 << 20)));
    expect(execFileSync("tar", ["-tf", r.path]).toString()).toContain("backup_manifest");
    const o = execFileSync("openssl", ["pkeyutl", "-verify", "-pubin", "-inkey", verify, "-rawin", "-in", `${r.name}.sha256`, "-sigfile", `${r.name}.sha256.sig`], { cwd: join(d, "base") }).toString();
    expect(o).toContain("Signature Verified Successfully");
  });

  it("--dry-run shows the plan and writes nothing", async () => {
    const d = dir();
    const before = snapshot(d);
    const r = await runCli(["backup", "base", "--dry-run"], cliEnv(c, d, BASE_ENV));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/pg_basebackup -D - -Ft -X fetch -v --checkpoint=fast --no-sync '--dbname=keepalives=1 [^']*' \| zstd/);
    expect(snapshot(d)).toEqual(before);
    expect(existsSync(join(d, "base"))).toBe(false);
    const spread = await runCli(["backup", "base", "--dry-run"], cliEnv(c, d, { ...BASE_ENV, BASE_BACKUP_CHECKPOINT: "spread" }));
    expect(spread.stdout).toContain("--checkpoint=spread");
  });

  it("a role without REPLICATION: exit 8 naming ALTER ROLE … REPLICATION, no file", async () => {
    await sql(c, "postgres", `CREATE ROLE norepl LOGIN PASSWORD '${TEST_PASSWORD}'; GRANT pg_monitor TO norepl`);
    const d = dir();
    const r = await runCli(["backup", "base"], cliEnv(c, d, { ...BASE_ENV, PGUSER: "norepl", PGHOST: "127.0.0.1", PGPASSWORD: TEST_PASSWORD }));
    expect(r.code).toBe(ExitCode.database);
    expect(r.stderr).toContain('may not start a replication connection; run ALTER ROLE "norepl" REPLICATION');
    expect(r.stderr).not.toContain(TEST_PASSWORD);
    expect(readdirSync(join(d, "base"))).toEqual([]);
  });

  it("no pg_hba line for replication: exit 8 naming the pg_hba fix, the partial removed", async () => {
    const hba = join(c.dataDir, "pg_hba.conf");
    const original = readFileSync(hba, "utf8");
    try {
      execFileSync("sh", ["-c", `grep -v '^[a-z]*[[:space:]]*replication' "$1" > "$1.new" && cat "$1.new" > "$1" && rm "$1.new"`, "sh", hba]);
      reload();
      const d = dir();
      const r = await runCli(["backup", "base"], cliEnv(c, d, BASE_ENV));
      expect(r.code).toBe(ExitCode.database);
      expect(r.stderr).toContain('PostgreSQL has no pg_hba.conf line allowing PGUSER=postgres');
      expect(r.stderr).toContain("host replication postgres");
      expect(readdirSync(join(d, "base"))).toEqual([]);
    } finally {
      writeFileSync(hba, original);
      reload();
    }
  });
});

async function waitFor<T>(what: string, probe: () => T | null | undefined | false | Promise<T | null | undefined | false>, ms = 30_000): Promise<T> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
    const v = await probe();
    if (v !== null && v !== undefined && v !== false) return v;
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

describe("backup base stopped by SIGTERM", () => {
  it("exits 143, removes the .partial and ends the replication connection", async () => {
    const d = dir();
    const bin = dir();
    // A zstd that passes 64 kB every 200 ms: the base backup is mid-stream when the signal comes.
    writeFileSync(
      join(bin, "zstd"),
      `#!${process.execPath}\nprocess.stdin.on("data", (c) => { process.stdin.pause(); process.stdout.write(c); setTimeout(() => process.stdin.resume(), 200); });\nprocess.stdin.on("end", () => process.stdout.end());\n`,
    );
    chmodSync(join(bin, "zstd"), 0o755);
    const child = spawn(process.execPath, [CLI, "backup", "base"], { env: { LOG_FILE: "", ...cliEnv(c, d, BASE_ENV), PATH: `${bin}:${process.env.PATH ?? ""}` } });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    try {
      await waitFor("the .partial file", () => existsSync(join(d, "base")) && readdirSync(join(d, "base")).some((f) => f.endsWith(".partial")));
      await waitFor("the walsender", async () => ((await sql(c, "postgres", "SELECT count(*)::int AS n FROM pg_stat_replication")).rows[0] as { n: number }).n > 0);
      const sent = Date.now();
      child.kill("SIGTERM");
      expect(await exited, stderr).toBe(143);
      expect(Date.now() - sent).toBeLessThan(10_000);
    } finally {
      clearTimeout(killer);
      child.kill("SIGKILL");
    }
    expect(readdirSync(join(d, "base"))).toEqual([]);
    await waitFor("the walsender to end", async () => ((await sql(c, "postgres", "SELECT count(*)::int AS n FROM pg_stat_replication")).rows[0] as { n: number }).n === 0, 10_000);
  });
});
