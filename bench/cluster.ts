// Throwaway PostgreSQL clusters for the benchmark: initdb under the bench's temp root, a
// unix socket there and no TCP listener, trust auth, durability off (the data is thrown
// away, and every case — ours and the baselines — runs against the same settings).
// initdb refuses root, so when we are root the server runs as the `postgres` OS user.
import { execFileSync } from "node:child_process";
import { chownSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { findServerBinary } from "../lib/core/bin.js";
import { freePort } from "../lib/core/port.js";

export const SERVER_USER = "postgres";

export interface BenchCluster {
  name: string;
  dir: string;
  dataDir: string;
  socketDir: string;
  port: number;
  bindir: string;
  /** libpq variables for clients of this cluster (pg_dump, psql, our CLI). */
  env: Record<string, string>;
}

const SETTINGS = [
  "listen_addresses = ''",
  "fsync = off",
  "synchronous_commit = off",
  "autovacuum = off",
  "max_wal_size = '4GB'",
  "checkpoint_timeout = '30min'",
  "shared_buffers = '256MB'",
  "max_connections = 100",
  "max_locks_per_transaction = 256",
];

export function serverBin(name: string): string {
  const p = findServerBinary(name);
  if (p === null) throw new Error(`PostgreSQL server program ${name} not found (PG_BINDIR, /usr/lib/postgresql/*/bin, PATH); run scripts/setup.sh`);
  return p;
}

function serverUser(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  const id = (flag: string) => Number(execFileSync("id", [flag, SERVER_USER]).toString().trim());
  return { uid: id("-u"), gid: id("-g") };
}

/** Runs a program as the server's OS user (through runuser when we are root). */
export function asServerUser(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): string {
  const base = { PATH: process.env.PATH ?? "/usr/bin:/bin", LANG: "C.UTF-8", ...env };
  const [prog, argv] = serverUser() === null ? [cmd, args] : ["runuser", ["-u", SERVER_USER, "--", cmd, ...args]];
  return execFileSync(prog, argv, { stdio: ["ignore", "pipe", "pipe"], env: base, maxBuffer: 64 << 20 }).toString();
}

/** The argv prefix that runs a command as the server user, for timed spawns. */
export function serverUserPrefix(): string[] {
  return serverUser() === null ? [] : ["runuser", "-u", SERVER_USER, "--"];
}

/** Makes a path the server user's (a no-op when we are not root). */
export function giveToServerUser(path: string): void {
  const user = serverUser();
  if (user !== null) chownSync(path, user.uid, user.gid);
}

/** initdb + start; `extra` settings are appended to postgresql.auto.conf. */
export async function startCluster(root: string, name: string, extra: string[] = []): Promise<BenchCluster> {
  const dir = join(root, name);
  const dataDir = join(dir, "data");
  const socketDir = join(dir, "sock");
  mkdirSync(socketDir, { recursive: true });
  giveToServerUser(dir);
  giveToServerUser(socketDir);
  const initdb = serverBin("initdb");
  const port = await freePort();
  const c: BenchCluster = {
    name,
    dir,
    dataDir,
    socketDir,
    port,
    bindir: initdb.replace(/\/initdb$/, ""),
    env: { PGHOST: socketDir, PGPORT: String(port), PGUSER: "postgres", PGDATABASE: "postgres" },
  };
  asServerUser(initdb, ["-D", dataDir, "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--auth=trust", "--no-sync"]);
  writeFileSync(join(dataDir, "postgresql.auto.conf"), [`port = ${port}`, `unix_socket_directories = '${socketDir}'`, ...SETTINGS, ...extra, ""].join("\n"), { flag: "a" });
  asServerUser(join(c.bindir, "pg_ctl"), ["-D", dataDir, "-l", join(dir, "server.log"), "-w", "-t", "120", "start"]);
  return c;
}

export function reloadCluster(c: BenchCluster): void {
  asServerUser(join(c.bindir, "pg_ctl"), ["-D", c.dataDir, "reload"]);
}

/** Stops the server (immediate: the data is thrown away) and removes its files; never throws. */
export function destroyCluster(c: BenchCluster): void {
  try {
    asServerUser(join(c.bindir, "pg_ctl"), ["-D", c.dataDir, "-m", "immediate", "-w", "-t", "60", "stop"]);
  } catch {
    // not running
  }
  rmSync(c.dir, { recursive: true, force: true });
}

export async function query<R extends pg.QueryResultRow = pg.QueryResultRow>(c: BenchCluster, database: string, text: string): Promise<R[]> {
  const client = new pg.Client({ host: c.socketDir, port: c.port, user: "postgres", database });
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}

/** Runs a SQL script with psql (ON_ERROR_STOP), for DDL and bulk loads. */
export function psqlScript(c: BenchCluster, database: string, script: string): void {
  execFileSync("psql", ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database], {
    input: script,
    stdio: ["pipe", "ignore", "pipe"],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...c.env },
  });
}
