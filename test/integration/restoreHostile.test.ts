// Backups from a share others can write: a psql meta-command planted in a backup (with its
// .sha256 and manifest rewritten to match) must never run. Each forged file is refused
// before anything is touched, by every command that restores: restore-latest,
// restore-database (also --as), verify --restore (scratch cluster and VERIFY_PGHOST) and
// auto-restore. The marker file the planted `\!` would create stays absent, and the target
// cluster is exactly as it was.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DatabaseJob } from "../../lib/restore/database.js";
import { connectWritable } from "../../lib/restore/writeGate.js";
import { sha256File } from "../../lib/store/checksum.js";
import { run as backup } from "../../tasks/backup.js";
import type { ClusterInfo } from "../cluster.js";
import { ClusterSet, normalisedDumpall, psqlScript, sql } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

const clusters = new ClusterSet();
let src: ClusterInfo;
let dst: ClusterInfo;
let pristine: string;
let fullName: string;
let n = 0;

beforeAll(async () => {
  src = await clusters.create("hostile-src");
  psqlScript(src, "postgres", "CREATE ROLE svc LOGIN; CREATE DATABASE app OWNER svc;");
  psqlScript(src, "app", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v\\' || g FROM generate_series(1, 500) g; ALTER TABLE t OWNER TO svc;");
  psqlScript(src, "postgres", "CREATE TABLE in_postgres (x int); INSERT INTO in_postgres VALUES (1);");
  pristine = tempDir("pgsb-hostile-");
  const full = await backup(testConfig(src, pristine), testDeps(() => new Date("2026-05-03T03:00:00Z")), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
  if (full.status !== "written") throw new Error(`full backup not written: ${full.status}`);
  fullName = full.path.split("/").at(-1) as string;
  dst = await clusters.create("hostile-dst");
  psqlScript(dst, "postgres", "CREATE DATABASE keep; CREATE ROLE keeper;");
});

afterAll(() => {
  clusters.destroyAll();
});

/** A copy of the good backup whose SQL `edit` changed, sidecar and manifest rewritten to match; and the marker a planted `\!` would create. */
async function forge(edit: (sql: string, marker: string) => string): Promise<{ dir: string; file: string; marker: string }> {
  const dir = tempDir("pgsb-hostile-forged-");
  cpSync(pristine, dir, { recursive: true, verbatimSymlinks: true });
  const marker = join(tempDir("pgsb-hostile-marker-"), `ran-${++n}`);
  const file = join(dir, "full", fullName);
  const text = execFileSync("bunzip2", ["-c", file]).toString("utf8");
  const forged = Buffer.from(edit(text, marker));
  expect(forged.toString()).not.toBe(text);
  writeFileSync(file, execFileSync("bzip2", ["-c"], { input: forged }));
  const sha = await sha256File(file);
  writeFileSync(file + ".sha256", `${sha}  ${fullName}\n`);
  const manifest = JSON.parse(readFileSync(file + ".json", "utf8")) as Record<string, unknown>;
  writeFileSync(file + ".json", JSON.stringify({ ...manifest, sha256: sha, compressedBytes: readFileSync(file).length, rawBytes: forged.length }, null, 2) + "\n");
  return { dir, file, marker };
}

/** Inserts `line` right after the first occurrence of `after` at or past `from`. */
function insertAfter(text: string, from: string, after: string, line: string): string {
  const at = text.indexOf(after, text.indexOf(from));
  expect(at).toBeGreaterThanOrEqual(0);
  return text.slice(0, at + after.length) + line + text.slice(at + after.length);
}

const PLANTS: [string, (sql: string, marker: string) => string, RegExp][] = [
  ["in the globals", (s, m) => `\\! touch ${m}\n${s}`, /line 1 \(in the globals\): psql meta-command \\!, which pg_dump never writes: \\! touch/],
  [
    "after the \\connect of a database",
    (s, m) => insertAfter(s, '-- Database "app" dump', "\\connect app\n", `\\! touch ${m}\n`),
    /line \d+ \(in the section of database "app"\): psql meta-command \\!, which pg_dump never writes: \\! touch/,
  ],
  [
    "mid-line after a statement",
    (s, m) => insertAfter(s, '-- Database "app" dump', "\\connect app\n", `SELECT 1; \\! touch ${m}\n`),
    /line \d+ \(in the section of database "app"\): psql meta-command \\! in the middle of a statement or line, where pg_dump writes none: \\! touch/,
  ],
  [
    "in the postgres section",
    (s, m) => insertAfter(s, '-- Database "postgres" dump', "\\connect postgres\n", `\\! touch ${m}\n`),
    /line \d+ \(in the section of database "postgres"\): psql meta-command \\!, which pg_dump never writes: \\! touch/,
  ],
];

async function unchanged(c: ClusterInfo, run: () => Promise<void>): Promise<void> {
  const before = normalisedDumpall(c);
  await run();
  expect(normalisedDumpall(c)).toBe(before);
  expect((await sql(c, "postgres", "SELECT count(*)::int AS n FROM pg_database WHERE datname LIKE 'pgsb\\_%'")).rows).toEqual([{ n: 0 }]);
}

describe.each(PLANTS)("a \\! planted %s", (_where, plant, message) => {
  it("is refused by restore-latest before anything is touched (exit 4)", async () => {
    const f = await forge(plant);
    await unchanged(dst, async () => {
      const r = await runCli(["restore-latest", "--drop-existing"], cliEnv(dst, f.dir));
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toContain(fullName);
      expect(r.stderr).toMatch(message);
    });
    expect(existsSync(f.marker)).toBe(false);
  });

  it("is refused by verify --restore in a scratch cluster (the restore check fails, exit 5)", async () => {
    const f = await forge(plant);
    const r = await runCli(["verify", "--restore", "--json"], cliEnv(src, f.dir));
    expect(r.code, r.stderr).toBe(5);
    const report = JSON.parse(r.stdout) as { checks: { name: string; ok: boolean; message: string }[] };
    // The backup's fixed date fails the age checks too; the restore check is the one that matters.
    const restore = report.checks.find((c) => c.name === "restore");
    expect(restore?.ok).toBe(false);
    expect(restore?.message).toMatch(message);
    expect(existsSync(f.marker)).toBe(false);
  });
});

describe("restore-database", () => {
  const plant = PLANTS[1] as (typeof PLANTS)[number];
  it.each([[[]], [["--as", "app_copy"]]])("refuses a planted \\! with %j (exit 4)", async (extra) => {
    const f = await forge(plant[1]);
    await unchanged(dst, async () => {
      const r = await runCli(["restore-database", fullName, "app", ...extra], cliEnv(dst, f.dir));
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(plant[2]);
    });
    expect(existsSync(f.marker)).toBe(false);
  });

  it("refuses a section that \\connects to another database (exit 4)", async () => {
    const f = await forge((s) => insertAfter(s, '-- Database "app" dump', "\\connect app\n", "\\connect keep\nCREATE TABLE planted (x int);\n"));
    await unchanged(dst, async () => {
      const r = await runCli(["restore-database", fullName, "app", "--as", "app_copy"], cliEnv(dst, f.dir));
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(/\(in the section of database "app"\): \\connect to database "keep" in the section of database "app": \\connect keep/);
    });
  });
});

describe("verify --restore on a VERIFY_PGHOST server", () => {
  it("refuses a planted \\! and leaves the server as it was (exit 5)", async () => {
    const plant = PLANTS[3] as (typeof PLANTS)[number];
    const f = await forge(plant[1]);
    await unchanged(dst, async () => {
      const r = await runCli(["verify", "--restore", "--json"], cliEnv(src, f.dir, { VERIFY_PGHOST: dst.socketDir, VERIFY_PGPORT: String(dst.port) }));
      expect(r.code, r.stderr).toBe(5);
      expect(r.stdout).toMatch(/"restore"/);
      expect(JSON.parse(r.stdout).checks.find((c: { name: string }) => c.name === "restore").message).toMatch(plant[2]);
    });
    expect(existsSync(f.marker)).toBe(false);
  });
});

describe("auto-restore", () => {
  it("refuses a planted \\! on a wiped cluster, unattended, and restores nothing (exit 4)", async () => {
    const wiped = await clusters.create("hostile-wiped");
    psqlScript(wiped, "postgres", "ALTER SYSTEM SET default_transaction_read_only = on; SELECT pg_reload_conf();");
    const plant = PLANTS[0] as (typeof PLANTS)[number];
    const f = await forge(plant[1]);
    const before = readdirSync(f.dir);
    await unchanged(wiped, async () => {
      const r = await runCli(["auto-restore", "--wait", "5"], cliEnv(wiped, f.dir));
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(plant[2]);
    });
    expect(readdirSync(f.dir)).toEqual(before);
    expect(existsSync(f.marker)).toBe(false);
  });
});

describe("the guard in the stream to psql", () => {
  it("stops a file changed after the pre-scan: psql never gets the line, the temporary database is dropped", async () => {
    const marker = join(tempDir("pgsb-hostile-marker-"), "swapped");
    const section = `CREATE DATABASE swapped;\n\\connect swapped\nCREATE TABLE x (a int);\n\\! touch ${marker}\nCREATE TABLE y (a int);\n`;
    const pgc = testConfig(dst, pristine).pg;
    const admin = await connectWritable(pgc, "postgres");
    try {
      await unchanged(dst, async () => {
        const deps = testDeps();
        const job = new DatabaseJob(
          { pg: pgc, env: { PATH: process.env.PATH, PGHOST: dst.socketDir, PGPORT: String(dst.port), PGUSER: "postgres" }, secrets: [], log: deps.log, admin, dropExisting: false, continueOnError: false },
          { file: "swapped.sql", source: "swapped", target: "swapped", action: { action: "swap", createTemp: false, last: false } },
        );
        await job.begin();
        // Cut inside the planted line: psql must not get its first half either.
        const cut = section.indexOf("touch");
        await job.feed(Buffer.from(section.slice(0, cut)));
        await job.feed(Buffer.from(section.slice(cut)));
        const outcome = await job.endInput(true);
        expect(outcome).toEqual({ status: "failed", error: expect.stringMatching(/^database "swapped" from swapped\.sql: line 4 of its section: psql meta-command \\!, which pg_dump never writes: \\! touch .*\(swapped left unchanged\)$/) });
      });
    } finally {
      await admin.end();
    }
    expect(existsSync(marker)).toBe(false);
  });
});
