// Throwaway PostgreSQL clusters for tests: initdb in a temp dir, a random port, the unix
// socket in the temp dir, password (scram) auth over TCP and trust over the socket.
// initdb refuses root, so when we are root the server runs as the `postgres` OS user.
import { execFileSync } from "node:child_process";
import { chownSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { findServerBinary } from "../lib/core/bin.js";
import { freePort } from "../lib/core/port.js";

export const TEST_PASSWORD = "s3cret-Test-pw!";

export interface ClusterInfo {
  dir: string;
  dataDir: string;
  socketDir: string;
  port: number;
  bindir: string;
}

function serverBin(name: string): string {
  const p = findServerBinary(name);
  if (p === null) throw new Error(`PostgreSQL server binary ${name} not found; run scripts/setup.sh (installs postgresql)`);
  return p;
}

function osUser(): { uid: number; gid: number; name: string } | null {
  if (process.getuid?.() !== 0) return null;
  const uid = Number(execFileSync("id", ["-u", "postgres"]).toString().trim());
  const gid = Number(execFileSync("id", ["-g", "postgres"]).toString().trim());
  return { uid, gid, name: "postgres" };
}

function asServerUser(cmd: string, args: string[]): string {
  const user = osUser();
  const [prog, argv] = user === null ? [cmd, args] : ["runuser", ["-u", user.name, "--", cmd, ...args]];
  return execFileSync(prog, argv, { stdio: ["ignore", "pipe", "pipe"] }).toString();
}

/** `encoding`: the cluster's server encoding (default UTF8; SQL_ASCII stores bytes as they come, not always valid UTF-8). */
export async function createCluster(opts: { name?: string; encoding?: "UTF8" | "SQL_ASCII" } = {}): Promise<ClusterInfo> {
  const dir = mkdtempSync(join(tmpdir(), `pgsb-${opts.name ?? "pg"}-`));
  const dataDir = join(dir, "data");
  const socketDir = join(dir, "sock");
  mkdirSync(socketDir);
  const user = osUser();
  if (user !== null) {
    chownSync(dir, user.uid, user.gid);
    chownSync(socketDir, user.uid, user.gid);
  }
  const pwfile = join(dir, "pw");
  writeFileSync(pwfile, TEST_PASSWORD + "\n", { mode: 0o600 });
  if (user !== null) chownSync(pwfile, user.uid, user.gid);
  const initdb = serverBin("initdb");
  asServerUser(initdb, ["-D", dataDir, "-U", "postgres", "--pwfile", pwfile, "-E", opts.encoding ?? "UTF8", `--locale=${opts.encoding === "SQL_ASCII" ? "C" : "C.UTF-8"}`, "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"]);
  rmSync(pwfile);
  const info: ClusterInfo = { dir, dataDir, socketDir, port: await freePort(), bindir: initdb.replace(/\/initdb$/, "") };
  writeFileSync(
    join(dataDir, "postgresql.auto.conf"),
    [`port = ${info.port}`, `unix_socket_directories = '${socketDir}'`, "listen_addresses = '127.0.0.1'", "fsync = off", "max_connections = 200", "autovacuum_naptime = 1", ""].join("\n"),
    { flag: "a" },
  );
  startCluster(info);
  return info;
}

export function startCluster(c: ClusterInfo): void {
  asServerUser(join(c.bindir, "pg_ctl"), ["-D", c.dataDir, "-l", join(c.dir, "server.log"), "-w", "-t", "60", "start"]);
}

export function stopCluster(c: ClusterInfo, mode: "fast" | "immediate" = "fast"): void {
  asServerUser(join(c.bindir, "pg_ctl"), ["-D", c.dataDir, "-m", mode, "-w", "-t", "60", "stop"]);
}

export function destroyCluster(c: ClusterInfo): void {
  try {
    stopCluster(c, "immediate");
  } catch {
    // already stopped
  }
  rmSync(c.dir, { recursive: true, force: true });
}

/** Environment for the CLI/config: connects over the unix socket (trust) unless `tcp` is set. */
export function clusterEnv(c: ClusterInfo, extra: Record<string, string> = {}, tcp = false): Record<string, string> {
  return {
    PGHOST: tcp ? "127.0.0.1" : c.socketDir,
    PGPORT: String(c.port),
    PGUSER: "postgres",
    PGDATABASE: "postgres",
    ...(tcp ? { PGPASSWORD: TEST_PASSWORD } : {}),
    ...extra,
  };
}

export async function sql(c: ClusterInfo, database: string, text: string, params: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ host: c.socketDir, port: c.port, user: "postgres", database });
  await client.connect();
  try {
    return await client.query(text, params);
  } finally {
    await client.end();
  }
}

/** Runs a SQL script with psql (ON_ERROR_STOP), statement by statement: CREATE DATABASE cannot run in a multi-statement query. */
export function psqlScript(c: ClusterInfo, database: string, script: string): void {
  execFileSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database], { input: script, env: { PATH: process.env.PATH, ...clusterEnv(c) }, stdio: ["pipe", "ignore", "pipe"] });
}

/**
 * pg_dumpall with the parts that legitimately differ after a restore normalised: the random
 * \restrict keys, and the password hash of the bootstrap superuser, which a restore leaves as it is.
 */
export function normalisedDumpall(c: ClusterInfo): string {
  const out = execFileSync("pg_dumpall", [], { env: { PATH: process.env.PATH, ...clusterEnv(c) }, maxBuffer: 1 << 28 }).toString("utf8");
  return out.replace(/^\\(un)?restrict \S+$/gm, "\\$1restrict KEY").replace(/^(ALTER ROLE postgres WITH .*?) PASSWORD '[^']*'/m, "$1 PASSWORD '…'");
}

/** The clusters one test file creates, destroyed together in its afterAll. */
export class ClusterSet {
  private readonly all: ClusterInfo[] = [];

  async create(name: string): Promise<ClusterInfo> {
    const c = await createCluster({ name });
    this.all.push(c);
    return c;
  }

  destroyAll(): void {
    for (const c of this.all.splice(0)) destroyCluster(c);
  }
}
