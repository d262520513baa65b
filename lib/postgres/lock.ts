// One mutating task per cluster at a time: a session-level advisory lock in PGDATABASE,
// held by a dedicated connection for the whole task. Because the lock lives in PostgreSQL,
// it holds across Swarm nodes; it is released when the task ends or its connection dies.
import type { Config } from "../config/config.js";
import { ExitCode, TaskError } from "../core/errors.js";
import type { Logger } from "../core/log.js";
import type { Client } from "./connection.js";
import { connect } from "./connection.js";
import { sleep } from "../core/concurrency.js";
import { shutdown } from "../core/shutdown.js";

/** Fixed key: "pgsb" in ASCII, so the lock is recognisable in pg_locks (objid 1885827938). */
export const LOCK_KEY = 0x70677362;

export interface HeldLock {
  release(): Promise<void>;
}

const HOLDER_SQL = `
  SELECT a.pid, a.application_name, a.client_addr::text AS addr, a.backend_start::text AS since
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
  WHERE l.locktype = 'advisory' AND l.objid = $1 AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  LIMIT 1`;

async function holder(client: Client): Promise<string> {
  const r = await client.query<{ pid: number; application_name: string; addr: string | null; since: string }>(HOLDER_SQL, [LOCK_KEY]);
  const h = r.rows[0];
  return h === undefined ? "another task" : `"${h.application_name}" (pid ${h.pid}${h.addr ? ` from ${h.addr}` : ""}, connected ${h.since})`;
}

/**
 * Takes the cluster lock for `task`. LOCK_MODE=skip fails at once when it is held;
 * LOCK_MODE=wait polls until LOCK_TIMEOUT_SECONDS. Both fail with ExitCode.lockBusy.
 */
export async function acquireLock(config: Config, task: string, log: Logger, pollMs = 500): Promise<HeldLock> {
  const client = await connect(config.pg, config.pg.database, log);
  // On a signal, closing the session is what lets the lock go: the server drops a session's
  // advisory locks when it ends, without a round trip that a dying network could stall.
  const unregister = shutdown.register("cluster lock", () => client.end());
  try {
    await client.query("SELECT set_config('application_name', $1, false)", [`pg-swarm-backup ${task}`]);
    const deadline = Date.now() + config.lock.timeoutSeconds * 1000;
    let announced = false;
    for (;;) {
      const r = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1) AS ok", [LOCK_KEY]);
      if (r.rows[0]?.ok === true) break;
      const who = await holder(client);
      if (config.lock.mode === "skip") {
        throw new TaskError(ExitCode.lockBusy, `lock busy: ${who} holds the pg-swarm-backup lock and LOCK_MODE=skip; this run did nothing (set LOCK_MODE=wait to wait)`);
      }
      if (Date.now() + pollMs > deadline) {
        throw new TaskError(ExitCode.lockBusy, `lock busy: ${who} still holds the pg-swarm-backup lock after LOCK_TIMEOUT_SECONDS=${config.lock.timeoutSeconds}; this run did nothing`);
      }
      if (!announced) log.info({ holder: who, timeoutSeconds: config.lock.timeoutSeconds }, "waiting for the cluster lock");
      announced = true;
      await sleep(pollMs);
    }
    log.debug({ key: LOCK_KEY }, "cluster lock taken");
  } catch (err) {
    await client.end().catch(() => undefined);
    unregister();
    throw err;
  }
  return {
    async release() {
      await client.query("SELECT pg_advisory_unlock($1)", [LOCK_KEY]).catch(() => undefined);
      await client.end().catch(() => undefined);
      unregister();
    },
  };
}
