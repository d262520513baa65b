// Backups from a share others can write. Every psql a restore starts restricts itself with a
// key only the tool knows, so no psql meta-command of a file runs, whatever psql's lexer makes
// of the text: the client-encoding tricks (a multibyte lead byte hiding a quote, a comment's or
// a dollar quote's closer), variable interpolation, a forged `\unrestrict` with the file's own
// key. Each forgery here is consistent (checksums and chunk hashes rewritten to match, as
// anyone who can write the share can do without the signing key), so only psql stands in the
// way. The marker file a planted `\!` would create stays absent, restore-latest, restore-full,
// restore-database and auto-restore refuse with exit 4, verify --restore fails its restore
// check, and the target cluster is exactly as it was.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StoredHash } from "../../lib/store/chunks.js";
import { run as backup } from "../../tasks/backup.js";
import type { ClusterInfo } from "../cluster.js";
import { ClusterSet, normalisedDumpall, psqlScript, sql } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

const clusters = new ClusterSet();
let src: ClusterInfo;
let dst: ClusterInfo;
let wiped: ClusterInfo;
let pristine: string;
let fullName: string;
let n = 0;

beforeAll(async () => {
  src = await clusters.create("hostile-src");
  psqlScript(src, "postgres", "CREATE ROLE svc LOGIN; CREATE DATABASE app OWNER svc;");
  psqlScript(src, "app", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'v\\' || g FROM generate_series(1, 500) g; ALTER TABLE t OWNER TO svc;");
  pristine = tempDir("pgsb-hostile-");
  const full = await backup(testConfig(src, pristine), testDeps(() => new Date("2026-05-03T03:00:00Z")), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
  if (full.status !== "written") throw new Error(`full backup not written: ${full.status}`);
  fullName = full.name;
  dst = await clusters.create("hostile-dst");
  // The backup's role exists already: a refused restore may have applied its globals (roles,
  // from the file's first part) before a later section showed the file was forged, and then
  // changes nothing here; every database stays as it was.
  psqlScript(dst, "postgres", "CREATE DATABASE keep; CREATE ROLE keeper; CREATE ROLE svc LOGIN;");
  psqlScript(dst, "keep", "CREATE TABLE k (x int); INSERT INTO k VALUES (1);");
  wiped = await clusters.create("hostile-wiped");
});

afterAll(() => clusters.destroyAll());

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A copy of the good backup whose SQL `edit` changed, with .sha256, chunk hashes and manifest rewritten to match (unsigned: anyone can). */
function forge(edit: (sql: Buffer, marker: string) => Buffer): { dir: string; marker: string } {
  const dir = tempDir("pgsb-hostile-forged-");
  cpSync(pristine, dir, { recursive: true, verbatimSymlinks: true });
  const marker = join(tempDir("pgsb-hostile-marker-"), `ran-${++n}`);
  const file = join(dir, "full", fullName);
  const text = execFileSync("bunzip2", ["-c", file]);
  const forged = edit(text, marker);
  expect(forged.equals(text)).toBe(false);
  const data = execFileSync("bzip2", ["-c"], { input: forged });
  writeFileSync(file, data);
  const hash = new StoredHash();
  hash.update(data);
  const manifest = JSON.parse(readFileSync(file + ".json", "utf8")) as Record<string, unknown>;
  const manifestText = JSON.stringify({ ...manifest, sha256: sha256(data), chunks: hash.finish().chunks, compressedBytes: data.length, rawBytes: forged.length }, null, 2) + "\n";
  writeFileSync(file + ".json", manifestText);
  writeFileSync(file + ".sha256", `${sha256(data)}  ${fullName}\n${sha256(Buffer.from(manifestText))}  ${fullName}.json\n`);
  return { dir, marker };
}

/** Inserts `plant` right after the first `after` at or past `from` (bytes, so any encoding's bytes go in as they are). */
function insertAfter(text: Buffer, from: string, after: string, plant: Buffer): Buffer {
  const at = text.indexOf(after, text.indexOf(from));
  expect(at).toBeGreaterThanOrEqual(0);
  return Buffer.concat([text.subarray(0, at + after.length), plant, text.subarray(at + after.length)]);
}

const inApp = (plant: Buffer) => (s: Buffer) => insertAfter(s, '-- Database "app" dump', "\\connect app\n", plant);
const inGlobals = (plant: Buffer) => (s: Buffer) => insertAfter(s, "SET standard_conforming_strings = on;\n", "\n", plant);

/** Client encodings whose second byte of a character may be ASCII, each with a lead byte. */
const ENCODINGS: [string, number][] = [
  ["SJIS", 0x81],
  ["BIG5", 0xa1],
  ["GBK", 0x81],
  ["UHC", 0x81],
  ["GB18030", 0x81],
  ["JOHAB", 0x84],
];

/**
 * Text where a lexer that does not know the client encoding sees `\!` inside a string, and
 * psql, which joins the lead byte with the closer after it, sees it outside: after a quote,
 * a comment's closer, a dollar quote's closer.
 */
const CLOSERS: [string, (lead: Buffer, m: string) => Buffer][] = [
  ["quote", (lead, m) => Buffer.concat([Buffer.from("SELECT '"), lead, Buffer.from(`', ' \\! touch ${m}\n';\n`)])],
  ["comment", (lead, m) => Buffer.concat([Buffer.from("SELECT 1 /* "), lead, Buffer.from(`*/ ' */ \\! touch ${m}\n';\n`)])],
  ["dollar quote", (lead, m) => Buffer.concat([Buffer.from("SELECT $$"), lead, Buffer.from(`$$ ' $$ \\! touch ${m}\n';\n`)])],
];

const encodingPlant = (encoding: string, lead: number, closer: (lead: Buffer, m: string) => Buffer) => (m: string) =>
  Buffer.concat([Buffer.from(`SET client_encoding = '${encoding}';\n`), closer(Buffer.from([lead]), m), Buffer.from("SET client_encoding = 'UTF8';\n")]);

async function unchanged(c: ClusterInfo, run: () => Promise<void>): Promise<void> {
  const before = normalisedDumpall(c);
  await run();
  expect(normalisedDumpall(c)).toBe(before);
  expect((await sql(c, "postgres", "SELECT count(*)::int AS n FROM pg_database WHERE datname LIKE 'pgsb\\_%'")).rows).toEqual([{ n: 0 }]);
}

const REFUSED = /psql refused a meta-command of the file: pg_dump writes none there, so the file was altered after the backup/;

/** restore-latest, restore-full and restore-database (also --as) into `dst`: each refused (exit 4), nothing changed, nothing run. */
async function refusedByRestores(f: { dir: string; marker: string }): Promise<void> {
  for (const args of [["restore-latest", "--drop-existing"], ["restore-full", fullName, "--drop-existing"], ["restore-database", fullName, "app", "--as", "app_copy"]]) {
    await unchanged(dst, async () => {
      const r = await runCli(args, cliEnv(dst, f.dir));
      expect(r.code, `${args[0]}: ${r.stderr}`).toBe(4);
      expect(r.stderr).toMatch(REFUSED);
      expect(r.stderr).toContain("no database was renamed into place");
    });
  }
  expect(existsSync(f.marker)).toBe(false);
}

/** verify --restore: the restore check fails naming the refusal (exit 5), nothing run. */
async function refusedByVerify(f: { dir: string; marker: string }): Promise<void> {
  const r = await runCli(["verify", "--restore", "--json"], cliEnv(src, f.dir));
  expect(r.code, r.stderr).toBe(5);
  const restore = (JSON.parse(r.stdout) as { checks: { name: string; ok: boolean; message: string }[] }).checks.find((c) => c.name === "restore");
  expect(restore?.ok).toBe(false);
  expect(restore?.message).toMatch(REFUSED);
  expect(existsSync(f.marker)).toBe(false);
}

describe.each(ENCODINGS)("client encoding %s", (encoding, lead) => {
  it.each(CLOSERS)("a \\! behind a lead byte and a %s is refused by psql itself, in every restore", async (_closer, closer) => {
    const plant = encodingPlant(encoding, lead, closer);
    const section = forge((s, m) => inApp(plant(m))(s));
    await refusedByRestores(section);
    await refusedByVerify(section);
    // auto-restore on a wiped cluster, unattended: the plant in the globals, which it applies first.
    const globals = forge((s, m) => inGlobals(plant(m))(s));
    const r = await runCli(["auto-restore", "--wait", "5"], cliEnv(wiped, globals.dir));
    expect(r.code, r.stderr).toBe(4);
    expect(r.stderr).toMatch(REFUSED);
    expect((await sql(wiped, "postgres", "SELECT datname FROM pg_database WHERE datname NOT LIKE 'template%' ORDER BY 1")).rows).toEqual([{ datname: "postgres" }]);
    expect(existsSync(globals.marker)).toBe(false);
  });
});

describe("psql's own rules, not a copy of them", () => {
  it("a \\! reached by interpolating a variable (:LAST_ERROR_MESSAGE) under --continue-on-error is refused and listed (exit 10)", async () => {
    const f = forge((s, m) => inApp(Buffer.from(`DO $$BEGIN RAISE EXCEPTION '%', E'\\\\! touch ${m}'; END$$;\nSELECT :LAST_ERROR_MESSAGE;\n`))(s));
    const target = await clusters.create("hostile-var");
    const r = await runCli(["restore-latest", "--continue-on-error"], cliEnv(target, f.dir));
    expect(r.code, r.stderr).toBe(10);
    expect(r.stdout).toContain("backslash commands are restricted");
    expect(existsSync(f.marker)).toBe(false);
  });

  it("a forged \\unrestrict with the file's own key changes nothing: the \\! after it is refused", async () => {
    const f = forge((s, m) => {
      const key = /\\restrict ([A-Za-z0-9]+)\n/.exec(s.toString("latin1", s.indexOf('-- Database "app" dump')))?.[1] ?? "";
      expect(key).not.toBe("");
      return inApp(Buffer.from(`\\unrestrict ${key}\n\\! touch ${m}\n`))(s);
    });
    await refusedByRestores(f);
  });

  it("a planted \\connect to another database is refused before psql gets it (exit 4), the other database untouched", async () => {
    const f = forge((s) => inApp(Buffer.from("\\connect keep\nCREATE TABLE planted (x int);\n"))(s));
    await unchanged(dst, async () => {
      const r = await runCli(["restore-database", fullName, "app", "--as", "app_copy"], cliEnv(dst, f.dir));
      expect(r.code, r.stderr).toBe(4);
      expect(r.stderr).toMatch(/the section of database "app" connects to "keep": \\connect keep/);
    });
  });

  it("a file without pg_dump's own \\restrict lines restores, equal to the source by pg_dumpall", async () => {
    // As pg_dump wrote it before 13.22/14.19/15.14/16.10/17.6: each keyed line and the blank line after it gone.
    const f = forge((s) => Buffer.from(s.toString("latin1").replace(/^\\(un)?restrict [A-Za-z0-9]+\n\n?/gm, ""), "latin1"));
    const target = await clusters.create("hostile-unkeyed");
    const r = await runCli(["restore-full", fullName], cliEnv(target, f.dir));
    expect(r.code, r.stderr.split("\n").filter((l) => l.includes('"error"')).join("\n")).toBe(0);
    expect(normalisedDumpall(target)).toBe(normalisedDumpall(src));
  });
});
