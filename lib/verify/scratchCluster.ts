// A throwaway PostgreSQL cluster inside the task container, for `verify --restore`: initdb
// into a temp dir, trust auth, a unix socket in that dir and no TCP listener (nothing
// outside the container can reach it), durability off because the data is thrown away.
// initdb and postgres refuse to run as root; the task image runs as the unprivileged
// `backup` user, and where we are root (tests, a root-run container) the server runs as
// the `postgres` OS user through runuser.
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PgConfig } from "../config/config.js";
import { findServerBinary } from "../core/bin.js";
import type { Logger } from "../core/log.js";
import { runCommand, tail } from "../core/proc.js";
import { freePort } from "../core/port.js";
import { shutdown } from "../core/shutdown.js";
import { sleep } from "../core/concurrency.js";

export interface ScratchCluster {
  dir: string;
  port: number;
  /** Connection over the unix socket as the `postgres` superuser (trust auth). */
  pg: PgConfig;
  /** Stops the server and removes its files; never throws. */
  destroy(): Promise<void>;
}

const SERVER_USER = "postgres";

const SETTINGS = [
  "listen_addresses = ''",
  "fsync = off",
  "synchronous_commit = off",
  "full_page_writes = off",
  "autovacuum = off",
  "max_wal_size = '2GB'",
  "max_locks_per_transaction = 256",
];

function serverEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const key of ["PATH", "TZ", "LANG", "LC_ALL"]) if (env[key] !== undefined) out[key] = env[key];
  return out;
}

/** The OS user the scratch server runs as: this task's own, or `postgres` when the task runs as root. */
export async function scratchServerUser(env: NodeJS.ProcessEnv): Promise<{ uid: number; gid: number }> {
  return (await serverUser(env)) ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}

async function serverUser(env: NodeJS.ProcessEnv): Promise<{ uid: number; gid: number } | null> {
  if (process.getuid?.() !== 0) return null;
  try {
    const uid = Number((await runCommand("id", ["-u", SERVER_USER], { env })).trim());
    const gid = Number((await runCommand("id", ["-g", SERVER_USER], { env })).trim());
    return { uid, gid };
  } catch (err) {
    throw new Error(
      `verify --restore runs as root here, and initdb refuses root, but there is no "${SERVER_USER}" OS user to run the scratch server as; run the task as a non-root user (the task image's "backup") or create that user`,
      { cause: err },
    );
  }
}

/** Both programs come from the same search order, so they are of the same (newest) major. */
function binary(name: string, env: NodeJS.ProcessEnv): string {
  const found = findServerBinary(name, env);
  if (found === null) {
    throw new Error(
      `verify --restore needs the PostgreSQL server program ${name}, which is not installed here (PG_BINDIR, /usr/lib/postgresql/*/bin, /usr/libexec/postgresql*, PATH); ` +
        "use the task image (it carries postgresqlNN), or set VERIFY_PGHOST to restore into a scratch database on a server",
    );
  }
  return found;
}

/**
 * Whether a process still runs. An exited postmaster stays a zombie until whoever adopted it
 * reaps it, and PID 1 of a container (node itself) never does: that counts as stopped.
 */
async function running(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
  if (stat !== null) return !/\) Z /.test(stat);
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The postmaster's pid from postmaster.pid, waiting up to `waitMs` for pg_ctl's postmaster to write it; null when there is none. */
async function postmasterPid(dataDir: string, waitMs: number): Promise<number | null> {
  for (const end = Date.now() + waitMs; ; await sleep(50)) {
    const pid = Number((await readFile(join(dataDir, "postmaster.pid"), "utf8").catch(() => "")).split("\n")[0]);
    if (Number.isInteger(pid) && pid > 0) return pid;
    if (Date.now() >= end) return null;
  }
}

/**
 * Stops a scratch server for a signal without starting a program (pg_ctl would be refused
 * then): SIGQUIT is what `pg_ctl stop -m immediate` sends; SIGKILL if it lingers.
 */
async function stopPostmaster(dataDir: string, starting: boolean): Promise<void> {
  const pid = await postmasterPid(dataDir, starting ? 1000 : 0);
  if (pid === null || !(await running(pid))) return;
  process.kill(pid, "SIGQUIT");
  for (const end = Date.now() + 3000; (await running(pid)) && Date.now() < end; ) await sleep(25);
  if (await running(pid)) process.kill(pid, "SIGKILL");
}

export async function startScratchCluster(env: NodeJS.ProcessEnv, log: Logger): Promise<ScratchCluster> {
  const base = serverEnv(env);
  const initdb = binary("initdb", env);
  const pgCtl = binary("pg_ctl", env);
  const user = await serverUser(base);
  const run = (prog: string, args: string[]) =>
    user === null ? runCommand(prog, args, { env: base }) : runCommand("runuser", ["-u", SERVER_USER, "--", prog, ...args], { env: base });

  const dir = await mkdtemp(join(env.TMPDIR ?? tmpdir(), "pgsb-verify-"));
  const dataDir = join(dir, "data");
  const socketDir = join(dir, "sock");
  const logFile = join(dir, "server.log");
  let started = false;
  let starting = false;
  const unregister = shutdown.register(`scratch cluster ${dir}`, async () => {
    await stopPostmaster(dataDir, starting || started);
    await rm(dir, { recursive: true, force: true });
  });
  const destroy = async (): Promise<void> => {
    if (started) await run(pgCtl, ["-D", dataDir, "-m", "immediate", "-w", "-t", "60", "stop"]).catch((err: unknown) => log.warn({ err: (err as Error).message }, "scratch cluster did not stop cleanly"));
    started = false;
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    unregister();
  };
  try {
    await mkdir(socketDir);
    if (user !== null) {
      await chown(dir, user.uid, user.gid);
      await chown(socketDir, user.uid, user.gid);
    }
    // C.UTF-8 exists on Debian and Alpine; dumps name their databases' own locales.
    await run(initdb, ["-D", dataDir, "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--auth=trust", "--no-sync"]);
    const port = await freePort();
    await writeFile(join(dataDir, "postgresql.auto.conf"), [`port = ${port}`, `unix_socket_directories = '${socketDir}'`, ...SETTINGS, ""].join("\n"), { flag: "a" });
    try {
      starting = true;
      await run(pgCtl, ["-D", dataDir, "-l", logFile, "-w", "-t", "120", "start"]);
    } catch (err) {
      const serverLog = await readFile(logFile, "utf8").catch(() => "");
      throw new Error(`the scratch PostgreSQL server did not start: ${(err as Error).message}${serverLog ? `; server log: ${tail(serverLog, 5)}` : ""}`, { cause: err });
    }
    started = true;
    log.info({ dir, port, asUser: user === null ? "self" : SERVER_USER }, "scratch PostgreSQL cluster started for verify --restore");
    const pg: PgConfig = {
      host: socketDir,
      port,
      user: "postgres",
      database: "postgres",
      password: null,
      passwordSource: "none (scratch cluster, trust over its private socket)",
      passfile: null,
      connectTimeoutSeconds: 10,
    };
    return { dir, port, pg, destroy };
  } catch (err) {
    await destroy();
    throw err;
  }
}
