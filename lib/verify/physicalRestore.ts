// verify --restore for the physical tier: restore-pitr to the end of the archived WAL into a
// throwaway data directory (never --trust-unsigned: an unsigned base backup whose configuration
// runs commands or loads code fails the check instead of starting), started with pg_ctl on a private socket (no TCP listener) as the
// postgres OS user when we are root, and waited on until it has replayed the WAL and
// promoted (pg_control's state "in production"). Stopped and removed always, on a signal too.
import { appendFile, mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findServerBinary } from "../core/bin.js";
import { sleep } from "../core/concurrency.js";
import type { Logger } from "../core/log.js";
import { freePort } from "../core/port.js";
import { runCommand, tail } from "../core/proc.js";
import { shutdown } from "../core/shutdown.js";
import type { Config } from "../config/config.js";
import type { PitrPlan } from "../pitr/plan.js";
import { restorePitr } from "../pitr/restore.js";
import type { TrustedBase } from "../pitr/trustedBase.js";
import type { PitrRestoreOptions } from "../pitr/restore.js";

const SERVER_USER = "postgres";
/** Replaying a day of WAL can take minutes; beyond this the check fails rather than hang verify. */
const PROMOTE_TIMEOUT_MS = 600_000;

export interface PitrProbe {
  restoreSeconds: number;
  replaySeconds: number;
  segments: number;
}

function program(name: string, env: NodeJS.ProcessEnv): string {
  const p = findServerBinary(name, env);
  if (p === null) throw new Error(`verify --restore of the base backup needs the PostgreSQL server program ${name}, which is not installed here; use the task image`);
  return p;
}

async function osUser(env: NodeJS.ProcessEnv): Promise<{ uid: number; gid: number } | null> {
  if (process.getuid?.() !== 0) return null;
  const id = async (flag: string) => Number((await runCommand("id", [flag, SERVER_USER], { env })).trim());
  return { uid: await id("-u"), gid: await id("-g") };
}

export async function probePitrRestore(
  plan: PitrPlan,
  trusted: TrustedBase,
  config: Config,
  wal: Pick<PitrRestoreOptions, "histories" | "wal">,
  env: NodeJS.ProcessEnv,
  log: Logger,
  now: () => Date,
): Promise<PitrProbe> {
  // LC_ALL=C: pg_controldata's output is parsed.
  const base: NodeJS.ProcessEnv = { PATH: env.PATH, TZ: env.TZ, LC_ALL: "C" };
  const pgCtl = program("pg_ctl", env);
  const controldata = program("pg_controldata", env);
  const user = await osUser(base);
  const run = (prog: string, args: string[]) => (user === null ? runCommand(prog, args, { env: base }) : runCommand("runuser", ["-u", SERVER_USER, "--", prog, ...args], { env: base }));
  const dir = await mkdtemp(join(env.TMPDIR ?? tmpdir(), "pgsb-verify-pitr-"));
  const dataDir = join(dir, "data");
  const socketDir = join(dir, "sock");
  let started = false;
  const stop = async () => {
    if (started) await run(pgCtl, ["-D", dataDir, "-m", "immediate", "-w", "-t", "60", "stop"]).catch((err: unknown) => log.warn({ err: (err as Error).message }, "scratch PITR cluster did not stop cleanly"));
    started = false;
    await rm(dir, { recursive: true, force: true });
  };
  const unregister = shutdown.register(`scratch PITR cluster ${dir}`, stop);
  try {
    const t0 = Date.now();
    const restored = await restorePitr(plan, {
      backupDir: config.backupDir,
      base: trusted,
      dataDir,
      existing: "absent",
      owner: user,
      trustUnsigned: false,
      identity: config.encryption.identity,
      threads: config.compression.threads,
      env,
      log,
      now,
      ...wal,
    });
    await mkdir(socketDir);
    const port = await freePort();
    await appendFile(join(dataDir, "postgresql.auto.conf"), [`port = ${port}`, `unix_socket_directories = '${socketDir}'`, "listen_addresses = ''", "archive_mode = off", ""].join("\n"));
    if (user !== null) await runCommand("chown", [`${user.uid}:${user.gid}`, dir, socketDir], { env: base });
    const restoreSeconds = (Date.now() - t0) / 1000;
    const t1 = Date.now();
    const logFile = join(dir, "server.log");
    try {
      started = true;
      await run(pgCtl, ["-D", dataDir, "-l", logFile, "-w", "-t", "120", "start"]);
    } catch (err) {
      throw new Error(`the restored base backup did not start: ${(err as Error).message}; server log: ${tail(await readFile(logFile, "utf8").catch(() => ""), 5)}`, { cause: err });
    }
    // pg_control says "in production" once recovery ended and the cluster promoted; no role name is needed to ask.
    for (const end = Date.now() + PROMOTE_TIMEOUT_MS; ; await sleep(250)) {
      const control = await run(controldata, ["-D", dataDir]).catch(() => "");
      if (/^Database cluster state:\s+in production$/m.test(control)) break;
      if (Date.now() > end) throw new Error(`the restored cluster was still recovering after ${PROMOTE_TIMEOUT_MS / 1000} s; server log: ${tail(await readFile(logFile, "utf8").catch(() => ""), 5)}`);
    }
    log.info({ backup: plan.base, seconds: restored.seconds }, "scratch PITR cluster replayed the WAL and promoted");
    return { restoreSeconds, replaySeconds: (Date.now() - t1) / 1000, segments: plan.segments.length };
  } finally {
    await stop();
    unregister();
  }
}
