// SIGTERM (Docker's stop) and SIGINT (Ctrl-C) against the built CLI as a real process,
// caught mid-work by shims on PATH: a compressor that reads slowly, a psql that never reads.
// Each run must exit 143/130 within Docker's 10 s grace, log one line about the signal, and
// leave no child process, .partial file, scratch cluster, temporary database or lock behind.
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { LOCK_KEY } from "../../lib/postgres/lock.js";
import type { ClusterInfo } from "../cluster.js";
import { createCluster, destroyCluster, sql } from "../cluster.js";
import { CLI, cliEnv, runCli, tempDir } from "../helpers.js";

/** Docker's default stop grace period: the task must be gone well before the SIGKILL. */
const GRACE_MS = 10_000;

let src: ClusterInfo;

beforeAll(async () => {
  src = await createCluster({ name: "signals" });
  // About 6 MB of SQL: at the slow compressor's 320 kB/s the dump takes many seconds.
  await sql(src, "postgres", "CREATE DATABASE app");
  await sql(src, "app", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 150000) g");
});

afterAll(() => destroyCluster(src));

/** CLIs still running when a test failed early. */
const started: Running[] = [];
afterEach(async () => {
  for (const run of started.splice(0)) {
    if (alive(run.pid)) process.kill(run.pid, "SIGKILL");
    await run.exited;
  }
});

interface Running {
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; ms: number }>;
  signalled: (signal: NodeJS.Signals) => void;
}

function startCli(args: string[], env: Record<string, string>): Running {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? "", LOG_FILE: "", ...env } });
  let stdout = "";
  let stderr = "";
  let sentAt = Date.now();
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const killer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const exited = new Promise<Awaited<Running["exited"]>>((resolve) =>
    child.on("close", (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - sentAt });
    }),
  );
  const run: Running = {
    pid: child.pid as number,
    exited,
    signalled: (signal) => {
      sentAt = Date.now();
      child.kill(signal);
    },
  };
  started.push(run);
  return run;
}

async function waitFor<T>(what: string, probe: () => T | null | undefined | false | Promise<T | null | undefined | false>, ms = 30_000): Promise<T> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 50))) {
    const v = await probe();
    if (v !== null && v !== undefined && v !== false) return v;
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Alive and not a zombie. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

const pids = (file: string): number[] => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean).map(Number) : []);

function logLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** After a signal: the exit code, within Docker's grace, and exactly one log line about it, which is returned. */
function signalLine(r: Awaited<Running["exited"]>, code: number): Record<string, unknown> {
  expect(r.code, r.stderr).toBe(code);
  expect(r.ms).toBeLessThan(GRACE_MS);
  const about = logLines(r.stderr).filter((l) => l.signal !== undefined);
  expect(about, r.stderr).toHaveLength(1);
  return about[0] as Record<string, unknown>;
}

/** Shims in a fresh folder: pg_dump and psql note their pid; the compressor is given as a script. */
function shimBin(opts: { zstd?: "slow"; psql?: "stuck" | "slow" }): { bin: string; marks: string } {
  const bin = tempDir("pgsb-sigbin-");
  const marks = tempDir("pgsb-sigmarks-");
  const real = (p: string) => execFileSync("sh", ["-c", `command -v ${p}`]).toString().trim();
  const write = (name: string, text: string) => {
    writeFileSync(join(bin, name), text);
    chmodSync(join(bin, name), 0o755);
  };
  write("pg_dump", `#!/bin/sh\necho $$ >> ${marks}/pg_dump\nexec ${real("pg_dump")} "$@"\n`);
  if (opts.zstd === "slow") {
    // One process that passes 64 kB on every 200 ms: the dump waits on it, mid-stream.
    write(
      "zstd",
      `#!${process.execPath}\nrequire("fs").appendFileSync(${JSON.stringify(join(marks, "zstd"))}, process.pid + "\\n");\n` +
        `process.stdin.on("data", (c) => { process.stdin.pause(); process.stdout.write(c); setTimeout(() => process.stdin.resume(), 200); });\n` +
        `process.stdin.on("end", () => process.stdout.end());\n`,
    );
  }
  // Never reads its input: the restore stalls on it until the signal.
  if (opts.psql === "stuck") write("psql", `#!/bin/sh\necho $$ >> ${marks}/psql\nexec sleep 60\n`);
  // The real psql, fed 64 kB every 200 ms: the restore is under way (its database created) but slow.
  if (opts.psql === "slow") {
    write(
      "psql",
      `#!${process.execPath}\nrequire("fs").appendFileSync(${JSON.stringify(join(marks, "psql"))}, process.pid + "\\n");\n` +
        `const p = require("child_process").spawn(${JSON.stringify(real("psql"))}, process.argv.slice(2), { stdio: ["pipe", "inherit", "inherit"] });\n` +
        `p.stdin.on("error", () => {});\n` +
        `process.stdin.on("data", (c) => { process.stdin.pause(); p.stdin.write(c); setTimeout(() => process.stdin.resume(), 200); });\n` +
        `process.stdin.on("end", () => p.stdin.end());\n` +
        `p.on("exit", (code) => process.exit(code ?? 1));\n` +
        `process.on("SIGTERM", () => { p.kill("SIGTERM"); process.exit(143); });\n`,
    );
  }
  return { bin, marks };
}

async function lockHeld(): Promise<boolean> {
  const r = await sql(src, "postgres", "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = $1", [LOCK_KEY]);
  return (r.rows[0] as { n: number }).n > 0;
}

describe.each([
  ["SIGTERM", 143],
  ["SIGINT", 130],
] as const)("backup full stopped by %s", (signal, code) => {
  it(`exits ${code} at once, stops pg_dump and the compressor, removes the .partial and lets the lock go`, async () => {
    const dir = tempDir();
    const { bin, marks } = shimBin({ zstd: "slow" });
    const env = { ...cliEnv(src, dir), BACKUP_COMPRESSION: "zstd", PATH: `${bin}:${process.env.PATH}` };
    const run = startCli(["backup", "full"], env);
    const partial = await waitFor("the .partial file", () => existsSync(join(dir, "full")) && readdirSync(join(dir, "full"), { withFileTypes: true }).find((f) => f.name.endsWith(".partial")));
    // A running pg_dump of a database (the --version one and small databases end at once).
    const [dumper] = await waitFor("a running pg_dump", () => {
      const running = pids(join(marks, "pg_dump")).filter(alive);
      return running.length > 0 && running.slice(-1);
    });
    const [compressor] = await waitFor("the compressor", () => pids(join(marks, "zstd")).length > 0 && pids(join(marks, "zstd")));
    expect(alive(dumper as number) && alive(compressor as number)).toBe(true);
    expect(await lockHeld()).toBe(true);

    run.signalled(signal);
    const r = await run.exited;
    const line = signalLine(r, code);
    expect(line).toMatchObject({ signal, task: "backup full", exitCode: code, failed: [], timedOut: [], skipped: [] });
    expect(line.released).toEqual(expect.arrayContaining([expect.stringMatching(/^pg_dump/), expect.stringMatching(/^zstd/), `partial ${join(dir, "full", partial.name)}`, "cluster lock"]));
    // The abandoned dump reported nothing of its own: no "backup failed", no error line.
    expect(logLines(r.stderr).filter((l) => l.level === "error"), r.stderr).toEqual([]);
    expect(readdirSync(join(dir, "full"))).toEqual([]);
    expect(alive(dumper as number)).toBe(false);
    expect(alive(compressor as number)).toBe(false);
    await waitFor("the lock to be let go", async () => !(await lockHeld()), 2000);
    expect(await lockHeld()).toBe(false);
    // And the next run takes the lock at once (LOCK_MODE=skip would fail with 3 otherwise).
    const next = await runCli(["backup", "full"], { ...cliEnv(src, dir), BACKUP_COMPRESSION: "zstd", LOCK_MODE: "skip" });
    expect(next.code, next.stderr).toBe(0);
  });
});

describe("verify --restore stopped by SIGTERM", () => {
  it("stops the scratch postgres and removes its folder; a second signal does not cut that short", async () => {
    const dir = tempDir();
    const made = await runCli(["backup", "full"], { ...cliEnv(src, dir), BACKUP_COMPRESSION: "zstd" });
    expect(made.code, made.stderr).toBe(0);
    const tmp = tempDir("pgsb-sigtmp-");
    chmodSync(tmp, 0o755); // the scratch server runs as the postgres OS user when we are root
    const { bin, marks } = shimBin({ psql: "stuck" });
    const run = startCli(["verify", "--restore"], { ...cliEnv(src, dir), TMPDIR: tmp, PATH: `${bin}:${process.env.PATH}` });
    const [psql] = await waitFor("psql restoring into the scratch cluster", () => pids(join(marks, "psql")).length > 0 && pids(join(marks, "psql")));
    const scratch = join(tmp, readdirSync(tmp).find((f) => f.startsWith("pgsb-verify-")) as string);
    const postmaster = Number(readFileSync(join(scratch, "data", "postmaster.pid"), "utf8").split("\n")[0]);
    expect(alive(postmaster)).toBe(true);

    run.signalled("SIGTERM");
    // An impatient second signal (Ctrl-C after `docker stop`) while the cluster is being stopped.
    // Not at the same instant: Linux delivers pending signals lowest number first, SIGINT before SIGTERM.
    await new Promise((resolve) => setTimeout(resolve, 30));
    process.kill(run.pid, "SIGINT");
    const r = await run.exited;
    const line = signalLine(r, 143);
    expect(line).toMatchObject({ signal: "SIGTERM", task: "verify", exitCode: 143, failed: [], timedOut: [], skipped: [], ignoredSignals: ["SIGINT"] });
    expect(line.released).toContain(`scratch cluster ${scratch}`);
    expect(alive(psql as number)).toBe(false);
    expect(alive(postmaster)).toBe(false);
    expect(existsSync(scratch)).toBe(false);
    expect(readdirSync(tmp)).toEqual([]);
  });
});

describe("verify --restore on VERIFY_PGHOST stopped by SIGTERM", () => {
  it("drops the temporary and scratch databases it made on that server", async () => {
    const dir = tempDir();
    const made = await runCli(["backup", "full"], { ...cliEnv(src, dir), BACKUP_COMPRESSION: "zstd" });
    expect(made.code, made.stderr).toBe(0);
    const { bin, marks } = shimBin({ psql: "slow" });
    const ours = async () =>
      (await sql(src, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'pgsb\\_restore\\_%' OR datname LIKE 'pgsb\\_verify\\_%'")).rows.map((r) => (r as { datname: string }).datname);
    const env = { ...cliEnv(src, dir), VERIFY_PGHOST: src.socketDir, VERIFY_PGPORT: String(src.port), PATH: `${bin}:${process.env.PATH}` };
    const run = startCli(["verify", "--restore"], env);
    const during = await waitFor("a temporary database on the server", async () => {
      const d = await ours();
      return d.length > 0 && d;
    });

    run.signalled("SIGTERM");
    const r = await run.exited;
    const line = signalLine(r, 143);
    expect(line.released).toEqual(expect.arrayContaining([`temporary database ${during[0] as string}`, `scratch databases on VERIFY_PGHOST=${src.socketDir}:${src.port}`]));
    expect(await ours()).toEqual([]);
    expect(pids(join(marks, "psql")).filter(alive)).toEqual([]);
  });
});

describe("restore-database stopped by SIGTERM", () => {
  it("drops its temporary database and lets the lock go", async () => {
    const dir = tempDir();
    const made = await runCli(["backup", "full"], { ...cliEnv(src, dir), BACKUP_COMPRESSION: "zstd" });
    expect(made.code, made.stderr).toBe(0);
    const name = readdirSync(join(dir, "full")).find((f) => f.endsWith("_full.sql.zst")) as string;
    const { bin, marks } = shimBin({ psql: "slow" });
    const temps = async () => (await sql(src, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE 'pgsb\\_restore\\_%'")).rows.map((r) => (r as { datname: string }).datname);
    const run = startCli(["restore-database", name, "app", "--as", "app_copy"], { ...cliEnv(src, dir), PATH: `${bin}:${process.env.PATH}` });
    await waitFor("psql restoring app", () => pids(join(marks, "psql")).length > 0);
    const during = await waitFor("the temporary database", async () => {
      const t = await temps();
      return t.length > 0 && t;
    });
    expect(during).toHaveLength(1);

    run.signalled("SIGTERM");
    const r = await run.exited;
    const line = signalLine(r, 143);
    expect(line.released).toEqual(expect.arrayContaining([`temporary database ${during[0] as string}`, "cluster lock"]));
    expect(await temps()).toEqual([]);
    expect((await sql(src, "postgres", "SELECT 1 FROM pg_database WHERE datname = 'app_copy'")).rowCount).toBe(0);
    await waitFor("the lock to be let go", async () => !(await lockHeld()), 2000);
  });
});
