// Full backups against real clusters: the file restores with stock psql and reproduces
// the source; checksums work with sha256sum; every failing stage leaves nothing behind.
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run as backup } from "../../tasks/backup.js";
import type { ClusterInfo } from "../cluster.js";
import { freePort } from "../../lib/core/port.js";
import { TEST_PASSWORD, createCluster, destroyCluster, sql } from "../cluster.js";
import { cliEnv, runCli, tempDir, testConfig, testDeps } from "../helpers.js";

const normalise = (dump: string) =>
  dump
    .replace(/^\\(un)?restrict \S+$/gm, "\\$1restrict KEY")
    .replace(/^-- Dumped (from|by) .*$/gm, "");

function dumpall(c: ClusterInfo): string {
  return execFileSync("pg_dumpall", ["-h", c.socketDir, "-p", String(c.port), "-U", "postgres"], { maxBuffer: 1 << 28 }).toString();
}

function decompress(path: string): string {
  return execFileSync("bunzip2", ["-c", path], { maxBuffer: 1 << 28 }).toString();
}

function filesIn(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

let src: ClusterInfo;

beforeAll(async () => {
  src = await createCluster({ name: "backup-src" });
  await sql(src, "postgres", `CREATE ROLE app_owner LOGIN PASSWORD 'pw'; CREATE ROLE reader; GRANT reader TO app_owner`);
  for (const db of ["app", "with space", 'quo"te', "ünïcødé"]) await sql(src, "postgres", `CREATE DATABASE "${db.replace(/"/g, '""')}" OWNER app_owner`);
  await sql(src, "app", `CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 20000) g;
    INSERT INTO t VALUES (-1, E'-- Database "evil" dump'), (-2, E'\\\\connect evil'); GRANT SELECT ON t TO reader;
    SELECT lo_from_bytea(0, 'large object');`);
  await sql(src, 'quo"te', "CREATE TABLE q (x int); INSERT INTO q VALUES (1), (2)");
});

afterAll(() => destroyCluster(src));

describe("backup full", () => {
  it("writes a pg_dumpall-shaped file that restores with plain psql into a new cluster", async () => {
    const dir = tempDir();
    const deps = testDeps();
    const r = await backup(testConfig(src, dir), deps, { tier: "full", force: false, dryRun: false, allowNewCluster: false });
    expect(r.status).toBe("written");
    if (r.status !== "written") return;
    expect(r.manifest.included).toEqual(["template1", "app", "postgres", "quo\"te", "with space", "ünïcødé"]);
    expect(r.manifest.rowCounts.app?.["public.t"]).toBe(20002);
    expect(r.manifest.rowCounts['quo"te']?.["public.q"]).toBe(2);
    // The SQL is what pg_dumpall prints, but for the random \restrict keys and version comments.
    expect(normalise(decompress(r.path))).toBe(normalise(dumpall(src)));
    expect(readlinkSync(join(dir, "full", "latest_full.sql.bz2"))).toBe(r.name);
    execFileSync("sha256sum", ["-c", `${r.name}.sha256`], { cwd: join(dir, "full") });
    expect(deps.logs.some((l) => String(l.msg).includes("lbzip2"))).toBe(true);

    const dst = await createCluster({ name: "backup-dst" });
    try {
      execFileSync("sh", ["-c", `bunzip2 -c "$1" | psql -X -q -h "$2" -p "$3" -U postgres -d postgres >/dev/null 2>"$4"`, "sh", r.path, dst.socketDir, String(dst.port), join(dir, "restore.err")]);
      // the only error: the bootstrap superuser exists already
      expect(readFileSync(join(dir, "restore.err"), "utf8").trim()).toMatch(/^((psql:\S+ )?ERROR: {2}role "postgres" already exists\s*)?$/);
      expect(normalise(dumpall(dst))).toBe(normalise(dumpall(src)));
    } finally {
      destroyCluster(dst);
    }
  });

  // Found on a real Swarm (test/e2e, scenario h): two fulls queued on the lock finished within one
  // second, and the second was renamed over the first.
  it("never takes the name of a backup started in the same second: it waits for the next second", async () => {
    const dir = tempDir();
    const t = new Date(Math.ceil((Date.now() + 5000) / 1000) * 1000);
    const args = { tier: "full" as const, force: true, dryRun: false, allowNewCluster: false };
    const first = await backup(testConfig(src, dir), testDeps(() => t), args);
    let calls = 0;
    const second = await backup(testConfig(src, dir), testDeps(() => (calls++ === 0 ? t : new Date(t.getTime() + 1000))), args);
    expect(first.status === "written" && second.status === "written").toBe(true);
    if (first.status !== "written" || second.status !== "written") return;
    expect(second.name).not.toBe(first.name);
    expect(second.manifest.startedAt).toBe(new Date(t.getTime() + 1000).toISOString());
    execFileSync("sh", ["-c", "sha256sum -c --quiet ./*.sha256"], { cwd: join(dir, "full") });
    expect(filesIn(join(dir, "full")).filter((f) => f.endsWith(".sql.bz2") && !f.startsWith("latest"))).toEqual([first.name, second.name]);

    // A clock that stands still: after waiting twice it writes under that name, as before (an entry
    // planted at the name must not block a backup), and the result is whole.
    const third = await backup(testConfig(src, dir), testDeps(() => new Date(t.getTime() + 1000)), args);
    expect(third.status === "written" && third.name === second.name).toBe(true);
    execFileSync("sha256sum", ["-c", "--quiet", `${second.name}.sha256`], { cwd: join(dir, "full") });
  });

  it("leaves no visible backup and no moved pointer when pg_dump's backend is killed mid-dump", async () => {
    const dir = tempDir();
    const config = testConfig(src, dir);
    const first = await backup(config, testDeps(), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
    expect(first.status).toBe("written");
    await sql(src, "postgres", "CREATE DATABASE big");
    await sql(src, "big", "CREATE TABLE b AS SELECT g, repeat(md5(g::text), 4) AS v FROM generate_series(1, 1500000) g");
    try {
      const before = filesIn(join(dir, "full"));
      const killer = (async () => {
        for (let i = 0; i < 400; i++) {
          const r = await sql(src, "postgres", "SELECT pg_terminate_backend(pid) AS k FROM pg_stat_activity WHERE query LIKE 'COPY public.b %' AND pid <> pg_backend_pid()");
          if (r.rowCount !== null && r.rowCount > 0) return true;
          await new Promise((res) => setTimeout(res, 25));
        }
        return false;
      })();
      const later = new Date(Date.now() + 2000);
      await expect(backup(config, testDeps(() => later), { tier: "full", force: true, dryRun: false, allowNewCluster: false })).rejects.toThrow(/pg_dump of database "big" failed/);
      expect(await killer).toBe(true);
      expect(filesIn(join(dir, "full"))).toEqual(before);
      expect(readlinkSync(join(dir, "full", "latest_full.sql.bz2"))).toBe(first.status === "written" ? first.name : "");
    } finally {
      await sql(src, "postgres", "DROP DATABASE big");
    }
  });

  // A server that hangs without dropping the connection (SIGSTOP of the backend: the kernel still
  // answers keepalives) is caught by DUMP_STALL_TIMEOUT_SECONDS (issue 25).
  it("fails a dump that delivers nothing for DUMP_STALL_TIMEOUT_SECONDS: 'went away mid-dump', partial removed", async () => {
    const dir = tempDir();
    const config = { ...testConfig(src, dir), dumpStallSeconds: 2 };
    await sql(src, "postgres", "CREATE DATABASE stall");
    await sql(src, "stall", "CREATE TABLE b AS SELECT g, repeat(md5(g::text), 4) AS v FROM generate_series(1, 1500000) g");
    let stopped: number | null = null;
    try {
      const stopper = (async () => {
        for (let i = 0; i < 400 && stopped === null; i++) {
          const r = await sql(src, "postgres", "SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY public.b %' AND datname = 'stall' AND pid <> pg_backend_pid()");
          const pid = r.rows[0]?.pid as number | undefined;
          if (pid !== undefined) {
            process.kill(pid, "SIGSTOP");
            stopped = pid;
          } else await new Promise((res) => setTimeout(res, 25));
        }
      })();
      const t0 = Date.now();
      const failed = backup(config, testDeps(), { tier: "full", force: true, dryRun: false, allowNewCluster: false });
      await expect(failed).rejects.toThrow(/^PostgreSQL went away mid-dump \(.*pg_dump of database "stall" made no progress for 2 s \(DUMP_STALL_TIMEOUT_SECONDS\).*\); it answers again .*it did not restart.*partial file .* was removed/s);
      await stopper;
      console.log(`stalled dump failed after ${Date.now() - t0} ms (stall timeout 2 s)`);
      expect(stopped).not.toBeNull();
      expect(readdirSync(join(dir, "full")).filter((f) => f.endsWith(".partial") || f.endsWith(".json"))).toEqual([]);
    } finally {
      if (stopped !== null) process.kill(stopped, "SIGCONT");
      await sql(src, "postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'stall' AND pid <> pg_backend_pid()");
      await sql(src, "postgres", "DROP DATABASE stall WITH (FORCE)");
    }
  });

  it("waits for a compressor that falls behind: the dump is paused, not buffered or lost", async () => {
    const dir = tempDir();
    const bin = tempDir("pgsb-slowbin-");
    const realZstd = execFileSync("sh", ["-c", "command -v zstd"]).toString().trim();
    // Reads nothing for a second: meanwhile the dump (over a megabyte) must wait for it.
    writeFileSync(join(bin, "zstd"), `#!/bin/sh\nsleep 1\nexec ${realZstd} "$@"\n`);
    chmodSync(join(bin, "zstd"), 0o755);
    const r = await runCli(["backup", "full"], { ...cliEnv(src, dir), BACKUP_COMPRESSION: "zstd", PATH: `${bin}:${process.env.PATH}` });
    expect(r.code, r.stderr).toBe(0);
    const name = filesIn(join(dir, "full")).find((f) => /^\d{8}_\d{6}_full\.sql\.zst$/.test(f)) as string;
    execFileSync("sha256sum", ["-c", `${name}.sha256`], { cwd: join(dir, "full") });
    const sqlText = execFileSync("zstd", ["-dc", join(dir, "full", name)], { maxBuffer: 1 << 28 }).toString();
    expect(normalise(sqlText)).toBe(normalise(dumpall(src)));
  });

  it("leaves out a database dropped between the change check and its pg_dump, and says so", async () => {
    await sql(src, "postgres", "CREATE DATABASE doomed");
    const dir = tempDir();
    const bin = tempDir("pgsb-dropbin-");
    const realPgDump = execFileSync("sh", ["-c", "command -v pg_dump"]).toString().trim();
    // Drops the database just before its own pg_dump starts: the race, made certain.
    writeFileSync(
      join(bin, "pg_dump"),
      `#!/bin/sh\ncase "$*" in *"dbname='doomed'"*) psql -X -q -d postgres -c 'DROP DATABASE doomed' >/dev/null;; esac\nexec ${realPgDump} "$@"\n`,
    );
    chmodSync(join(bin, "pg_dump"), 0o755);
    const r = await runCli(["backup", "full"], { ...cliEnv(src, dir), PATH: `${bin}:${process.env.PATH}` });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('database \\"doomed\\" was dropped after the change check; it is not in this backup');
    const name = filesIn(join(dir, "full")).find((f) => /^\d{8}_\d{6}_full\.sql\.bz2$/.test(f)) as string;
    const manifest = JSON.parse(readFileSync(join(dir, "full", `${name}.json`), "utf8")) as { databases: string[]; included: string[]; rowCounts: Record<string, unknown> };
    expect(manifest.databases).not.toContain("doomed");
    expect(manifest.included).not.toContain("doomed");
    expect(manifest.included).toContain("app");
    const text = decompress(join(dir, "full", name));
    expect(text).not.toContain('Database "doomed"');
    expect(normalise(text)).toBe(normalise(dumpall(src)));
  });

  it("keeps bytes that are not UTF-8 (a SQL_ASCII cluster with Latin-1 names and data) exactly as pg_dumpall prints them", async () => {
    const latin = await createCluster({ name: "backup-latin1", encoding: "SQL_ASCII" });
    try {
      const env = { PATH: process.env.PATH, PGHOST: latin.socketDir, PGPORT: String(latin.port), PGUSER: "postgres", PGCLIENTENCODING: "SQL_ASCII" };
      const e9 = (text: string) => Buffer.from(text.replace(/é/g, "\xe9"), "latin1");
      execFileSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"], { env, input: e9(`CREATE ROLE "café"; CREATE TABLE t (x text); INSERT INTO t VALUES ('café au lait');`) });
      const dir = tempDir();
      const r = await runCli(["backup", "full"], { ...cliEnv(latin, dir), BACKUP_COMPRESSION: "none" });
      expect(r.code, r.stderr).toBe(0);
      const name = filesIn(join(dir, "full")).find((f) => /^\d{8}_\d{6}_full\.sql$/.test(f)) as string;
      const ours = readFileSync(join(dir, "full", name)).toString("latin1");
      const theirs = execFileSync("pg_dumpall", [], { env, maxBuffer: 1 << 26 }).toString("latin1");
      expect(ours).toContain('CREATE ROLE "caf\xe9"');
      expect(ours).toContain("caf\xe9 au lait");
      expect(normalise(ours)).toBe(normalise(theirs));
    } finally {
      destroyCluster(latin);
    }
  });

  it("fails with a clear error and leaves nothing when a stage fails: truncated pg_dump output, compressor crash", async () => {
    const dir = tempDir();
    const bin = tempDir("pgsb-fakebin-");
    const realPgDump = execFileSync("sh", ["-c", "command -v pg_dump"]).toString().trim();
    writeFileSync(join(bin, "pg_dump"), `#!/bin/sh\ncase "$*" in *--version*) exec ${realPgDump} "$@";; esac\n${realPgDump} "$@" | head -c 2000\n`);
    writeFileSync(join(bin, "zstd"), "#!/bin/sh\nhead -c 100 >/dev/null\necho 'zstd: simulated failure' >&2\nexit 1\n");
    chmodSync(join(bin, "pg_dump"), 0o755);
    chmodSync(join(bin, "zstd"), 0o755);
    const path = `${bin}:${process.env.PATH}`;
    const truncated = await runCli(["backup", "full"], { ...cliEnv(src, dir), PATH: path });
    expect(truncated.code).toBe(1);
    expect(truncated.stderr).toMatch(/without the "-- PostgreSQL database dump complete" trailer/);
    const crashed = await runCli(["backup", "full"], { ...cliEnv(src, dir), BACKUP_COMPRESSION: "zstd", PATH: path });
    expect(crashed.code).toBe(1);
    expect(crashed.stderr).toMatch(/zstd exited with 1: zstd: simulated failure/);
    // A compressor that stops reading but exits 0 must not pass for a finished backup (the
    // real pg_dump here: "app" alone is far more than the pipe buffers hold).
    const quitter = tempDir("pgsb-quitbin-");
    writeFileSync(join(quitter, "zstd"), "#!/bin/sh\nhead -c 100 >/dev/null\nexit 0\n");
    chmodSync(join(quitter, "zstd"), 0o755);
    const quit = await runCli(["backup", "full"], { ...cliEnv(src, dir), BACKUP_COMPRESSION: "zstd", PATH: `${quitter}:${process.env.PATH}` });
    expect(quit.code, quit.stderr).toBe(1);
    expect(quit.stderr).toMatch(/zstd exited before reading the whole dump/);
    expect(filesIn(join(dir, "full"))).toEqual([]);
  });

  it("gives a storage error naming BACKUP_DIR on a read-only or full file system, and leaves nothing partial", async () => {
    const mnt = tempDir("pgsb-mnt-");
    const ro = join(mnt, "ro");
    const full = join(mnt, "full");
    mkdirSync(ro);
    mkdirSync(full);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", ro]);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", full]);
    try {
      const r1 = await runCli(["backup", "full"], cliEnv(src, ro));
      expect(r1.code).toBe(9);
      expect(r1.stderr).toMatch(new RegExp(`BACKUP_DIR=${ro}.*EROFS`));
      const r2 = await runCli(["backup", "full"], cliEnv(src, full, { BACKUP_COMPRESSION: "none" }));
      expect(r2.code).toBe(9);
      expect(r2.stderr).toMatch(new RegExp(`BACKUP_DIR=${full}.*ENOSPC`));
      expect(filesIn(join(full, "full"))).toEqual([]);
      // Through a compressor too: the write error on the compressed side wins over the
      // compressor and pg_dump being stopped because of it.
      const r3 = await runCli(["backup", "full"], cliEnv(src, full, { BACKUP_COMPRESSION: "zstd", BACKUP_COMPRESSION_LEVEL: "1" }));
      expect(r3.code, r3.stderr).toBe(9);
      expect(r3.stderr).toMatch(new RegExp(`BACKUP_DIR=${full}.*ENOSPC`));
      expect(filesIn(join(full, "full"))).toEqual([]);
    } finally {
      execFileSync("umount", [ro]);
      execFileSync("umount", [full]);
    }
  });

  it("names where a wrong password came from and never prints it", async () => {
    const dir = tempDir();
    const secretFile = join(dir, "pw");
    writeFileSync(secretFile, "not-the-password-XYZ\n");
    const env = { ...cliEnv(src, dir), PGHOST: "127.0.0.1", POSTGRES_PASSWORD_FILE: secretFile, PG_CONNECT_TIMEOUT_SECONDS: "2" };
    const r = await runCli(["backup", "full"], env);
    expect(r.code).toBe(8);
    expect(r.stderr).toContain(`password from POSTGRES_PASSWORD_FILE=${secretFile}`);
    expect(r.stderr + r.stdout).not.toContain("not-the-password-XYZ");
    const ok = await runCli(["backup", "full"], { ...cliEnv(src, dir), PGHOST: "127.0.0.1", PGPASSWORD: TEST_PASSWORD });
    expect(ok.code).toBe(0);
    expect(ok.stderr + ok.stdout).not.toContain(TEST_PASSWORD);
  });

  it("gives a clear error after a bounded retry when PostgreSQL is down", async () => {
    const port = await freePort();
    const started = Date.now();
    const r = await runCli(["backup", "full"], { ...cliEnv(src, tempDir()), PGHOST: "127.0.0.1", PGPORT: String(port), PG_CONNECT_TIMEOUT_SECONDS: "3" });
    expect(r.code).toBe(8);
    expect(r.stderr).toMatch(/cannot connect to PostgreSQL at postgres@127\.0\.0\.1:\d+\/postgres .*ECONNREFUSED.*check PGHOST\/PGPORT/);
    expect(r.stderr).toMatch(/retrying/);
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});

describe("CLI", () => {
  it("rejects a bad setting at start, naming the variable and the fix", async () => {
    const r = await runCli(["list"], { BACKUP_DIR: "/x", BACKUP_COMPRESSION: "lzma" });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/BACKUP_COMPRESSION="lzma" is not one of bzip2, zstd, gzip, none/);
  });

  it("answers a command of a later version with its own exit code", async () => {
    const r = await runCli(["mirror-all-the-things"], {});
    expect(r.code).toBe(2);
  });

  it("a missing BACKUP_DIR is a storage error (9) for list, naming it and the fix", async () => {
    const r = await runCli(["list"], { BACKUP_DIR: "/nonexistent/backups" });
    expect(r.code).toBe(9);
    expect(r.stderr).toMatch(/BACKUP_DIR=\/nonexistent\/backups does not exist; there is nothing to list\. Mount the storage box/);
  });
});

