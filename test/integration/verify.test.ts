// verify against real backups of the shared cluster, made by the backup task with a fixed
// clock: a good chain passes (and restores), and each kind of damage is caught by the right
// check, naming the file. CLI cases need `npm run build` first (npm run test:integration).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { StoredHash } from "../../lib/store/chunks.js";
import { sha256File } from "../../lib/store/checksum.js";
import type { Manifest } from "../../lib/store/manifest.js";
import { run as backup } from "../../tasks/backup.js";
import { run as verify } from "../../tasks/verify.js";
import type { VerifyArgs, VerifyReport } from "../../tasks/verify.js";
import { verifyServerConfig } from "../../lib/verify/target.js";
import { TEST_PASSWORD, createCluster, destroyCluster, sql } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

const cluster = inject("cluster");
const DB = `verify_it_${process.pid}`;
const OWNER = `verify_owner_${process.pid}`;
const HOUR = 3_600_000;
// Backups are stamped relative to the real clock so the default age limits hold.
const T0 = new Date(Math.floor(Date.now() / 1000) * 1000);
const FULL_AT = new Date(T0.getTime() - 3 * HOUR);
const INCR_AT = new Date(T0.getTime() - 1 * HOUR);

let pristine: string;
let full: string;
let incr: string;

beforeAll(async () => {
  await sql(cluster, "postgres", `CREATE ROLE ${OWNER}`);
  await sql(cluster, "postgres", `CREATE DATABASE ${DB}`);
  await sql(
    cluster,
    DB,
    `CREATE TABLE items (id serial PRIMARY KEY, v text); ALTER TABLE items OWNER TO ${OWNER};
     INSERT INTO items (v) SELECT 'v' || g FROM generate_series(1, 100) g;
     CREATE TABLE "Mixed Case" (x int); INSERT INTO "Mixed Case" SELECT generate_series(1, 5);
     CREATE TABLE parent (x int); CREATE TABLE child () INHERITS (parent);
     INSERT INTO parent VALUES (1), (2), (3); INSERT INTO child VALUES (4), (5), (6), (7);`,
  );
  pristine = tempDir("pgsb-verifytest-pristine-");
  const f = await backup(testConfig(cluster, pristine), testDeps(() => FULL_AT), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
  if (f.status !== "written") throw new Error(`full backup not written: ${f.status}`);
  await sql(cluster, DB, "INSERT INTO items (v) SELECT 'w' || g FROM generate_series(1, 5) g");
  // The statistics the change fingerprint reads are flushed shortly after the session ends.
  await new Promise((r) => setTimeout(r, 1500));
  // Not forced: the incremental holds only what changed, so a restore takes sections from two files.
  const i = await backup(testConfig(cluster, pristine), testDeps(() => INCR_AT), { tier: "incremental", force: false, dryRun: false, allowNewCluster: false });
  if (i.status !== "written") throw new Error(`incremental backup not written: ${i.status}`);
  expect(i.manifest.included).toContain(DB);
  expect(i.manifest.included).not.toContain("template1");
  full = f.path;
  incr = i.path;
});

/** A private copy of the good backups, to damage. */
function fresh(): { dir: string; full: string; incr: string } {
  const dir = tempDir("pgsb-verifytest-");
  cpSync(pristine, dir, { recursive: true, verbatimSymlinks: true });
  const moved = (p: string) => join(dir, p.slice(pristine.length));
  return { dir, full: moved(full), incr: moved(incr) };
}

async function runVerify(dir: string, args: Partial<VerifyArgs> = {}, now = () => new Date()): Promise<{ report: VerifyReport; logs: Record<string, unknown>[] }> {
  const deps = testDeps(now);
  const report = await verify(testConfig(cluster, dir), deps, { json: false, restore: false, server: null, ...args });
  return { report, logs: deps.logs };
}

/** A server for VERIFY_PGHOST mode, holding a database of the backup's name that verify must leave alone. */
async function withVerifyServer(fn: (config: VerifyArgs["server"]) => Promise<void>): Promise<void> {
  const server = await createCluster({ name: "verify-server" });
  try {
    await sql(server, "postgres", `CREATE DATABASE ${DB}`);
    await sql(server, DB, "CREATE TABLE mine (x int); INSERT INTO mine VALUES (42)");
    const pwfile = join(tempDir(), "pw");
    writeFileSync(pwfile, TEST_PASSWORD + "\n", { mode: 0o600 });
    await fn(verifyServerConfig({ VERIFY_PGHOST: "127.0.0.1", VERIFY_PGPORT: String(server.port), VERIFY_PGPASSWORD_FILE: pwfile }));
    // Nothing of the restore is left, and the database of the backup's name is untouched.
    const left = await sql(server, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'pgsb\\_%'");
    expect(left.rows).toEqual([]);
    expect((await sql(server, "postgres", "SELECT rolname FROM pg_roles WHERE rolname = $1", [OWNER])).rows).toEqual([]);
    expect((await sql(server, DB, "SELECT x FROM mine")).rows).toEqual([{ x: 42 }]);
    expect((await sql(server, DB, "SELECT count(*)::int AS n FROM pg_class WHERE relname = 'items'")).rows).toEqual([{ n: 0 }]);
  } finally {
    destroyCluster(server);
  }
}

const failing = (r: VerifyReport) => r.checks.filter((c) => !c.ok);
const named = (r: VerifyReport, name: string) => r.checks.filter((c) => c.name === name);
const base = (p: string) => p.split("/").at(-1) as string;

/** Edits a manifest and, like a deliberate edit would, its line in the .sha256 file, so the checksums still match. */
function editManifest(path: string, edit: (m: Manifest) => void): void {
  const m = JSON.parse(readFileSync(path + ".json", "utf8")) as Manifest;
  edit(m);
  const text = JSON.stringify(m, null, 2) + "\n";
  writeFileSync(path + ".json", text);
  const sidecar = readFileSync(path + ".sha256", "utf8");
  writeFileSync(path + ".sha256", sidecar.replace(/^[0-9a-f]{64}(?= {2}\S+\.json$)/m, createHash("sha256").update(text).digest("hex")));
}

describe("a good chain", () => {
  it("passes every check, reading both files of the newest chain", async () => {
    const { report } = await runVerify(fresh().dir);
    expect(failing(report)).toEqual([]);
    expect(report.ok).toBe(true);
    expect(named(report, "decompress").map((c) => c.file)).toEqual([base(full), base(incr)]);
    expect(named(report, "stream-row-counts").every((c) => c.ok && typeof c.figures.tables === "number")).toBe(true);
    expect(report.checks.every((c) => c.durationMs >= 0)).toBe(true);
  });

  it("restores into a scratch cluster, matches row counts, and removes the cluster", async () => {
    const { report, logs } = await runVerify(fresh().dir, { restore: true });
    expect(failing(report)).toEqual([]);
    const restore = named(report, "restore")[0];
    // The backup's roles, the owner among them, are created from its globals; postgres exists already.
    expect(restore?.figures.roles).toBeGreaterThanOrEqual(1);
    expect(named(report, "restore-row-counts")[0]?.figures.databases).toBeGreaterThanOrEqual(3);
    const started = logs.find((l) => l.msg === "scratch PostgreSQL cluster started for verify --restore");
    expect(existsSync(String(started?.dir))).toBe(false);
  });

  it("restores into scratch databases on a VERIFY_PGHOST server, with stand-ins for its missing roles, and drops both", async () => {
    await withVerifyServer(async (config) => {
      const { report } = await runVerify(fresh().dir, { restore: true, server: config });
      expect(failing(report)).toEqual([]);
      const restore = named(report, "restore")[0];
      expect(restore?.message).toMatch(/into the VERIFY_PGHOST=127\.0\.0\.1:/);
      expect(restore?.figures.roles).toBeGreaterThanOrEqual(1);
      expect(named(report, "restore-row-counts")[0]?.figures.databases).toBeGreaterThanOrEqual(3);
    });
  });
});

describe("damage is caught by the right check", () => {
  it("one flipped byte in a data file", async () => {
    const b = fresh();
    const data = readFileSync(b.full);
    const at = Math.floor(data.length / 2);
    data[at] = (data[at] as number) ^ 0x01;
    writeFileSync(b.full, data);
    const { report } = await runVerify(b.dir);
    expect(report.ok).toBe(false);
    const [checksum] = named(report, "checksum").filter((c) => !c.ok);
    expect(checksum).toMatchObject({ file: base(b.full) });
    expect(checksum?.message).toMatch(/checksum mismatch in chunk 1 of 1 .*: the file was changed after the backup/);
  });

  it("a truncated file whose checksums were recomputed to match", async () => {
    const b = fresh();
    truncateSync(b.full, Math.floor(readFileSync(b.full).length * 0.6));
    const sha = await sha256File(b.full);
    writeFileSync(b.full + ".sha256", `${sha}  ${base(b.full)}\n`);
    editManifest(b.full, (m) => {
      const hash = new StoredHash();
      hash.update(readFileSync(b.full));
      m.sha256 = sha;
      m.chunks = hash.finish().chunks;
      m.compressedBytes = readFileSync(b.full).length;
    });
    const { report } = await runVerify(b.dir);
    expect(named(report, "checksum").every((c) => c.ok)).toBe(true);
    expect(named(report, "manifest").every((c) => c.ok)).toBe(true);
    expect(failing(report).map((c) => [c.name, c.file])).toEqual([["decompress", base(b.full)]]);
    expect(failing(report)[0]?.message).toMatch(/decompression failed|trailer/);
  });

  it("a missing full under an incremental", async () => {
    const b = fresh();
    for (const suffix of ["", ".sha256", ".json"]) rmSync(b.full + suffix);
    const { report } = await runVerify(b.dir);
    const [chain] = named(report, "chain");
    expect(chain).toMatchObject({ ok: false, file: base(b.incr) });
    expect(chain?.message).toContain(`parent ${base(b.full)} of ${base(b.incr)} is missing`);
    expect(named(report, "full-age")[0]?.ok).toBe(false);
    expect(named(report, "restore-plan")[0]?.message).toMatch(/no usable full backup/);
  });

  it("a stale newest backup", async () => {
    const { report } = await runVerify(fresh().dir, {}, () => new Date(INCR_AT.getTime() + 27 * HOUR));
    expect(failing(report).map((c) => [c.name, c.file])).toEqual([["newest-age", base(incr)]]);
    expect(failing(report)[0]?.message).toMatch(/27 h old, older than the 26 h limit/);
  });

  it("a restored table with fewer rows than the manifest says", async () => {
    const b = fresh();
    editManifest(b.incr, (m) => {
      const counts = m.rowCounts[DB] as Record<string, number>;
      counts["public.items"] = (counts["public.items"] ?? 0) + 5;
    });
    const { report } = await runVerify(b.dir, { restore: true });
    const [restored] = named(report, "restore-row-counts").filter((c) => !c.ok);
    expect(restored).toMatchObject({ file: base(b.incr) });
    expect(restored?.message).toContain(`"${DB}" public.items: 105 rows in the restored table, manifest says 110`);
    expect(named(report, "restore")[0]?.ok).toBe(true);
  });
});

describe("the restore check", () => {
  /** The good chain with an SQL error in the first database section (template1), which is restored from the full. */
  async function broken(): Promise<ReturnType<typeof fresh>> {
    const b = fresh();
    const sqlText = execFileSync("bunzip2", ["-c", b.full]).toString("utf8");
    const text = Buffer.from(sqlText.replace("SET client_min_messages = warning;\n", "$&SELECT 1/0;\n"));
    writeFileSync(b.full, execFileSync("bzip2", ["-c"], { input: text }));
    const sha = await sha256File(b.full);
    writeFileSync(b.full + ".sha256", `${sha}  ${base(b.full)}\n`);
    const hash = new StoredHash();
    hash.update(readFileSync(b.full));
    editManifest(b.full, (m) => Object.assign(m, { sha256: sha, chunks: hash.finish().chunks, compressedBytes: readFileSync(b.full).length, rawBytes: text.length }));
    return b;
  }

  it("fails on an SQL error in a file whose checksums and counts all match, naming file, database and line", async () => {
    const b = await broken();
    const { report } = await runVerify(b.dir, { restore: true });
    expect(failing(report).map((c) => [c.name, c.file])).toEqual([["restore", base(b.full)]]);
    const text = failing(report)[0]?.message;
    expect(text).toContain(`restore into the scratch cluster failed: restore failed for 1 of `);
    expect(text).toMatch(new RegExp(`database "template1" from ${base(b.full).replace(/\./g, "\\.")}: psql exited with 3 at line \\d+ of its section: ERROR: division by zero`));
    // The other databases restored, and their row counts are checked.
    expect(named(report, "restore-row-counts")[0]?.ok).toBe(true);
  });

  it("on a VERIFY_PGHOST server names the database by its own name and still drops everything", async () => {
    const b = await broken();
    await withVerifyServer(async (config) => {
      const { report } = await runVerify(b.dir, { restore: true, server: config });
      expect(failing(report).map((c) => [c.name, c.file])).toEqual([["restore", base(b.full)]]);
      expect(failing(report)[0]?.message).toMatch(/database "template1" \(as pgsb_verify_[0-9a-f]{8}_\d+\) from .*: psql exited with 3 at line \d+ of its section: ERROR: division by zero/);
    });
  });
});

describe("the CLI", () => {
  it("exits 0 on a good chain and records metrics; status shows them", async () => {
    const b = fresh();
    const metrics = join(b.dir, "pgsb.prom");
    const env = cliEnv(cluster, b.dir, { METRICS_FILE: metrics });
    const r = await runCli(["verify"], env);
    expect(r.stderr).not.toMatch(/"level":"error"/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^verify: OK, \d+ checks passed/m);
    expect(readFileSync(metrics, "utf8")).toMatch(/^pgsb_last_result\{task="verify"\} 1$/m);
    const s = await runCli(["status", "--json"], env);
    expect(s.code).toBe(0);
    const status = JSON.parse(s.stdout) as { newest: { incremental: { name: string } }; tasks: { task: string; ok: boolean }[] };
    expect(status.newest.incremental.name).toBe(base(incr));
    expect(status.tasks).toEqual([expect.objectContaining({ task: "verify", ok: true })]);
  });

  it("exits 5 with --max-age 0 and a JSON report naming the check and file", async () => {
    const b = fresh();
    const metrics = join(b.dir, "pgsb.prom");
    const r = await runCli(["verify", "--json", "--max-age", "0"], cliEnv(cluster, b.dir, { METRICS_FILE: metrics }));
    expect(r.code).toBe(5);
    const report = JSON.parse(r.stdout) as VerifyReport;
    expect(report.ok).toBe(false);
    expect(failing(report).map((c) => [c.name, c.file])).toEqual([["newest-age", base(incr)]]);
    expect(Object.keys(report.checks[0] ?? {}).sort()).toEqual(["durationMs", "figures", "message", "name", "ok"]);
    expect(readFileSync(metrics, "utf8")).toMatch(/^pgsb_verify_check_ok\{check="newest-age"\} 0$/m);
  });

  it("exits 5 on a flipped byte and 2 on a bad --max-age", async () => {
    const b = fresh();
    const data = readFileSync(b.incr);
    data[data.length - 10] = (data[data.length - 10] as number) ^ 0xff;
    writeFileSync(b.incr, data);
    const r = await runCli(["verify"], cliEnv(cluster, b.dir));
    expect(r.code).toBe(5);
    expect(r.stdout).toMatch(new RegExp(`^FAIL  checksum +${base(b.incr).replace(/\./g, "\\.")}  .*checksum mismatch`, "m"));
    const bad = await runCli(["verify", "--max-age", "-3"], cliEnv(cluster, b.dir));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--max-age -3 is not a number of hours/);
  });
});
