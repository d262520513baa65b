// Settings that point at the wrong thing fail at start with their name and the fix: a
// BACKUP_DIR that is a file or missing (exit 9, every task that reads it), a PGPASSFILE that
// is not there (exit 2, not "wrong password"), a bad S3_SSE (exit 2).
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { cliEnv, runCli, tempDir } from "../helpers.js";

const cluster = inject("cluster");

const COMMANDS: [string[], RegExp][] = [
  [["list"], /there is nothing to list/],
  [["list", "--json"], /there is nothing to list/],
  [["status"], /no status can be given/],
  [["restore-latest"], /nothing was restored/],
  [["restore-latest", "--dry-run"], /nothing was restored/],
  [["restore-full", "20240107_030000_full.sql.bz2"], /nothing was restored/],
  [["cleanup", "--dry-run"], /cleanup deleted nothing/],
  [["list-databases", "20240107_030000_full.sql.bz2"], /there is nothing to list/],
];

describe("BACKUP_DIR", () => {
  it.each(COMMANDS)("%j on a BACKUP_DIR that is a file is exit 9 naming it", async (args, outcome) => {
    const r = await runCli(args, cliEnv(cluster, "/etc/passwd"));
    expect(r.code, r.stderr).toBe(9);
    expect(r.stderr).toMatch(/BACKUP_DIR=\/etc\/passwd is not a folder; /);
    expect(r.stderr).toMatch(outcome);
    expect(r.stderr).not.toMatch(/ENOTDIR: not a directory, scandir/);
  });

  it.each(COMMANDS)("%j on a missing BACKUP_DIR is exit 9 naming it and the fix", async (args, outcome) => {
    const missing = join(tempDir(), "not-mounted");
    const r = await runCli(args, cliEnv(cluster, missing));
    expect(r.code, r.stderr).toBe(9);
    expect(r.stderr).toContain(`BACKUP_DIR=${missing} does not exist; `);
    expect(r.stderr).toMatch(outcome);
    expect(r.stderr).toMatch(/Mount the storage box there .* or fix BACKUP_DIR/);
  });

  it("a FILE given as a path needs no BACKUP_DIR to be found", async () => {
    const r = await runCli(["restore-full", "/nonexistent/20240107_030000_full.sql.bz2"], cliEnv(cluster, "/etc/passwd"));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/backup file \/nonexistent\/20240107_030000_full\.sql\.bz2 does not exist/);
  });
});

describe("settings refused at start", () => {
  it("names a missing PGPASSFILE instead of blaming the password (exit 2)", async () => {
    const r = await runCli(["backup", "full"], cliEnv(cluster, tempDir(), { PGHOST: "127.0.0.1", PGPASSFILE: "/nonexistent/pgpass", PG_CONNECT_TIMEOUT_SECONDS: "2" }));
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/PGPASSFILE=\/nonexistent\/pgpass is not readable \(ENOENT\); mount the passfile there/);
    expect(r.stderr).not.toMatch(/rejected the password/);
  });

  it.each<[Record<string, string>, RegExp]>([
    [{ S3_BUCKET: "pgsb", S3_SSE: "rot13" }, /S3_SSE="rot13" is not a server-side encryption S3 knows/],
    [{ S3_BUCKET: "my backups" }, /S3_BUCKET="my backups" may hold only/],
    [{ BACKUP_COMPRESSION: "none", BACKUP_COMPRESSION_LEVEL: "3" }, /BACKUP_COMPRESSION_LEVEL=3 is set but BACKUP_COMPRESSION=none/],
    [{ PG_BINDIR: "/nonexistent" }, /PG_BINDIR=\/nonexistent is not a folder/],
    [{ VERIFY_PGPORT: "5433" }, /VERIFY_PGPORT="5433" is set but VERIFY_PGHOST is not/],
    [{ METRICS_FILE: "m.prom" }, /METRICS_FILE="m\.prom" is not an absolute path/],
  ])("%j is exit 2 before any work", async (extra, message) => {
    const r = await runCli(["list"], cliEnv(cluster, tempDir(), extra));
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});
