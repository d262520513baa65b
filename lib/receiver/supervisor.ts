// The wal-receive supervisor: pg_receivewal into $BACKUP_DIR/wal/ (or, when wal-receive signs
// or encrypts, into its private spool, shipped to wal/ by archiver.ts) through a replication
// slot, run with --no-loop so that this code, not pg_receivewal, decides what an exit means
// (fault.ts): restart with backoff, recreate a vanished slot (loudly: WAL may be
// missing, and verify will name the gap), start the archive again after a gap the server can
// no longer fill (gapRestart.ts), or stop with an error naming the fix. SIGTERM stops
// pg_receivewal cleanly (process.ts); its .partial stays, since it is WAL, and the
// next start continues it.
import type { Config } from "../config/config.js";
import type { Deps } from "../core/deps.js";
import { sleep } from "../core/concurrency.js";
import { ConfigError, ExitCode, TaskError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import { runCommand, tail } from "../core/proc.js";
import type { Exit } from "../core/proc.js";
import { KEEPALIVE_CONNINFO, childEnv, withClient } from "../postgres/connection.js";
import { ensureTierDir } from "../store/storage.js";
import { formatLsn, walDir } from "../physical/layout.js";
import { listWalArchive } from "../wal/archive.js";
import { walRange } from "../wal/range.js";
import { restartAfterGap } from "./gapRestart.js";
import { parseFork, setAsideAbandoned } from "./fork.js";
import { receiveArgs, receivewalBinary, startReceivewal } from "./process.js";
import { HEALTHY_RUN_MS, classifyReceiverExit, restartDelayMs } from "./fault.js";
import type { ReceiverFault } from "./fault.js";
import { WalArchiver } from "./archiver.js";
import { canReplicate, dropSlot, slotState } from "./slot.js";

function permissionError(config: Config, detail: string): TaskError {
  const u = config.pg.user;
  return new TaskError(
    ExitCode.database,
    `PGUSER=${u} may not stream WAL from ${config.pg.host}:${config.pg.port} (${detail}); give the role the REPLICATION attribute (ALTER ROLE "${u}" REPLICATION) ` +
      `and pg_hba.conf a line such as "host replication ${u} 10.0.0.0/8 scram-sha-256" before any line that rejects it, then reload PostgreSQL (docs/pitr.md "Point-in-time recovery")`,
  );
}

/** The error for an exit that retrying cannot fix; null for one that a restart (or a new slot) may. */
export function fatalError(config: Config, fault: ReceiverFault, stderr: string): TaskError | null {
  const dir = walDir(config.backupDir);
  const said = tail(stderr, 3, 600);
  switch (fault) {
    case "no-permission":
      return permissionError(config, said);
    case "storage-full":
      return new TaskError(ExitCode.storage, `the WAL folder ${dir} is full (${said}); free space on the storage box (cleanup deletes WAL older than the oldest kept base backup); the slot keeps the server's WAL until the receiver catches up`);
    case "compression-unsupported":
      return new ConfigError(`WAL_COMPRESSION=${config.wal.compression} is not supported by this pg_receivewal (${said}); use WAL_COMPRESSION=gzip or none`);
    case "foreign-timeline":
      // Reached only when the server named no fork point (fork.ts handles the ones that do).
      return new TaskError(
        ExitCode.failed,
        `the newest WAL in ${dir} is not in the server's history (${said}): the server was restored to an earlier point or replaced. Move the files of ${dir} aside, restart wal-receive and take a new base backup`,
      );
    default:
      return null;
  }
}

/**
 * Makes sure the slot exists and is usable: a physical slot, not invalidated. A slot that is
 * missing while wal/ already holds WAL, or that was invalidated, is (re)created with an error
 * line in the log, since the server may have recycled WAL the archive never got.
 */
async function ensureSlot(config: Config, deps: Deps, log: Logger): Promise<void> {
  const slot = config.wal.slot;
  const dir = walDir(config.backupDir);
  await withClient(config.pg, config.pg.database, async (c) => {
    if (!(await canReplicate(c))) throw permissionError(config, "the role has neither REPLICATION nor SUPERUSER");
    const state = await slotState(c, slot);
    if (state !== null && !state.physical) throw new ConfigError(`WAL_SLOT=${slot} names a logical replication slot; choose another name for wal-receive's physical slot`);
    if (state?.walStatus === "lost") {
      log.error({ slot, restartLsn: state.restartLsn === null ? null : formatLsn(state.restartLsn) }, `replication slot ${slot} was invalidated (max_slot_wal_keep_size: the receiver was down too long); dropping and recreating it. WAL since then is missing from ${dir}: verify will report the gap; take a new base backup`);
      await dropSlot(c, slot);
    } else if (state === null) {
      const range = walRange(await listWalArchive(config.backupDir));
      if (range !== null) {
        log.error({ slot, newestWal: range.newest.file.name }, `replication slot ${slot} vanished (dropped, or the server was replaced); recreating it. WAL the server recycled meanwhile is missing from ${dir}: verify will report the gap; take a new base backup`);
      } else log.info({ slot }, `creating replication slot ${slot}`);
    }
    if (state === null || state.walStatus === "lost") {
      // Reserved at once: the server keeps WAL from here on, however long pg_receivewal takes to start
      // (pg_receivewal --create-slot reserves none until it first streams, so WAL written meanwhile,
      // a base backup's first segment say, was not kept for it).
      await c.query("SELECT pg_create_physical_replication_slot($1, true)", [slot]).catch((err: unknown) => {
        if ((err as { code?: string }).code === "42710") return;
        throw new TaskError(ExitCode.database, `replication slot ${slot} could not be created (${(err as Error).message}); check max_replication_slots on the server`, { cause: err });
      });
    }
  }, log);
  const pgReceivewal = receivewalBinary();
  try {
    await runCommand(pgReceivewal, ["-D", dir, `--dbname=${KEEPALIVE_CONNINFO}`, `--slot=${slot}`, "--create-slot", "--if-not-exists", "--no-password"], { env: childEnv(config.pg, deps.env), secrets: [config.pg.password] });
  } catch (err) {
    const stderr = (err as { stderrTail?: string }).stderrTail ?? (err as Error).message;
    throw fatalError(config, classifyReceiverExit(stderr), stderr) ?? new TaskError(ExitCode.database, `pg_receivewal could not create replication slot ${slot} (${tail(stderr, 3, 600)}); check the connection settings and max_replication_slots`, { cause: err });
  }
}

/** Runs until a fatal fault (thrown as a TaskError) or a signal (the process ends in tasks/cli.ts). */
export async function superviseWalReceiver(config: Config, deps: Deps): Promise<never> {
  const log = deps.log.child({ task: "wal-receive", slot: config.wal.slot });
  await ensureTierDir(config.backupDir, walDir(config.backupDir), config.files.dir);
  await ensureSlot(config, deps, log);
  const archiver = await WalArchiver.open(config, deps, log);
  const monitor = archiver.monitor;
  const dir = archiver.mode.receiveDir;
  const args = receiveArgs(config, dir);
  let failuresInARow = 0;
  try {
    for (;;) {
      await archiver.beforeStart();
      const startedAt = Date.now();
      const { child, release } = startReceivewal(config, deps, log, args);
      archiver.running(child);
      log.info({ event: "start", pid: child.process.pid, args, restarts: monitor.restarts }, `pg_receivewal started into ${dir}`);
      const exit: Exit = await child.exit;
      release();
      await archiver.afterExit();
      const fault = exit.started ? classifyReceiverExit(exit.stderr) : "transient";
      const ranMs = Date.now() - startedAt;
      log.warn({ event: "stop", code: exit.code, signal: exit.signal, fault, ranSeconds: Math.round(ranMs / 1000), stderr: tail(exit.stderr, 4, 1000) }, `pg_receivewal stopped (${fault})`);
      if (!exit.started) throw new TaskError(ExitCode.failed, `${receivewalBinary()} cannot be started (${exit.stderr}); install the PostgreSQL client programs in the task image`);
      const fork = fault === "foreign-timeline" ? parseFork(exit.stderr) : null;
      // Nothing to set aside means the fork is not what blocks pg_receivewal: no loop, the error below.
      if (fork !== null && (await setAsideAbandoned(config, deps, log, fork, dir)).files.length > 0) continue;
      const fatal = fatalError(config, fault, exit.stderr);
      if (fatal !== null) throw fatal;
      failuresInARow = ranMs >= HEALTHY_RUN_MS ? 1 : failuresInARow + 1;
      monitor.restarts++;
      if (fault === "slot-missing") await ensureSlot(config, deps, log).catch((err: unknown) => log.warn({ error: (err as Error).message }, "replication slot not recreated yet; retrying"));
      if (fault === "wal-removed" || fault === "switch-point") {
        const before = walRange(await listWalArchive(config.backupDir))?.newest.file.name ?? null;
        const after = await restartAfterGap(config, deps, log, dir);
        const why = fault === "switch-point" ? "pg_receivewal cannot resume at the timeline switch that follows" : "the server no longer had the WAL after";
        log.error(
          { event: "gap", newestBefore: before, firstAfter: after },
          `${why} ${before ?? "the newest file"} in ${dir} (${tail(exit.stderr, 1, 300)}); receiving starts again at ${after}. ` +
            `WAL in between is missing: verify will report the gap, and recovery past it needs a base backup taken after it (run \`backup base\`)`,
        );
        failuresInARow = 0;
        continue;
      }
      const delay = restartDelayMs(failuresInARow);
      log.info({ event: "restart", inMs: delay, restarts: monitor.restarts }, `restarting pg_receivewal in ${delay / 1000} s`);
      await sleep(delay);
    }
  } finally {
    await archiver.close();
  }
}
